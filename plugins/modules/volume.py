#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Desired state of one block-storage volume on a libvirt storage pool
version_added: 0.2.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Creates, extends and deletes one volume (a qcow2 or raw file on a C(dir) pool, a logical volume on a
    C(logical) pool), like a Cinder volume on a KVM host.
  - Makes the storage pool exist first when it does not (define, build for C(dir), start, autostart). An existing
    pool of another type, path or volume group is an error naming the difference; an inactive one is started.
  - The pool is refreshed before the volume is looked up, so a volume another host made on shared storage
    (the same directory seen by several hosts) is found.
  - A volume is never shrunk and its format never converted. Extending a volume that a running domain uses
    goes through the domain (C(blockResize)), so the guest sees the new size at once.
  - A volume that any defined domain has as a disk is never deleted.
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
  pool:
    description:
      - Name of the libvirt storage pool. 1-64 characters of C(A-Za-z0-9._-), not starting with C(-) or C(.).
    type: str
    required: true
  pool_type:
    description:
      - C(dir) keeps volumes as files in I(pool_path); C(logical) as logical volumes of the LVM volume group
        I(pool_vg).
    type: str
    choices: [dir, logical]
    default: dir
  pool_path:
    description:
      - Directory of a C(dir) pool (absolute). C(/var/lib/kvmfleet/volumes) when omitted. A directory several
        hosts see at the same path (NFS) makes a shared pool; each host defines its own pool pointing at it.
      - Not used with C(logical).
    type: str
  pool_vg:
    description:
      - Existing LVM volume group of a C(logical) pool. Required with C(logical).
    type: str
  name:
    description:
      - Name of the volume in the pool (its file name on a C(dir) pool). 1-64 characters of C(A-Za-z0-9._-), not
        starting with C(-) or C(.).
    type: str
    required: true
  size_gb:
    description:
      - Virtual size in GiB. Required to create a volume. A bigger value extends an existing volume; a smaller one
        is an error. Omitted, an existing volume keeps its size.
    type: int
  format:
    description:
      - Format of a new volume; C(qcow2) on a C(dir) pool when omitted. A C(logical) pool holds C(raw) only.
      - An existing volume of another format is an error (never converted).
    type: str
    choices: [qcow2, raw]
  source_image:
    description:
      - Absolute path of an image file on the host whose content a new volume gets (C(qemu-img convert)), then
        grown to I(size_gb). An image bigger than I(size_gb) is an error. Images with a backing file are refused.
      - Used only when the volume is created.
    type: str
  source_format:
    description:
      - Format of I(source_image), passed to qemu-img (formats are never probed). Required with I(source_image).
    type: str
    choices: [qcow2, raw]
  state:
    description:
      - C(present) creates or extends the volume; C(absent) deletes it (refused while a domain has it as a disk).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: A 10 GiB volume on the default dir pool
  kvmfleet.compute.volume:
    pool: kvmfleet-volumes
    name: vol-6f1c7a4e
    size_gb: 10

- name: A volume holding a copy of an image
  kvmfleet.compute.volume:
    pool: kvmfleet-volumes
    name: vol-boot1
    size_gb: 5
    source_image: /var/lib/libvirt/kvmfleet/images/debian-12.qcow2
    source_format: qcow2

- name: A volume on shared storage (the same NFS directory on every host)
  kvmfleet.compute.volume:
    pool: shared
    pool_path: /srv/nfs/volumes
    name: vol-data
    size_gb: 20

- name: Extend it (online when a running domain uses it)
  kvmfleet.compute.volume:
    pool: shared
    pool_path: /srv/nfs/volumes
    name: vol-data
    size_gb: 30

- name: Delete it
  kvmfleet.compute.volume:
    pool: shared
    pool_path: /srv/nfs/volumes
    name: vol-data
    state: absent
"""

RETURN = r"""
volume:
  description: The volume after the run (predicted in check mode); null when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Volume name.
      type: str
      sample: vol-6f1c7a4e
    pool:
      description: Pool name.
      type: str
      sample: kvmfleet-volumes
    path:
      description: Path of the volume on the host (a file, or the device of a logical volume).
      type: str
      sample: /var/lib/kvmfleet/volumes/vol-6f1c7a4e
    format:
      description: qcow2 or raw.
      type: str
      sample: qcow2
    capacity_bytes:
      description: Virtual size in bytes.
      type: int
      sample: 10737418240
    allocation_bytes:
      description: Bytes the volume takes on the pool (0 predicted for a new sparse volume in check mode).
      type: int
      sample: 196608
    attached_to:
      description: Names of the defined domains that have the volume as a disk.
      type: list
      elements: str
      sample: [web1]
pool:
  description: The pool, C({name, type, path, vg}).
  returned: always
  type: dict
  sample: {"name": "kvmfleet-volumes", "type": "dir", "path": "/var/lib/kvmfleet/volumes", "vg": null}
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._disks import base_image
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    InvalidState,
    KvmfleetError,
    ValidationError,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    close,
    connect,
    libvirt_errors,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_abs_path, validate_name
from ansible_collections.kvmfleet.compute.plugins.module_utils._volume import (
    GIB,
    build_pool_xml,
    build_volume_xml,
    domain_disks,
    find_disk,
    parse_pool_xml,
    parse_volume_xml,
    pool_differences,
    pool_spec,
    size_gb_of,
    volume_format,
    volume_plan,
)

# libvirt values, as numbers so the module imports without libvirt (it then fails cleanly)
XML_INACTIVE = 2
BLOCK_RESIZE_BYTES = 1
ERR_NO_STORAGE_POOL = 49
ERR_NO_STORAGE_VOL = 50


class VolumeParams:
    """The module parameters, validated. Raises ValidationError."""

    uri: str
    pool: dict  # {name, type, path, vg}
    name: str
    size_gb: int | None
    format: str | None  # None: keep an existing volume's, the pool's default for a new one
    source_image: str | None
    source_format: str | None
    state: str

    def __init__(self, params):
        self.uri = params["uri"]
        self.pool = pool_spec(params["pool"], params["pool_type"], params.get("pool_path"), params.get("pool_vg"))
        self.name = validate_name(params["name"], "volume name")
        self.state = params["state"]
        self.size_gb = params.get("size_gb")
        if self.size_gb is not None and self.size_gb < 1:
            raise ValidationError(f"size_gb must be at least 1, got {self.size_gb}", what="size_gb")
        self.format = params.get("format")
        self.new_format = volume_format(self.pool["type"], self.format)
        self.source_image = None
        self.source_format = params.get("source_format")
        if params.get("source_image") is not None:
            self.source_image = validate_abs_path(params["source_image"], "source_image")
            if self.source_format is None:
                raise ValidationError("source_format is required with source_image (formats are never probed)",
                                      what="source_format")


def _lookup(doing, func, code, *args):
    """func(*args), or None when libvirt says the object does not exist (error ``code``)."""
    try:
        with libvirt_errors(doing):
            return func(*args)
    except KvmfleetError as exc:
        if exc.details.get("libvirt_error_code") == code:
            return None
        raise


def attached_domains(conn, path):
    """[(domain, live_disk or None, config_disk or None)] for every defined domain that has ``path`` as a disk."""
    found = []
    with libvirt_errors("list domains"):
        doms = conn.listAllDomains(0)
    for dom in doms:
        with libvirt_errors(f"read definition of domain {dom.name()}"):
            active = dom.isActive()
            config = find_disk(domain_disks(dom.XMLDesc(XML_INACTIVE)), path)
            live = find_disk(domain_disks(dom.XMLDesc(0)), path) if active else None
        if config or live:
            found.append((dom, live, config))
    return found


class VolumeManager:
    """Brings one volume to the desired state: one plan, applied only outside check mode."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.conn = None
        self.plan = []
        self.volume = None
        self.before = None
        self.after = None

    @property
    def results(self):
        return {"changed": bool(self.plan), "volume": self.volume, "pool": self.p.pool,
                "diff": {"before": self.before, "after": self.after}}

    def run(self):
        self.conn = connect(self.p.uri)
        try:
            self._run()
        finally:
            close(self.conn)

    def _view(self, state, capacity_bytes=None, fmt=None):
        view = {"name": self.p.name, "pool": self.p.pool["name"], "state": state}
        if state == "present":
            view.update({"size_gb": size_gb_of(capacity_bytes), "format": fmt})
        return view

    def _run(self):
        pool_name = self.p.pool["name"]
        pool = _lookup(f"look up pool {pool_name}", self.conn.storagePoolLookupByName, ERR_NO_STORAGE_POOL, pool_name)
        vol = None
        if self.p.state == "present":
            self._check_source()  # before anything is made
        if pool is None and self.p.state == "present":
            self.plan.append(("create pool",))
            if not self.module.check_mode:
                # on shared storage the volume may be there already, made by another host: look below
                pool = self._ensure_pool(None)
        elif pool is not None:
            self._check_pool(pool)
        if pool is not None:
            with libvirt_errors(f"read pool {pool_name}"):
                active = pool.isActive()
            if not active and self.p.state == "present":
                self.plan.append(("start pool",))
                if not self.module.check_mode:
                    pool = self._ensure_pool(pool)
                    active = True
            if active:
                with libvirt_errors(f"refresh pool {pool_name}"):
                    pool.refresh(0)
                vol = _lookup(f"look up volume {self.p.name} in pool {pool_name}", pool.storageVolLookupByName,
                              ERR_NO_STORAGE_VOL, self.p.name)
        have = self._read(vol) if vol is not None else None
        steps = volume_plan(have, {"state": self.p.state, "size_gb": self.p.size_gb, "format": self.p.format})
        self.plan.extend(steps)
        self.before = self._view("present", have["capacity_bytes"], have["format"]) if have else self._view("absent")
        if self.p.state == "absent":
            self.after = self._view("absent")
            if have is not None:
                self._refuse_if_attached(have)
                if not self.module.check_mode:
                    with libvirt_errors(f"delete volume {self.p.name} in pool {pool_name}"):
                        vol.delete(0)
            return
        if have is None:
            capacity = self.p.size_gb * GIB
            self.after = self._view("present", capacity, self.p.new_format)
            if self.module.check_mode:
                path = os.path.join(self.p.pool["path"], self.p.name)
                self.volume = {"name": self.p.name, "pool": pool_name, "path": path, "format": self.p.new_format,
                               "capacity_bytes": capacity, "allocation_bytes": 0, "attached_to": []}
                return
            vol = self._create(pool, capacity)
        else:
            capacity = steps[-1][1] if steps else have["capacity_bytes"]
            self.after = self._view("present", capacity, have["format"])
            if steps and not self.module.check_mode:
                self._extend(vol, have, capacity)
            if self.module.check_mode:
                self.volume = dict(have, capacity_bytes=capacity)
                return
        self.volume = self._read(vol)

    # -- the pool ------------------------------------------------------------------------------------

    def _check_pool(self, pool):
        with libvirt_errors(f"read pool {self.p.pool['name']}"):
            have = parse_pool_xml(pool.XMLDesc(0))
        diffs = pool_differences(have, self.p.pool)
        if diffs:
            raise InvalidState(f"pool {self.p.pool['name']} exists with {' and '.join(diffs)}", pool=have)

    def _ensure_pool(self, pool):
        name = self.p.pool["name"]
        if pool is None:
            with libvirt_errors(f"define pool {name}"):
                pool = self.conn.storagePoolDefineXML(build_pool_xml(self.p.pool), 0)
            if self.p.pool["type"] == "dir":  # a logical pool's volume group exists already: nothing to build
                with libvirt_errors(f"build pool {name} (make {self.p.pool['path']})"):
                    pool.build(0)
            with libvirt_errors(f"set autostart of pool {name}"):
                pool.setAutostart(1)
        with libvirt_errors(f"start pool {name}"):
            if not pool.isActive():
                pool.create(0)
        return pool

    # -- the volume ----------------------------------------------------------------------------------

    def _read(self, vol):
        with libvirt_errors(f"read volume {self.p.name}"):
            info = parse_volume_xml(vol.XMLDesc(0))
            path = vol.path()
            _type, capacity, allocation = vol.info()
        return {"name": self.p.name, "pool": self.p.pool["name"], "path": path, "format": info["format"],
                "capacity_bytes": capacity, "allocation_bytes": allocation,
                "attached_to": sorted(dom.name() for dom, _live, _config in attached_domains(self.conn, path))}

    def _refuse_if_attached(self, have):
        if have["attached_to"]:
            names = ", ".join(have["attached_to"])
            raise InvalidState(f"volume {self.p.name} is a disk of domain {names}; detach it before deleting it",
                               attached_to=have["attached_to"])

    def _check_source(self):
        if self.p.source_image is None:
            return
        source = base_image(self.module.run_command, self.p.source_image, self.p.source_format)
        if source["virtual_size"] > self.p.size_gb * GIB:
            raise ValidationError(f"source_image {self.p.source_image} has a virtual size of "
                                  f"{source['virtual_size']} bytes, more than size_gb {self.p.size_gb}",
                                  what="size_gb")

    def _create(self, pool, capacity):
        name, pool_name = self.p.name, self.p.pool["name"]
        xml = build_volume_xml(name, capacity, self.p.new_format, self.p.pool["type"])
        with libvirt_errors(f"create volume {name} in pool {pool_name}"):
            vol = pool.createXML(xml, 0)
        if self.p.source_image is None:
            return vol
        ok = False
        try:
            with libvirt_errors(f"read volume {name}"):
                path = vol.path()
            args = ["qemu-img", "convert", "-q", "-n", "-f", self.p.source_format, "-O", self.p.new_format]
            if self.p.pool["type"] == "dir":
                args.append("--target-is-zero")  # a new sparse file or qcow2 reads as zeros; an LV may not
            rc, out, err = self.module.run_command(args + [self.p.source_image, path])
            if rc != 0:
                raise KvmfleetError(f"copy {self.p.source_image} into volume {name}: qemu-img convert failed "
                                    f"(rc={rc}): {(err or out or '').strip()}", rc=rc, stderr=err)
            ok = True
        finally:
            if not ok:
                with libvirt_errors(f"remove half-made volume {name}"):
                    vol.delete(0)
        return vol

    def _extend(self, vol, have, capacity):
        name = self.p.name
        running = [(dom, live) for dom, live, _config in attached_domains(self.conn, have["path"]) if live]
        if running and self.p.pool["type"] == "dir":
            dom, disk = running[0]
            with libvirt_errors(f"extend volume {name} through domain {dom.name()} ({disk['target']})"):
                dom.blockResize(disk["target"], capacity, BLOCK_RESIZE_BYTES)
            return
        with libvirt_errors(f"extend volume {name}"):
            vol.resize(capacity, 0)
        for dom, disk in running:  # a logical volume grew under QEMU: tell it, so the guest sees the size
            with libvirt_errors(f"tell domain {dom.name()} that {disk['target']} grew"):
                dom.blockResize(disk["target"], capacity, BLOCK_RESIZE_BYTES)


ARGUMENT_SPEC = {
    "pool": {"type": "str", "required": True},
    "pool_type": {"type": "str", "default": "dir", "choices": ["dir", "logical"]},
    "pool_path": {"type": "str"},
    "pool_vg": {"type": "str"},
    "name": {"type": "str", "required": True},
    "size_gb": {"type": "int"},
    "format": {"type": "str", "choices": ["qcow2", "raw"]},
    "source_image": {"type": "str"},
    "source_format": {"type": "str", "choices": ["qcow2", "raw"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "uri": {"type": "str", "default": "qemu:///system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = VolumeManager(module, VolumeParams(module.params))
        manager.run()
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
