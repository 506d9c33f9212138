# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One libvirt domain brought to a desired state: the parameters (ARGUMENT_SPEC, DomainParams) and the
DomainManager that the domain module runs once and the domains module runs for many domains at once."""

from __future__ import annotations

import datetime
import os
import time
import uuid as uuidlib

from ansible_collections.kvmfleet.compute.plugins.module_utils._disks import (
    GIB,
    base_image,
    create_empty,
    create_overlay,
    create_seed,
    remove_dir_if_empty,
    remove_file,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._domain_xml import (
    build_domain_xml,
    check_guest_support,
    guest_capabilities,
    parse_domain_xml,
    update_config_xml,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    InvalidState,
    KvmfleetError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._interface import normalise_nic
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    close,
    connect,
    domain_state,
    effective_xml,
    libvirt_errors,
    lookup_domain,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._metadata import (
    NAMESPACE,
    PREFIX,
    metadata_xml,
    normalise_metadata,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._plan import (
    boots_fresh,
    config_changes,
    domain_view,
    managed_view,
    metadata_changes,
    pending_restart,
    power_steps,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._seed import seed_options, validate_seed_options
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import (
    path_inside,
    validate_abs_path,
    validate_name,
    validate_uuid,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._waiter import wait as wait_for

# libvirt flag values, as numbers so the module imports without libvirt (it then fails cleanly)
XML_INACTIVE = 2
START_PAUSED = 1
SAVE_RUNNING = 2
UNDEFINE_NVRAM = 4
UNDEFINE_FLAGS = 1 | 2 | UNDEFINE_NVRAM  # MANAGED_SAVE | SNAPSHOTS_METADATA | NVRAM
META_ELEMENT = 2
AFFECT_LIVE = 1
AFFECT_CONFIG = 2
SHUTDOWN_RETRY_INTERVAL = 5  # seconds between ACPI power button presses while stopping
ERR_NO_SUPPORT = 3  # a driver without a call or flag
ERR_INVALID_ARG = 8  # a driver without a flag, e.g. START_PAUSED
RESIZE_ORIG_SUFFIX = ".resize-orig"  # the original of a disk grown by an in-place resize (instance_resize.yml)


def _undefine(dom, name):
    """Undefine with its managed save, snapshot metadata and NVRAM (without NVRAM where a driver lacks it)."""
    try:
        with libvirt_errors(f"undefine domain {name}"):
            dom.undefineFlags(UNDEFINE_FLAGS)
    except KvmfleetError as exc:
        if exc.details.get("libvirt_error_code") != ERR_INVALID_ARG:
            raise
        with libvirt_errors(f"undefine domain {name}"):
            dom.undefineFlags(UNDEFINE_FLAGS & ~UNDEFINE_NVRAM)


class DomainParams:
    """The module parameters, validated and with paths resolved. Raises ValidationError."""

    name: str
    uuid: str | None
    uri: str
    state: str
    vcpus: int | None
    memory_mb: int | None
    virt_type: str
    arch: str
    machine: str | None
    images_dir: str
    instances_dir: str
    instance_dir: str
    root_disk: dict | None  # {image, path, size_gb}
    disks: list  # [{size_gb, bus}]
    nics: list  # [{network, mac, model, target, mtu, filter}]
    config_drive: dict | None
    metadata: dict
    serial_log: bool
    vnc: bool
    force_stop: bool
    stop_timeout: int
    wait: bool
    timeout: int

    def __init__(self, params):
        self.name = validate_name(params["name"], "domain name")
        self.uuid = validate_uuid(params["uuid"], "uuid") if params.get("uuid") else None
        self.uri = params["uri"]
        self.state = params["state"]
        self.vcpus = params.get("vcpus")
        self.memory_mb = params.get("memory_mb")
        for field in ("vcpus", "memory_mb"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise ValidationError(f"{field} must be at least 1, got {value}")
        self.virt_type = params["virt_type"]
        self.arch = validate_name(params["arch"], "arch")
        self.machine = validate_name(params["machine"], "machine type") if params.get("machine") else None
        self.images_dir = validate_abs_path(params["images_dir"], "images_dir")
        self.instances_dir = validate_abs_path(params["instances_dir"], "instances_dir")
        self.instance_dir = os.path.join(self.instances_dir, self.name)
        self.root_disk = None
        if params.get("root_disk"):
            self.root_disk = self._root_disk(params["root_disk"])
        self.disks = []
        for i, disk in enumerate(params.get("disks") or []):
            if disk["size_gb"] < 1:
                raise ValidationError(f"size_gb of disk {i} must be at least 1")
            self.disks.append({"size_gb": disk["size_gb"], "bus": disk.get("bus") or "virtio"})
        self.nics = [normalise_nic(nic, f"nic {i}") for i, nic in enumerate(params.get("nics") or [])]
        self.config_drive = params.get("config_drive")
        if self.config_drive is not None:
            for key in ("hostname", "instance_id"):
                if self.config_drive.get(key) is not None:
                    validate_name(self.config_drive[key], f"config_drive {key}")
            validate_seed_options(self.config_drive)
        self.metadata = normalise_metadata(params.get("metadata") or {})
        self.metadata.pop("disks", None)
        self.serial_log = params["serial_log"]
        self.vnc = params["vnc"]
        self.force_stop = params["force_stop"]
        self.stop_timeout = params["stop_timeout"]
        self.wait = params["wait"]
        self.timeout = params["timeout"]

    def _root_disk(self, root):
        image = root["image"]
        if image.startswith("/"):
            path = validate_abs_path(image, "root_disk image")
            validate_name(os.path.basename(path), "root_disk image file name")
        else:
            path = os.path.join(self.images_dir, validate_name(image, "root_disk image file name"))
        size_gb = root.get("size_gb")
        if size_gb is not None and size_gb < 1:
            raise ValidationError(f"root_disk size_gb must be at least 1, got {size_gb}")
        volume = root.get("volume")
        if volume is not None:
            volume = validate_abs_path(volume, "root_disk volume")
            validate_name(os.path.basename(volume), "root_disk volume file name")
        return {"image": image, "path": path, "size_gb": size_gb, "format": root.get("format") or "qcow2",
                "volume": volume, "volume_format": root.get("volume_format") or "qcow2"}


class DomainManager:
    """Brings one domain to the desired state: one plan, applied only outside check mode."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.conn = None
        self.plan = []
        self.restart_required = []
        self.before = None
        self.after = None
        self.domain = None
        self.warnings = []
        # what this run created, removed again if the run fails
        self._created_files = []
        self._created_dir = False
        self._defined = False

    @property
    def results(self):
        return {
            "changed": bool(self.plan),
            "domain": self.domain,
            "restart_required": self.restart_required,
            "diff": {"before": self.before, "after": self.after},
        }

    def run(self):
        self.conn = connect(self.p.uri)
        try:
            self._run()
        except WaitTimeout as exc:
            exc.partial = self.results
            raise
        finally:
            close(self.conn)
        for warning in self.warnings:
            self.module.warn(warning)

    def _run(self):
        dom = lookup_domain(self.conn, self.p.name)
        if dom is None:
            self._absent_domain()
        elif self.p.state == "absent":
            self._remove(dom)
        else:
            self._existing_domain(dom)

    # -- reading -------------------------------------------------------------------------------------

    def _read(self, dom, inactive=False):
        with libvirt_errors(f"read definition of domain {self.p.name}"):
            return parse_domain_xml(dom.XMLDesc(XML_INACTIVE if inactive else 0))

    def _host_memory_mb(self):
        # MemTotal, as host_facts reports it: libvirt's node info sums NUMA node memory, which can be
        # smaller than the host's total (seen on a VM host whose node0 reported a fraction of it).
        try:
            with open("/proc/meminfo", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1]) // 1024
        except (OSError, ValueError, IndexError):
            pass
        with libvirt_errors("read host memory"):
            return self.conn.getInfo()[1]

    def _check_memory(self):
        if self.p.memory_mb is not None:
            total = self._host_memory_mb()
            if self.p.memory_mb > total:
                raise ValidationError(f"memory_mb {self.p.memory_mb} is more than the host's total memory ({total} MiB)",
                                      memory_mb=self.p.memory_mb, host_memory_mb=total)

    def _read_running_config(self, dom, state):
        return parse_domain_xml(effective_xml(dom, state))

    def _describe(self, dom):
        state = domain_state(dom)
        return domain_view(self._read_running_config(dom, state), state)

    # -- a domain that does not exist yet ------------------------------------------------------------

    def _absent_domain(self):
        if self.p.state == "absent":
            self.before = self.after = {"state": "absent"}
            return
        spec, steps, base = self._creation_plan()
        self.plan = [("create", path) for path in self._spec_files(spec)] + steps
        self.before = {"state": "absent"}
        predicted = parse_domain_xml(build_domain_xml(spec))
        final = steps[-1][1]
        self.after = managed_view(predicted, final)
        if self.module.check_mode:
            self.domain = domain_view(predicted, final)
            return
        ok = False
        try:
            self._create_files(spec, base)
            with libvirt_errors(f"define domain {self.p.name}"):
                dom = self.conn.defineXML(build_domain_xml(spec))
            self._defined = True
            self._apply_power(dom, steps[1:])
            ok = True
        finally:
            if not ok:
                self._rollback()
        self.domain = self._describe(dom)

    def _creation_plan(self):
        missing = [f for f in ("vcpus", "memory_mb", "root_disk") if getattr(self.p, f) in (None, [])]
        if missing:
            verb = "are" if len(missing) > 1 else "is"
            raise ValidationError(f"domain {self.p.name} does not exist; {' and '.join(missing)} {verb} required "
                                  "to create it")
        self._check_memory()
        with libvirt_errors("read host capabilities"):
            driver = self.conn.getType()
            caps = self.conn.getCapabilities() if driver == "QEMU" else None
        if caps is not None:  # machine types and kvm/qemu domain types are the QEMU driver's vocabulary
            check_guest_support(guest_capabilities(caps), self.p.virt_type, self.p.arch, self.p.machine, self.p.vcpus)
        for nic in self.p.nics:
            with libvirt_errors("look up network {} for domain {}".format(nic["network"], self.p.name)):
                active = self.conn.networkLookupByName(nic["network"]).isActive()
            if not active:
                raise InvalidState("network {} is not active; domain {} could not start on it".format(nic["network"], self.p.name), network=nic["network"])
        volume = self.p.root_disk["volume"]
        if volume is not None:
            # boot from volume: the volume is the root disk as it is (made from the image by the volume
            # module); the domain neither creates nor deletes it
            if not os.path.exists(volume):
                raise InvalidState(f"root_disk volume {volume} of domain {self.p.name} does not exist", path=volume)
            base = {"path": self.p.root_disk["path"], "format": self.p.root_disk["format"], "virtual_size": 0}
        else:
            base = base_image(self.module.run_command, self.p.root_disk["path"], self.p.root_disk["format"])
        size_bytes = base["virtual_size"]
        if volume is None and self.p.root_disk["size_gb"] is not None:
            size_bytes = self.p.root_disk["size_gb"] * GIB
            if size_bytes < base["virtual_size"]:
                raise ValidationError(f"root_disk size_gb {self.p.root_disk['size_gb']} is smaller than base image "
                                      f"{base['path']} ({base['virtual_size']} bytes)")
        base["root_size"] = size_bytes
        domain_uuid = self.p.uuid or str(uuidlib.uuid4())
        d = self.p.instance_dir
        disks = [{"path": os.path.join(d, "disk"), "format": "qcow2", "bus": "virtio", "kind": "root"}
                 if volume is None else
                 {"path": volume, "format": self.p.root_disk["volume_format"], "bus": "virtio", "kind": "volume"}]
        for i, extra in enumerate(self.p.disks):
            disks.append({"path": os.path.join(d, f"disk.eph{i}"), "format": "qcow2", "bus": extra["bus"],
                          "kind": "empty", "size_gb": extra["size_gb"]})
        if self.p.config_drive is not None:
            disks.append({"path": os.path.join(d, "disk.config"), "format": "raw", "bus": "virtio",
                          "readonly": True, "kind": "seed"})
        for disk in disks:
            if disk["kind"] != "volume" and os.path.lexists(disk["path"]):
                raise InvalidState(f"refusing to create domain {self.p.name}: {disk['path']} already exists and "
                                   "was not made by this run", path=disk["path"])
        now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - hosts may run Python < 3.11
        metadata = {"uuid": domain_uuid, "name": self.p.name, "image": os.path.basename(base["path"]),
                    "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        metadata.update(self.p.metadata)
        metadata["disks"] = [disk["path"] for disk in disks if disk["kind"] != "volume"]  # what delete removes
        spec = {
            "name": self.p.name, "uuid": domain_uuid, "virt_type": self.p.virt_type, "arch": self.p.arch,
            "machine": self.p.machine, "vcpus": self.p.vcpus, "memory_mb": self.p.memory_mb,
            "disks": disks, "nics": self.p.nics,
            "serial_log": os.path.join(d, "console.log") if self.p.serial_log else None,
            "vnc": self.p.vnc, "metadata": metadata,
        }
        return spec, power_steps("absent", self.p.state), base

    @staticmethod
    def _spec_files(spec):
        return [disk["path"] for disk in spec["disks"] if disk["kind"] != "volume"]

    def _create_files(self, spec, base):
        run = self.module.run_command
        if not os.path.isdir(self.p.instance_dir):
            os.makedirs(self.p.instance_dir, mode=0o755)
            self._created_dir = True
        for disk in spec["disks"]:
            if disk["kind"] == "volume":
                continue  # there already, and never ours to remove
            self._created_files.append(disk["path"])
            if disk["kind"] == "root":
                create_overlay(run, base["path"], base["format"], disk["path"], base["root_size"])
            elif disk["kind"] == "empty":
                create_empty(run, disk["path"], disk["size_gb"])
            else:
                drive = self.p.config_drive
                create_seed(run, disk["path"], drive.get("hostname") or self.p.name,
                            drive.get("instance_id") or spec["uuid"], drive.get("user_data"), **seed_options(drive))
        if spec["serial_log"]:
            self._created_files.append(spec["serial_log"])

    def _rollback(self):
        """Undo this run's creations; errors here must not hide the failure that caused the rollback."""
        if self._defined:
            dom = lookup_domain(self.conn, self.p.name)
            if dom is not None:
                try:
                    with libvirt_errors(f"clean up domain {self.p.name}"):
                        if dom.isActive():
                            dom.destroy()
                        _undefine(dom, self.p.name)
                except KvmfleetError as exc:
                    self.warnings.append(f"cleanup left domain {self.p.name} defined: {exc}")
        for path in self._created_files:
            try:
                remove_file(path)
            except OSError as exc:
                self.warnings.append(f"cleanup could not remove {path}: {exc}")
        if self._created_dir:
            remove_dir_if_empty(self.p.instance_dir)

    # -- a domain that exists ------------------------------------------------------------------------

    def _existing_domain(self, dom):
        config = self._read(dom, inactive=True)
        state = domain_state(dom)
        if self.p.uuid and config["uuid"] != self.p.uuid:
            raise InvalidState("domain {} exists with uuid {}, not {}".format(self.p.name, config["uuid"], self.p.uuid),
                               uuid=config["uuid"])
        changes = config_changes(config, {"vcpus": self.p.vcpus, "memory_mb": self.p.memory_mb})
        if "memory_mb" in changes:
            self._check_memory()
        new_meta = metadata_changes(config["metadata"], self.p.metadata)
        self._warn_unmanaged_differences(config)
        steps = power_steps(state, self.p.state)
        self.plan = [("set", field) for field in changes] + ([("set", "metadata")] if new_meta else []) + steps

        final = steps[-1][1] if steps else state
        predicted = dict(config)
        predicted.update({field: after for field, (_before, after) in changes.items()})
        if new_meta is not None:
            predicted["metadata"] = new_meta
        self.before = managed_view(config, state)
        self.after = managed_view(predicted, final)
        if self.module.check_mode:
            live = predicted if boots_fresh(state, steps) else self._read_running_config(dom, state)
            self.restart_required = pending_restart(predicted, live, final)
            self.domain = domain_view(dict(live, metadata=predicted["metadata"]), final)
            return

        if changes:
            xml = dom.XMLDesc(XML_INACTIVE)
            new_xml = update_config_xml(xml, vcpus=self.p.vcpus if "vcpus" in changes else None,
                                        memory_mb=self.p.memory_mb if "memory_mb" in changes else None)
            with libvirt_errors(f"update definition of domain {self.p.name}"):
                dom = self.conn.defineXML(new_xml)
        if new_meta is not None:
            self._set_metadata(dom, new_meta)
        self._apply_power(dom, steps)
        state = domain_state(dom)
        self.restart_required = pending_restart(self._read(dom, inactive=True),
                                                self._read_running_config(dom, state), state)
        self.domain = self._describe(dom)

    def _warn_unmanaged_differences(self, config):
        if self.p.nics and [n["network"] for n in self.p.nics] != [n["network"] for n in config["nics"]]:
            self.warnings.append(f"nics of existing domain {self.p.name} differ from the request; this module does not "
                                 "change the NICs of an existing domain")
        if self.p.disks:
            have = len([d for d in config["disks"] if not d["readonly"]]) - 1
            if have != len(self.p.disks):
                self.warnings.append(f"domain {self.p.name} has {max(have, 0)} extra disks, {len(self.p.disks)} "
                                     "requested; this module does not change the disks of an existing domain")

    def _set_metadata(self, dom, meta):
        flags = AFFECT_CONFIG | (AFFECT_LIVE if dom.isActive() else 0)
        with libvirt_errors(f"set metadata of domain {self.p.name}"):
            dom.setMetadata(META_ELEMENT, metadata_xml(meta), PREFIX, NAMESPACE, flags)

    def _remove(self, dom):
        config = self._read(dom, inactive=True)
        live = self._read(dom)
        state = domain_state(dom)
        steps = power_steps(state, "absent")
        self.plan = steps
        self.before = managed_view(config, state)
        self.after = {"state": "absent"}
        if self.module.check_mode:
            return
        self._apply_power(dom, steps)
        owned = list((config["metadata"] or {}).get("disks") or [])
        attached = {d["path"] for d in config["disks"] + live["disks"] if d["path"]}
        logs = [f["console_log"] for f in (config, live) if f["console_log"]]
        dirs = set()
        for path in owned:
            # metadata can be edited by anyone with libvirt access: delete only what is also attached
            if path not in attached:
                self.warnings.append(f"not removing {path}: listed in the metadata but not attached to the domain")
                continue
            if path_inside(path, self.p.images_dir):
                self.warnings.append(f"not removing {path}: it is inside the image cache")
                continue
            if remove_file(path):
                dirs.add(os.path.dirname(path))
            # the original of a disk grown by an in-place resize, kept beside it until confirm or revert
            if remove_file(path + RESIZE_ORIG_SUFFIX):
                dirs.add(os.path.dirname(path))
        for path in logs:
            # the console log is ours only when it sits beside a disk we created
            if os.path.dirname(path) in dirs or path_inside(path, self.p.instance_dir):
                remove_file(path)
                dirs.add(os.path.dirname(path))
        dirs.add(self.p.instance_dir)
        for directory in sorted(dirs):
            remove_dir_if_empty(directory)

    # -- power ---------------------------------------------------------------------------------------

    def _apply_power(self, dom, steps):
        for action, expected in steps:
            getattr(self, "_do_" + action)(dom)
            if self.p.wait and action not in ("shutdown", "undefine"):
                wait_for(self.conn, self.p.name, expected, self.p.timeout)

    def _call(self, doing, func, *args):
        with libvirt_errors(f"{doing} domain {self.p.name}"):
            return func(*args)

    def _do_define(self, dom):
        raise InvalidState("internal: define is done by the creation path")  # never planned for existing

    def _do_start(self, dom):
        self._call("start", dom.create)

    def _do_start_paused(self, dom):
        try:
            self._call("start", dom.createWithFlags, START_PAUSED)
        except KvmfleetError as exc:
            if exc.details.get("libvirt_error_code") not in (ERR_NO_SUPPORT, ERR_INVALID_ARG):
                raise
            # a driver without START_PAUSED: start, then pause at once
            self._do_start(dom)
            self._do_pause(dom)

    def _do_resume(self, dom):
        self._call("resume", dom.resume)

    def _do_pause(self, dom):
        self._call("pause", dom.suspend)

    def _do_managed_save(self, dom):
        self._call("save (managed save)", dom.managedSave, SAVE_RUNNING)

    def _do_discard_saved_state(self, dom):
        self._call("discard managed save of", dom.managedSaveRemove, 0)

    def _do_wakeup(self, dom):
        self._call("wake up", dom.pmWakeup, 0)

    def _do_destroy(self, dom):
        self._call("destroy", dom.destroy)

    def _do_wait_shutoff(self, dom):
        wait_for(self.conn, self.p.name, "shutoff", self.p.stop_timeout)

    def _do_undefine(self, dom):
        _undefine(dom, self.p.name)

    def _do_shutdown(self, dom):
        self._call("shut down", dom.shutdown)
        if not self.p.wait:
            return
        try:
            self._wait_graceful_shutdown(dom)
        except WaitTimeout as exc:
            if not self.p.force_stop:
                raise
            self.warnings.append(f"domain {self.p.name} did not shut down within {self.p.stop_timeout}s ({exc.last_state}); destroyed it")
            if domain_state(dom) != "shutoff":
                self._do_destroy(dom)

    def _wait_graceful_shutdown(self, dom):
        """Wait for shutoff, pressing the power button again now and then (like Nova's clean shutdown):
        a press during early boot, before the guest listens for it, is lost."""
        deadline = time.monotonic() + self.p.stop_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                return wait_for(self.conn, self.p.name, "shutoff", max(0, min(SHUTDOWN_RETRY_INTERVAL, remaining)))
            except WaitTimeout as exc:
                if deadline - time.monotonic() <= 0:
                    raise WaitTimeout(f"timed out after {self.p.stop_timeout}s waiting for domain {self.p.name} to shut down; it is {exc.last_state}",
                                      last_state=exc.last_state, name=self.p.name) from exc
                if exc.last_state == "running":
                    self._call("shut down", dom.shutdown)


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "uuid": {"type": "str"},
    "uri": {"type": "str", "default": "qemu:///system"},
    "state": {"type": "str", "default": "running",
              "choices": ["present", "running", "stopped", "paused", "suspended", "absent"]},
    "vcpus": {"type": "int"},
    "memory_mb": {"type": "int"},
    "virt_type": {"type": "str", "default": "kvm", "choices": ["kvm", "qemu"]},
    "arch": {"type": "str", "default": "x86_64"},
    "machine": {"type": "str"},
    "root_disk": {"type": "dict", "options": {
        "image": {"type": "str", "required": True},
        "size_gb": {"type": "int"},
        "format": {"type": "str", "default": "qcow2", "choices": ["qcow2", "raw"]},
        "volume": {"type": "path"},
        "volume_format": {"type": "str", "default": "qcow2", "choices": ["qcow2", "raw"]}}},
    "disks": {"type": "list", "elements": "dict", "options": {
        "size_gb": {"type": "int", "required": True},
        "bus": {"type": "str", "default": "virtio", "choices": ["virtio", "sata", "scsi"]}}},
    "nics": {"type": "list", "elements": "dict", "options": {
        "network": {"type": "str", "required": True}, "mac": {"type": "str"},
        "model": {"type": "str", "default": "virtio", "choices": ["virtio", "e1000", "e1000e", "rtl8139"]},
        "target": {"type": "str"}, "mtu": {"type": "int"}, "filter": {"type": "str"}}},
    "config_drive": {"type": "dict", "options": {
        "hostname": {"type": "str"},
        "instance_id": {"type": "str"},
        "user_data": {"type": "str", "no_log": True},
        "format": {"type": "str", "default": "nocloud", "choices": ["nocloud", "config-drive"]},
        "public_keys": {"type": "dict", "no_log": False},
        "network_data": {"type": "dict"},
        "meta_data": {"type": "dict"}}},
    "metadata": {"type": "dict"},
    "serial_log": {"type": "bool", "default": True},
    "vnc": {"type": "bool", "default": True},
    "images_dir": {"type": "path", "default": "/var/lib/libvirt/kvmfleet/images"},
    "instances_dir": {"type": "path", "default": "/var/lib/libvirt/kvmfleet/instances"},
    "force_stop": {"type": "bool", "default": True},
    "stop_timeout": {"type": "int", "default": 60},
    "wait": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 120},
}
