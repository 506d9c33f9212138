#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_attachment
short_description: Attach a volume to a libvirt domain as a virtio disk, or detach it
version_added: 0.2.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Attaches a volume (a file or a block device on the host, or a volume of a libvirt storage pool) to one domain
    as a virtio disk, like a Cinder attachment. A running domain gets it hot-plugged and in its persistent
    definition; a shut-off one in its definition only.
  - Detaching from a running domain waits until the guest has released the disk (it is gone from the live
    definition), at most I(timeout) seconds.
  - A volume attached to another domain is refused (no multi-attach).
  - An existing attachment is never moved to another target or given another serial.
extends_documentation_fragment:
  - kvmfleet.compute.attributes
  - kvmfleet.compute.libvirt
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  domain:
    description: Name of the domain.
    type: str
    required: true
  path:
    description:
      - Absolute path of the volume on the host (a file, or a block device such as C(/dev/vg/lv)).
      - Mutually exclusive with I(pool) and I(volume).
    type: str
  pool:
    description: Storage pool of the volume, with I(volume). The pool is refreshed before the look-up.
    type: str
  volume:
    description: Name of the volume in I(pool).
    type: str
  format:
    description:
      - Format of the volume. Read from the pool's volume when I(pool) and I(volume) are given; otherwise required
        to attach (formats are never probed).
    type: str
    choices: [qcow2, raw]
  serial:
    description:
      - Disk serial shown to the guest (C(/dev/disk/by-id/virtio-<serial>)), e.g. the first 20 characters of a
        Cinder volume id. 1-20 characters of C(A-Za-z0-9-).
    type: str
  target:
    description: Disk name in the domain (C(vdb)...). The first free C(vd*) name when omitted.
    type: str
  bus:
    description: Disk bus.
    type: str
    choices: [virtio]
    default: virtio
  state:
    description: C(present) attaches, C(absent) detaches.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for a running guest to release a detached disk.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Attach a pool volume to a running instance
  kvmfleet.compute.volume_attachment:
    domain: web1
    pool: kvmfleet-volumes
    volume: vol-6f1c7a4e
    serial: 6f1c7a4e-0b5f-4a8e-9
  register: att

- name: Detach it
  kvmfleet.compute.volume_attachment:
    domain: web1
    path: "{{ att.attachment.path }}"
    state: absent
"""

RETURN = r"""
attachment:
  description: The attachment after the run (predicted in check mode); null when the volume is not attached.
  returned: always
  type: dict
  contains:
    domain:
      description: Domain name.
      type: str
      sample: web1
    path:
      description: Path of the volume on the host.
      type: str
      sample: /var/lib/kvmfleet/volumes/vol-6f1c7a4e
    target:
      description: Disk name in the domain.
      type: str
      sample: vdb
    serial:
      description: Disk serial, or null.
      type: str
      sample: 6f1c7a4e-0b5f-4a8e-9
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    DomainNotFound,
    InvalidState,
    KvmfleetError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    close,
    connect,
    libvirt_errors,
    lookup_domain,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_abs_path, validate_name
from ansible_collections.kvmfleet.compute.plugins.module_utils._volume import (
    attachment_plan,
    build_disk_xml,
    domain_disks,
    find_disk,
    first_free_target,
    parse_volume_xml,
    poll,
    validate_serial,
    validate_target,
)

XML_INACTIVE = 2
AFFECT_LIVE = 1
AFFECT_CONFIG = 2
ERR_NO_STORAGE_POOL = 49
ERR_NO_STORAGE_VOL = 50
FLAG_NAMES = {AFFECT_LIVE: "live", AFFECT_CONFIG: "config"}


class AttachmentParams:
    """The module parameters, validated. Raises ValidationError."""

    uri: str
    domain: str
    path: str | None
    pool: str | None
    volume: str | None
    format: str | None
    serial: str | None
    target: str | None
    bus: str
    state: str
    timeout: int

    def __init__(self, params):
        self.uri = params["uri"]
        self.domain = validate_name(params["domain"], "domain name")
        self.pool = validate_name(params["pool"], "pool name") if params.get("pool") is not None else None
        self.volume = validate_name(params["volume"], "volume name") if params.get("volume") is not None else None
        self.path = validate_abs_path(params["path"], "path") if params.get("path") is not None else None
        if self.path is None and (self.pool is None or self.volume is None):
            raise ValidationError("give path, or pool and volume", what="path")
        if self.path is not None and (self.pool is not None or self.volume is not None):
            raise ValidationError("path is mutually exclusive with pool and volume", what="path")
        self.format = params.get("format")
        self.state = params["state"]
        if self.state == "present" and self.path is not None and self.format is None:
            raise ValidationError("format is required to attach a path (formats are never probed)", what="format")
        self.serial = validate_serial(params["serial"]) if params.get("serial") is not None else None
        self.target = validate_target(params["target"]) if params.get("target") is not None else None
        self.bus = params["bus"]
        self.timeout = params["timeout"]
        if self.timeout < 1:
            raise ValidationError(f"timeout must be at least 1 second, got {self.timeout}", what="timeout")


def _disks(dom, flags):
    with libvirt_errors(f"read definition of domain {dom.name()}"):
        return domain_disks(dom.XMLDesc(flags))


def _view(disk):
    return {"target": disk["target"], "serial": disk["serial"]} if disk else None


class AttachmentManager:
    """Attaches or detaches one volume: one plan, applied only outside check mode."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.conn = None
        self.plan = []
        self.attachment = None
        self.before = None
        self.after = None

    @property
    def results(self):
        return {"changed": bool(self.plan), "attachment": self.attachment,
                "diff": {"before": self.before, "after": self.after}}

    def run(self):
        self.conn = connect(self.p.uri)
        try:
            self._run()
        except WaitTimeout as exc:
            exc.partial = self.results
            raise
        finally:
            close(self.conn)

    def _resolve_volume(self):
        """(path, format) of the volume; (None, None) for a pool volume that does not exist, when detaching."""
        if self.p.path is not None:
            return self.p.path, self.p.format
        try:
            with libvirt_errors(f"look up pool {self.p.pool}"):
                pool = self.conn.storagePoolLookupByName(self.p.pool)
            with libvirt_errors(f"refresh pool {self.p.pool}"):
                if pool.isActive():
                    pool.refresh(0)
            with libvirt_errors(f"look up volume {self.p.volume} in pool {self.p.pool}"):
                vol = pool.storageVolLookupByName(self.p.volume)
                path, fmt = vol.path(), parse_volume_xml(vol.XMLDesc(0))["format"]
        except KvmfleetError as exc:
            missing = exc.details.get("libvirt_error_code") in (ERR_NO_STORAGE_POOL, ERR_NO_STORAGE_VOL)
            if missing and self.p.state == "absent":
                return None, None
            raise
        if self.p.format is not None and self.p.format != fmt:
            raise ValidationError(f"volume {self.p.volume} has format {fmt}, not {self.p.format}", what="format")
        return path, fmt

    def _others(self, path):
        """Names of the other defined domains that have ``path`` as a disk."""
        names = []
        with libvirt_errors("list domains"):
            doms = self.conn.listAllDomains(0)
        for dom in doms:
            if dom.name() == self.p.domain:
                continue
            with libvirt_errors(f"read domain {dom.name()}"):
                active = dom.isActive()
            if find_disk(_disks(dom, XML_INACTIVE), path) or (active and find_disk(_disks(dom, 0), path)):
                names.append(dom.name())
        return sorted(names)

    def _run(self):
        path, fmt = self._resolve_volume()
        dom = lookup_domain(self.conn, self.p.domain)
        if dom is None:
            if self.p.state == "present":
                raise DomainNotFound(f"domain {self.p.domain} does not exist", name=self.p.domain)
            self.before = self.after = None
            return
        if path is None:
            self.before = self.after = None
            return
        with libvirt_errors(f"read state of domain {self.p.domain}"):
            active = bool(dom.isActive())
        config_disks = _disks(dom, XML_INACTIVE)
        live_disks = _disks(dom, 0) if active else []
        config_disk, live_disk = find_disk(config_disks, path), find_disk(live_disks, path)
        current = config_disk or live_disk
        self.before = dict(_view(current), path=path) if current else None
        attach, detach = attachment_plan(active, config_disk, live_disk)
        if self.p.state == "absent":
            self.after = None
            if detach:
                self.plan.append(("detach", detach))
                if not self.module.check_mode:
                    self._detach(dom, path, config_disk, live_disk, detach)
            return
        others = self._others(path)
        if others:
            raise InvalidState(f"{path} is attached to domain {', '.join(others)}; a volume is attached to one domain "
                               "at a time (no multi-attach)", attached_to=others)
        if current:
            self._check_same(current)
            target = current["target"]
            serial = current["serial"]
        else:
            target = self.p.target or first_free_target(config_disks, live_disks)
            if any(d["target"] == target for d in config_disks + live_disks):
                raise InvalidState(f"domain {self.p.domain} already has a disk {target}", target=target)
            serial = self.p.serial
        self.attachment = {"domain": self.p.domain, "path": path, "target": target, "serial": serial}
        self.after = {"path": path, "target": target, "serial": serial}
        if attach:
            self.plan.append(("attach", attach))
            if not self.module.check_mode:
                xml = build_disk_xml(path, fmt, target, serial, block=self._is_block(path), bus=self.p.bus)
                with libvirt_errors(f"attach {path} to domain {self.p.domain} as {target} ({self._flags(attach)})"):
                    dom.attachDeviceFlags(xml, attach)

    def _check_same(self, current):
        for field in ("target", "serial"):
            wanted = getattr(self.p, field)
            if wanted is not None and wanted != current[field]:
                raise InvalidState(f"{current['path']} is attached to domain {self.p.domain} with {field} "
                                   f"{current[field]}, not {wanted}; detach it first to change that", field=field)

    @staticmethod
    def _is_block(path):
        try:
            return stat.S_ISBLK(os.stat(path).st_mode)
        except OSError:
            return False

    @staticmethod
    def _flags(flags):
        return "+".join(name for bit, name in FLAG_NAMES.items() if flags & bit)

    def _detach(self, dom, path, config_disk, live_disk, flags):
        if flags & AFFECT_CONFIG:
            with libvirt_errors(f"detach {path} from the definition of domain {self.p.domain}"):
                dom.detachDeviceFlags(config_disk["element"], AFFECT_CONFIG)
        if not flags & AFFECT_LIVE:
            return
        with libvirt_errors(f"detach {path} from running domain {self.p.domain}"):
            dom.detachDeviceFlags(live_disk["element"], AFFECT_LIVE)

        def gone():
            with libvirt_errors(f"read domain {self.p.domain}"):
                if not dom.isActive():
                    return True
            return find_disk(_disks(dom, 0), path) is None

        try:
            poll(gone, self.p.timeout, f"{path} to leave domain {self.p.domain}")
        except WaitTimeout as exc:
            raise WaitTimeout(f"detach of {live_disk['target']} ({path}) from running domain {self.p.domain} did not "
                              f"complete within {self.p.timeout}s: the guest has not released the disk (it needs "
                              "virtio hot-unplug); it is already out of the persistent definition",
                              last_state="attached", target=live_disk["target"]) from exc


ARGUMENT_SPEC = {
    "domain": {"type": "str", "required": True},
    "path": {"type": "str"},
    "pool": {"type": "str"},
    "volume": {"type": "str"},
    "format": {"type": "str", "choices": ["qcow2", "raw"]},
    "serial": {"type": "str"},
    "target": {"type": "str"},
    "bus": {"type": "str", "default": "virtio", "choices": ["virtio"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "timeout": {"type": "int", "default": 30},
    "uri": {"type": "str", "default": "qemu:///system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("path", "pool"), ("path", "volume")],
                           required_together=[("pool", "volume")],
                           required_one_of=[("path", "volume")])
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = AttachmentManager(module, AttachmentParams(module.params))
        manager.run()
    except WaitTimeout as exc:
        module.fail_json(partial=exc.partial, **exc.to_result())
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
