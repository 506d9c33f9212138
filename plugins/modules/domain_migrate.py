#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: domain_migrate
short_description: Live-migrate a running libvirt domain to another host
version_added: 0.2.0
author:
- kvmfleet developers (@kvmfleet)
description:
- Runs on the source host. Migrates the running (or paused) domain I(name) to the libvirt of I(dest_uri), peer to peer
  (the source's libvirtd opens I(dest_uri) itself), keeping it running there, defined there and undefined here.
- Without shared storage (I(copy_storage=inc), the default) the writable disks are copied by the migration, only their
  top layer; the destination must already hold the same disks at the same paths, e.g. made by
  M(kvmfleet.compute.domain) with I(state=present) and the same spec (base image cached, empty overlays of the same
  size, the same seed), as Nova's pre_live_migration makes them. Read-only disks (the seed) are not copied.
- Waits for the migration, sampling libvirt's job statistics; after I(timeout) seconds the job is aborted and the
  domain keeps running here. The result carries the data transferred, the downtime libvirt measured and the samples.
- A volume on a local pool (attached with M(kvmfleet.compute.volume_attachment)) is copied like the other disks;
  the destination must hold it already, created by the caller with M(kvmfleet.compute.volume) (same pool, same
  name, same size; libvirt 9 refuses to pre-create a missing disk for an incremental storage copy).
  After the move the source's copy stays; delete it with M(kvmfleet.compute.volume) I(state=absent) on this host.
- After a migration with copied storage the domain's directory under I(instances_dir) is removed from this host.
- A domain that is not here but runs at the destination is C(changed=false).
extends_documentation_fragment:
- kvmfleet.compute.attributes
- kvmfleet.compute.libvirt
- kvmfleet.compute.libvirt.PATHS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  name:
    description:
    - Name of the domain. 1-64 characters of C(A-Za-z0-9._-), not starting with C(-) or C(.).
    type: str
    required: true
  uuid:
    description:
    - When given, the domain found (here or at the destination) must have this UUID.
    type: str
  dest_uri:
    description:
    - libvirt URI of the destination as this host reaches it, C(qemu+ssh://root@HOST/system) (the C(kvmfleet.compute.kvm_host) role's
      migration SSH; host keys are checked) or C(qemu+tls://HOST/system).
    - C(no_tty=1) is added to an ssh URI (no password prompt); C(no_verify) is refused.
    - Required unless O(abort=true).
    type: str
  migrate_uri:
    description:
    - Where the migration stream (and the disk copy) goes, C(tcp://ADDRESS) with the destination's address on the
      network the hosts share. Default, the destination's host name as libvirt resolves it.
    type: str
  live:
    description:
    - Keep the guest running while its memory is copied. C(false) pauses it for the whole migration (shorter total
      time, longer downtime).
    type: bool
    default: true
  copy_storage:
    description:
    - C(inc) copies the top layer of each writable disk (qcow2 overlays over a base image the destination has).
    - C(all) copies each writable disk whole.
    - C(none) copies no disk (shared storage, where the destination sees the same files).
    type: str
    choices: [inc, all, none]
    default: inc
  shared_disks:
    description:
    - Absolute paths of disks of the domain that are not copied because the destination sees the same storage at
      the same path (a volume on a shared pool, e.g. NFS). The other writable disks are copied as I(copy_storage)
      says (libvirt's C(migrate_disks), by target name). Each path must be a disk of the domain.
    - libvirt checks that a disk it does not copy is on a filesystem it knows as shared (NFS, GlusterFS, Ceph...)
      and refuses the migration otherwise.
    type: list
    elements: str
    default: []
  unsafe:
    description:
    - Skip libvirt's safety check of the disks it does not copy (shared filesystem, cache mode), for storage the
      caller knows is shared but libvirt cannot recognise as such (a directory several hosts see without a network
      filesystem, as in the kvmfleet lab). Data can be lost if the destination does not really see the same storage.
    type: bool
    default: false
  bandwidth:
    description:
    - Cap on the migration stream in MiB/s. Default, libvirt's (no cap).
    type: int
  timeout:
    description:
    - Seconds to wait for the migration; then it is aborted and the domain keeps running here.
    type: int
    default: 600
  abort:
    description:
    - Abort the outgoing migration of the domain running on this host, if one is under way, instead of
      starting one. The domain keeps running here. V(changed=false) when no migration of it is running.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Move web1 from kvm1 to kvm2 without shared storage
  kvmfleet.compute.domain_migrate:
    name: web1
    dest_uri: qemu+ssh://root@kvm2/system
    migrate_uri: tcp://10.0.0.12
    timeout: 300
  delegate_to: kvm1
  register: moved

- name: Abort the migration of web1 that another run started
  kvmfleet.compute.domain_migrate:
    name: web1
    abort: true
  delegate_to: kvm1

- name: Show the downtime
  ansible.builtin.debug:
    msg: "{{ moved.migration.downtime_ms }} ms down, {{ moved.migration.data_processed }} bytes sent"
"""

RETURN = r"""
domain:
  description: The domain after the run, as the destination sees it (or here, when it did not move).
  returned: always
  type: dict
  sample: {"name": "web1", "uuid": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab", "host": "dest", "state": "running"}
migration:
  description: libvirt's statistics of the finished (or aborted) job; empty when nothing was migrated.
  returned: always
  type: dict
  sample: {"time_elapsed_ms": 2310, "downtime_ms": 41, "data_total": 150994944, "data_processed": 23068672,
           "data_remaining": 0, "memory_total": 134217728, "memory_processed": 20971520, "disk_total": 16777216,
           "disk_processed": 2097152}
progress:
  description: Samples of the running job, at most 60, each with the elapsed ms and the bytes processed and remaining.
  returned: always
  type: list
  elements: dict
  sample: [{"time_elapsed_ms": 500, "data_processed": 8388608, "data_remaining": 142606336}]
removed:
  description: The directory removed from this host after the move, if any.
  returned: always
  type: str
  sample: /var/lib/libvirt/kvmfleet/instances/web1
"""

import os
import shutil
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
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
    domain_state,
    libvirt,
    libvirt_errors,
    lookup_domain,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import (
    path_inside,
    validate_abs_path,
    validate_name,
    validate_uuid,
)

ACTIVE = ("running", "paused", "blocked")
DEST_SCHEMES = ("qemu+ssh", "qemu+tls")
MIGRATE_SCHEMES = ("tcp",)
STAT_KEYS = {"time_elapsed": "time_elapsed_ms", "downtime": "downtime_ms", "data_total": "data_total",
             "data_processed": "data_processed", "data_remaining": "data_remaining",
             "memory_total": "memory_total", "memory_processed": "memory_processed",
             "memory_remaining": "memory_remaining", "disk_total": "disk_total", "disk_processed": "disk_processed",
             "memory_bps": "memory_bps"}
MAX_SAMPLES = 60
POLL = 0.5


def _dest_uri(value):
    """The destination URI, checked: an ssh or tls transport, no host key opt-out; ssh gets no_tty=1."""
    if not isinstance(value, str) or not value or any(c in value for c in "\x00\n\r \t"):
        raise ValidationError(f"dest_uri {value!r} is not a libvirt URI", what="dest_uri")
    url = urllib.parse.urlsplit(value)
    if url.scheme not in DEST_SCHEMES or not url.hostname:
        raise ValidationError(f"dest_uri {value!r} must be {' or '.join(s + '://HOST/system' for s in DEST_SCHEMES)}",
                              what="dest_uri")
    query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    if any(key == "no_verify" for key, _value in query):
        raise ValidationError(f"dest_uri {value!r}: no_verify is refused (host keys and certificates are checked)",
                              what="dest_uri")
    if url.scheme == "qemu+ssh" and not any(key == "no_tty" for key, _value in query):
        query.append(("no_tty", "1"))
    return urllib.parse.urlunsplit(url._replace(query=urllib.parse.urlencode(query)))


def _migrate_uri(value):
    if value is None:
        return None
    url = urllib.parse.urlsplit(value) if isinstance(value, str) else None
    if url is None or url.scheme not in MIGRATE_SCHEMES or not url.hostname or url.path or url.query:
        raise ValidationError(f"migrate_uri {value!r} must be tcp://ADDRESS[:PORT]", what="migrate_uri")
    return value


class MigrateParams:
    """The module parameters, validated."""

    def __init__(self, params):
        self.uri = params["uri"]
        self.name = validate_name(params["name"], "domain name")
        self.uuid = validate_uuid(params["uuid"]) if params.get("uuid") is not None else None
        self.abort = params["abort"]
        if params.get("dest_uri") is None and not self.abort:
            raise ValidationError("dest_uri is required to migrate (only abort=true needs none)", what="dest_uri")
        self.dest_uri = _dest_uri(params["dest_uri"]) if params.get("dest_uri") is not None else None
        self.migrate_uri = _migrate_uri(params.get("migrate_uri"))
        self.live = params["live"]
        self.copy_storage = params["copy_storage"]
        self.shared_disks = [validate_abs_path(path, "shared_disks entry") for path in params.get("shared_disks") or []]
        if self.shared_disks and self.copy_storage == "none":
            raise ValidationError("shared_disks is for a migration that copies the other disks; with copy_storage "
                                  "none no disk is copied", what="shared_disks")
        self.unsafe = bool(params.get("unsafe"))
        self.bandwidth = params.get("bandwidth")
        if self.bandwidth is not None and self.bandwidth < 1:
            raise ValidationError(f"bandwidth must be at least 1 MiB/s, got {self.bandwidth}", what="bandwidth")
        self.timeout = params["timeout"]
        if self.timeout < 1:
            raise ValidationError(f"timeout must be at least 1 second, got {self.timeout}", what="timeout")
        self.instances_dir = validate_abs_path(params["instances_dir"], "instances_dir")


def migrate_disks(domain_xml, shared):
    """Target names of the writable disks to copy: every one with a source that is not in ``shared``.
    A ``shared`` path that is no disk of the domain is an error (a typo would copy nothing less)."""
    root = ET.fromstring(domain_xml)
    copy, seen = [], set()
    for disk in root.findall("devices/disk"):
        source, target = disk.find("source"), disk.find("target")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        if path is None or target is None or disk.get("device", "disk") != "disk" or disk.find("readonly") is not None:
            continue
        path = os.path.normpath(path)
        if path in shared:
            seen.add(path)
        else:
            copy.append(target.get("dev"))
    unknown = [path for path in shared if path not in seen]
    if unknown:
        raise ValidationError(f"shared_disks {', '.join(unknown)}: not a writable disk of the domain",
                              what="shared_disks")
    return copy


def _stats(raw):
    return {ours: raw[key] for key, ours in STAT_KEYS.items() if key in raw}


class MigrateManager:
    def __init__(self, params, check_mode=False):
        self.p = params
        self.check_mode = check_mode
        self.changed = False
        self.domain = {"name": params.name}
        self.migration = {}
        self.progress = []
        self.removed = None

    @property
    def results(self):
        return {"changed": self.changed, "domain": self.domain, "migration": self.migration,
                "progress": self.progress, "removed": self.removed}

    def run(self):
        src = dest = None
        try:
            src = connect(self.p.uri)
            if self.p.abort:
                self._abort(src)
                return
            dest = connect(self.p.dest_uri)
            self._run(src, dest)
        finally:
            close(dest)
            close(src)

    def _describe(self, dom, where):
        with libvirt_errors(f"read domain {self.p.name} on the {where}"):
            uuid = dom.UUIDString()
        if self.p.uuid is not None and uuid != self.p.uuid:
            raise InvalidState(f"domain {self.p.name} on the {where} has uuid {uuid}, not {self.p.uuid}",
                               uuid=uuid)
        return {"name": self.p.name, "uuid": uuid, "host": where, "state": domain_state(dom)}

    def _run(self, src, dest):
        here = lookup_domain(src, self.p.name)
        there = lookup_domain(dest, self.p.name)
        here_view = self._describe(here, "source") if here is not None else None
        there_view = self._describe(there, "dest") if there is not None else None
        if here_view is not None and there_view is not None and here_view["uuid"] != there_view["uuid"]:
            raise InvalidState(f"domain {self.p.name} has uuid {here_view['uuid']} here and "
                               f"{there_view['uuid']} at the destination: not the same domain")
        if here_view is None or here_view["state"] not in ACTIVE:
            if there_view is not None and there_view["state"] in ACTIVE:
                self.domain = there_view  # already moved
                return
            if here_view is None:
                raise InvalidState(f"domain {self.p.name} is not on this host and does not run at the destination")
            raise InvalidState(f"domain {self.p.name} is {here_view['state']}: a live migration needs it running "
                               "or paused", state=here_view["state"])
        if there_view is not None and there_view["state"] in ACTIVE:
            raise InvalidState(f"domain {self.p.name} runs both here and at the destination; refusing to migrate",
                               state=there_view["state"])
        self.domain = here_view
        self.changed = True
        if self.check_mode:
            return
        self._migrate(here)
        with libvirt_errors(f"look up domain {self.p.name} at the destination"):
            moved = dest.lookupByName(self.p.name)
        self.domain = self._describe(moved, "dest")
        try:
            with libvirt_errors("read the completed job"):
                done = _stats(moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED))
        except KvmfleetError:
            done = {}
        self.migration.update(done)
        if self.p.copy_storage != "none":
            self._remove_source_dir(src)

    def _abort(self, src):
        """Abort the domain's outgoing migration job here, if there is one."""
        dom = lookup_domain(src, self.p.name)
        if dom is None:
            self.domain = {"name": self.p.name, "host": None, "state": "absent"}
            return
        self.domain = self._describe(dom, "source")
        with libvirt_errors(f"read the job of domain {self.p.name}"):
            raw = dom.jobStats(0)
        outgoing = getattr(libvirt, "VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT", 6)
        if not raw.get("type") or raw.get("operation", outgoing) != outgoing:
            return  # no job, or not a migration out of here: nothing to abort
        self.migration = _stats(raw)
        self.changed = True
        if self.check_mode:
            return
        try:
            with libvirt_errors(f"abort the migration of {self.p.name}"):
                dom.abortJob()
        except KvmfleetError:
            with libvirt_errors(f"read the job of domain {self.p.name}"):
                if dom.jobStats(0).get("type"):
                    raise
            self.changed = False  # it ended just now: nothing was aborted
        self.domain = self._describe(dom, "source")

    def _flags(self, migrate_disks=None):
        flags = (libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
                 | libvirt.VIR_MIGRATE_ABORT_ON_ERROR)
        if self.p.live:
            flags |= libvirt.VIR_MIGRATE_LIVE
        if self.p.unsafe:
            flags |= libvirt.VIR_MIGRATE_UNSAFE
        if migrate_disks == []:
            return flags  # every writable disk is shared: nothing to copy
        if self.p.copy_storage == "inc":
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
        elif self.p.copy_storage == "all":
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
        return flags

    def _params(self, dom):
        params = {}
        if self.p.migrate_uri is not None:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = self.p.migrate_uri
        if self.p.bandwidth is not None:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = self.p.bandwidth
        with libvirt_errors(f"read the definition of domain {self.p.name}"):
            xml_flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = dom.XMLDesc(xml_flags)
            live_xml = dom.XMLDesc(0)
        if self.p.shared_disks:
            disks = migrate_disks(live_xml, self.p.shared_disks)
            if disks:
                params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = disks
        return params

    def _migrate(self, dom):
        """migrateToURI3 in a thread; this one samples the job and aborts it after the timeout."""
        outcome = {}
        params = self._params(dom)
        flags = self._flags(params.get(libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS, [] if self.p.shared_disks else None))

        def work():
            try:
                dom.migrateToURI3(self.p.dest_uri, params, flags)
            except libvirt.libvirtError as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=work, name=f"migrate-{self.p.name}", daemon=True)
        started = time.monotonic()
        worker.start()
        aborted = False
        while worker.is_alive():
            worker.join(POLL)
            if not worker.is_alive():
                break
            self._sample(dom)
            if not aborted and time.monotonic() - started > self.p.timeout:
                aborted = True
                try:
                    with libvirt_errors(f"abort the migration of {self.p.name}"):
                        dom.abortJob()
                except KvmfleetError:
                    pass  # the job may have ended just now; the outcome says how
        error = outcome.get("error")
        if error is None:
            return
        self.changed = False
        state = self._state_after(dom)
        if aborted:
            raise WaitTimeout(f"migration of domain {self.p.name} did not finish within {self.p.timeout}s; aborted, "
                              f"the domain is {state} on this host", state=state)
        raise KvmfleetError(f"migrate domain {self.p.name} to {self.p.dest_uri}: "
                            f"{error.get_error_message() or error}; the domain is {state} on this host",
                            libvirt_error_code=error.get_error_code(), state=state)

    def _sample(self, dom):
        try:
            with libvirt_errors("read the migration job"):
                raw = dom.jobStats(0)
        except KvmfleetError:
            return
        stats = _stats(raw)
        if not raw.get("type") or not stats.get("time_elapsed_ms"):
            return  # no job (not started yet, or over): nothing to sample
        self.migration = stats
        self.progress.append({k: stats[k] for k in ("time_elapsed_ms", "data_processed", "data_remaining")
                              if k in stats})
        if len(self.progress) > MAX_SAMPLES:
            del self.progress[1:3]  # keep the first and the latest, thin the middle

    def _state_after(self, dom):
        try:
            return domain_state(dom)
        except KvmfleetError:
            return "gone"

    def _remove_source_dir(self, src):
        directory = os.path.join(self.p.instances_dir, self.p.name)
        if not os.path.isdir(directory) or not path_inside(directory, self.p.instances_dir):
            return
        if lookup_domain(src, self.p.name) is not None:
            return  # still defined here (should not happen with UNDEFINE_SOURCE): keep its disks
        shutil.rmtree(directory)
        self.removed = directory


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "uuid": {"type": "str"},
    "dest_uri": {"type": "str"},
    "migrate_uri": {"type": "str"},
    "live": {"type": "bool", "default": True},
    "copy_storage": {"type": "str", "choices": ["inc", "all", "none"], "default": "inc"},
    "shared_disks": {"type": "list", "elements": "str", "default": []},
    "unsafe": {"type": "bool", "default": False},
    "bandwidth": {"type": "int"},
    "timeout": {"type": "int", "default": 600},
    "abort": {"type": "bool", "default": False},
    "uri": {"type": "str", "default": "qemu:///system"},
    "images_dir": {"type": "path", "default": "/var/lib/libvirt/kvmfleet/images"},
    "instances_dir": {"type": "path", "default": "/var/lib/libvirt/kvmfleet/instances"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    manager = None
    try:
        manager = MigrateManager(MigrateParams(module.params), check_mode=module.check_mode)
        manager.run()
    except KvmfleetError as exc:
        result = exc.to_result()
        if manager is not None:
            result.update({k: v for k, v in manager.results.items() if k != "changed"})
        module.fail_json(**result)
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
