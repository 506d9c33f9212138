# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host facts for placement, assembled from raw observations.

``HostObservation`` holds what was read from libvirt and the host (XML documents, /proc text,
statvfs numbers); ``build_host_facts`` turns it into the ``host_facts`` dict without touching the
host, so the assembly is tested from data files.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ansible_collections.kvmfleet.compute.plugins.module_utils._metadata import parse_metadata
from ansible_collections.kvmfleet.compute.plugins.module_utils._network import build_networks

DEFAULT_INSTANCES_DIR = "/var/lib/libvirt/kvmfleet/instances"
GIB = 1024 ** 3
_MEMORY_UNITS = {
    "b": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000 ** 2, "m": 1024 ** 2, "mib": 1024 ** 2,
    "gb": 1000 ** 3, "g": 1024 ** 3, "gib": 1024 ** 3,
    "tb": 1000 ** 4, "t": 1024 ** 4, "tib": 1024 ** 4,
}


def version_string(number):
    """libvirt encodes versions as major * 1000000 + minor * 1000 + release."""
    if not number:
        return None
    return f"{number // 1000000}.{(number // 1000) % 1000}.{number % 1000}"


def parse_capabilities(xml):
    """The host CPU and the guest architectures/virt types from ``virConnectGetCapabilities``."""
    root = ET.fromstring(xml)
    cpu = root.find("./host/cpu")
    topology = cpu.find("topology") if cpu is not None else None
    guests = {}
    for guest in root.findall("guest"):
        if (guest.findtext("os_type") or "").strip() != "hvm":
            continue
        arch = guest.find("arch")
        if arch is None:
            continue
        entry = guests.setdefault(arch.get("name"), {"emulator": None, "domain_types": []})
        emulator = arch.findtext("emulator")
        if emulator and not entry["emulator"]:
            entry["emulator"] = emulator.strip()
        for dom in arch.findall("domain"):
            if dom.get("type") not in entry["domain_types"]:
                entry["domain_types"].append(dom.get("type"))
    return {
        "uuid": root.findtext("./host/uuid"),
        "arch": cpu.findtext("arch") if cpu is not None else None,
        "cpu_model": cpu.findtext("model") if cpu is not None else None,
        "cpu_vendor": cpu.findtext("vendor") if cpu is not None else None,
        "cpu_features": [f.get("name") for f in cpu.findall("feature")] if cpu is not None else [],
        "cpu_topology": {k: int(topology.get(k)) for k in ("sockets", "cores", "threads")
                         if topology is not None and topology.get(k, "").isdigit()},
        "numa_cells": len(root.findall("./host/topology/cells/cell")),
        "guests": guests,
    }


def parse_cpuinfo(text):
    """Model name and flags of the first processor in /proc/cpuinfo (x86 'flags', arm 'Features')."""
    model_name = None
    flags = None
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "model name" and model_name is None:
            model_name = value.strip()
        elif key in ("flags", "features") and flags is None:
            flags = value.split()
    return {"model_name": model_name, "flags": flags or []}


def parse_meminfo(text):
    """/proc/meminfo as {field: KiB}."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        parts = value.split()
        if sep and parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0])
    return values


def memory_free_mb(meminfo, fallback_bytes=None):
    """Memory a new guest could get, in MiB: MemAvailable (free plus reclaimable cache)."""
    if "MemAvailable" in meminfo:
        return meminfo["MemAvailable"] // 1024
    if "MemFree" in meminfo:
        return (meminfo["MemFree"] + meminfo.get("Buffers", 0) + meminfo.get("Cached", 0)) // 1024
    if fallback_bytes is not None:
        return int(fallback_bytes) // (1024 * 1024)
    return None


def to_mib(value, unit):
    factor = _MEMORY_UNITS.get((unit or "KiB").lower(), 1024)
    return int(value) * factor // (1024 * 1024)


def parse_domain(xml):
    """Name, uuid, vcpus, memory, disk files and kvmfleet metadata (None when foreign) of a domain."""
    root = ET.fromstring(xml)
    memory = root.find("memory")
    vcpu = root.findtext("vcpu")
    disks = []
    for disk in root.findall("./devices/disk"):
        source = disk.find("source")
        if source is None:
            continue
        path = source.get("file") or source.get("dev") or source.get("name")
        if path:
            disks.append(path)
    nics = []
    for iface in root.findall("./devices/interface"):
        mac = iface.find("mac")
        source = iface.find("source")
        model = iface.find("model")
        target = iface.find("target")
        nics.append({
            "mac": mac.get("address").lower() if mac is not None and mac.get("address") else None,
            "network": source.get("network") if source is not None else None,
            "bridge": source.get("bridge") if source is not None else None,
            "model": model.get("type") if model is not None else None,
            "target": target.get("dev") if target is not None else None,
        })
    return {
        "domain": root.findtext("name"),
        "uuid": root.findtext("uuid"),
        "virt_type": root.get("type"),
        "vcpus": int(vcpu) if vcpu and vcpu.strip().isdigit() else None,
        "memory_mb": to_mib(memory.text.strip(), memory.get("unit")) if memory is not None and memory.text else None,
        "disks": disks,
        "nics": nics,
        "metadata": parse_metadata(root),
    }


def nearest_existing(path):
    """``path`` or its nearest existing ancestor: what a directory-to-be will be created on."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def measure_storage(path, statvfs=os.statvfs, stat=os.stat):
    """Capacity of the filesystem that holds (or will hold) ``path``."""
    measured = nearest_existing(path)
    st = statvfs(measured)
    return {
        "path": path,
        "measured_path": measured,
        "exists": measured == os.path.abspath(path),
        "device": stat(measured).st_dev,
        "total_bytes": st.f_blocks * st.f_frsize,
        # f_bavail: what an unprivileged writer (libvirt-qemu) may still use
        "free_bytes": st.f_bavail * st.f_frsize,
    }


def _gb(num_bytes):
    return round(num_bytes / GIB, 2)


@dataclass
class HostObservation:
    """Everything host_facts reads, in raw form."""

    hostname: str
    capabilities_xml: str
    node_info: list  # virConnectGetInfo: [model, memory MiB, cpus, mhz, nodes, sockets, cores, threads]
    hypervisor_type: str
    hypervisor_version: int
    libvirt_version: int
    cpuinfo: str = ""
    meminfo: str = ""
    free_memory_bytes: int | None = None
    kvm_device: str | None = None  # None when /dev/kvm opened read-write, else why not
    kvm_domain_capabilities: bool = False
    emulators: dict = field(default_factory=dict)  # emulator path -> executable?
    domains: list = field(default_factory=list)  # [{"xml": str, "power_state": str}]
    images_storage: dict = field(default_factory=dict)  # measure_storage() of images_dir
    instances_storage: dict = field(default_factory=dict)  # measure_storage() of instances_dir
    networks: list = field(default_factory=list)  # _network.observe_networks()


def virt_types(caps, arch, obs):
    """Usable virt types for ``arch`` and, when kvm is not usable, why."""
    guest = caps["guests"].get(arch) or {"emulator": None, "domain_types": []}
    emulator_ok = bool(guest["emulator"]) and obs.emulators.get(guest["emulator"], False)
    usable = []
    reason = None
    if obs.kvm_device is not None:
        reason = obs.kvm_device
    elif "kvm" not in guest["domain_types"] or not obs.kvm_domain_capabilities:
        reason = f"libvirt reports no kvm domain capabilities for {arch}"
    elif not emulator_ok:
        reason = f"no QEMU emulator for {arch}"
    if reason is None:
        usable.append("kvm")
    if emulator_ok and "qemu" in guest["domain_types"]:
        usable.append("qemu")
    return usable, reason


def build_host_facts(obs):
    """The ``host_facts`` result from one observation."""
    caps = parse_capabilities(obs.capabilities_xml)
    cpuinfo = parse_cpuinfo(obs.cpuinfo)
    meminfo = parse_meminfo(obs.meminfo)
    arch = caps["arch"] or (obs.node_info[0] if obs.node_info else None)
    usable, kvm_reason = virt_types(caps, arch, obs)

    instances = []
    foreign = 0
    allocated = {"instances": 0, "vcpus": 0, "memory_mb": 0}
    for entry in obs.domains:
        dom = parse_domain(entry["xml"])
        if dom["metadata"] is None:
            foreign += 1
            continue
        instances.append({
            "domain": dom["domain"],
            "uuid": dom["uuid"],
            "power_state": entry["power_state"],
            "vcpus": dom["vcpus"],
            "memory_mb": dom["memory_mb"],
            "virt_type": dom["virt_type"],
            "disks": dom["disks"],
            "nics": dom["nics"],
            "metadata": dom["metadata"],
        })
        allocated["instances"] += 1
        allocated["vcpus"] += dom["vcpus"] or 0
        allocated["memory_mb"] += dom["memory_mb"] or 0
    instances.sort(key=lambda i: i["domain"])

    images, inst = obs.images_storage, obs.instances_storage
    storage = {
        "images_dir": images["path"],
        "instances_dir": inst["path"],
        # instance disks are what fills a host, so the headline numbers are the instances filesystem
        "total_gb": _gb(inst["total_bytes"]),
        "free_gb": _gb(inst["free_bytes"]),
        "same_filesystem": images["device"] == inst["device"],
        "images": {"path": images["path"], "measured_path": images["measured_path"],
                   "exists": images["exists"], "total_gb": _gb(images["total_bytes"]),
                   "free_gb": _gb(images["free_bytes"])},
        "instances": {"path": inst["path"], "measured_path": inst["measured_path"],
                      "exists": inst["exists"], "total_gb": _gb(inst["total_bytes"]),
                      "free_gb": _gb(inst["free_bytes"])},
    }

    return {
        "hostname": obs.hostname,
        "host_uuid": caps["uuid"],
        "arch": arch,
        "cpu_model": caps["cpu_model"],
        "cpu_model_name": cpuinfo["model_name"],
        "cpu_vendor": caps["cpu_vendor"],
        # /proc/cpuinfo lists every flag; libvirt lists only those beyond its CPU model
        "cpu_flags": sorted(set(cpuinfo["flags"] or caps["cpu_features"])),
        "cpu_topology": caps["cpu_topology"],
        "numa_cells": caps["numa_cells"],
        "vcpus": obs.node_info[2] if obs.node_info else None,
        # /proc/meminfo first: it agrees with memory_free_mb (libvirt's node figure may come from
        # NUMA sysfs, which some sandboxes fake)
        "memory_mb": meminfo["MemTotal"] // 1024 if "MemTotal" in meminfo else (
            obs.node_info[1] if obs.node_info else None),
        "memory_free_mb": memory_free_mb(meminfo, obs.free_memory_bytes),
        "storage": storage,
        "hypervisor_type": obs.hypervisor_type,
        "hypervisor_version": version_string(obs.hypervisor_version),
        "hypervisor_version_code": obs.hypervisor_version,
        "libvirt_version": version_string(obs.libvirt_version),
        "libvirt_version_code": obs.libvirt_version,
        "virt_types": usable,
        "kvm_usable": "kvm" in usable,
        "kvm_unusable_reason": kvm_reason,
        "instances": instances,
        "allocated": allocated,
        "foreign_domains": foreign,
        "networks": build_networks(obs.networks),
    }
