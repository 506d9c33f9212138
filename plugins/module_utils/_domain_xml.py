# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build libvirt domain XML from a spec and parse domain XML back into the fields kvmfleet manages.

Only xml.etree is used: every value is an element text or attribute, never spliced into a string.

A spec is a dict:
    name, uuid (or None), virt_type ("kvm"|"qemu"), arch, machine (or None = "pc"),
    vcpus, memory_mb,
    disks: [{path, format, bus ("virtio"|"sata"|"scsi"), device ("disk"), readonly}]  root first,
    nics: [{network, mac (or None), model}],
    serial_log: path or None, vnc: bool, metadata: dict or None
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._interface import build_interface_element, normalise_nic
from ansible_collections.kvmfleet.compute.plugins.module_utils._metadata import (
    build_metadata_element,
    element_to_metadata,
    find_metadata_element,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import (
    validate_abs_path,
    validate_name,
    validate_uuid,
)

VIRT_TYPES = ("kvm", "qemu")
DISK_BUSES = {"virtio": "vd", "sata": "sd", "scsi": "sd"}
DISK_FORMATS = ("qcow2", "raw")
DEFAULT_MACHINE = "pc"
VNC_LISTEN = "127.0.0.1"
_UNITS_TO_MIB = {"b": 1.0 / 1048576, "bytes": 1.0 / 1048576, "k": 1.0 / 1024, "kib": 1.0 / 1024,
                 "kb": 1000.0 / 1048576, "m": 1.0, "mib": 1.0, "mb": 1e6 / 1048576, "g": 1024.0,
                 "gib": 1024.0, "gb": 1e9 / 1048576, "t": 1048576.0, "tib": 1048576.0}


def disk_target(bus, index):
    """Target device name for the ``index``-th disk on a bus prefix: vda, vdb, ... vdz, vdaa ..."""
    prefix = DISK_BUSES[bus]
    letters = ""
    n = index
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n = n // 26 - 1
        if n < 0:
            break
    return prefix + letters


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{what} must be a positive integer, got {value!r}", what=what)
    return value


def validate_spec(spec):
    """Check every value of a spec that ends up in the XML; raise ValidationError naming the bad one."""
    validate_name(spec.get("name"), "domain name")
    if spec.get("uuid") is not None:
        validate_uuid(spec["uuid"], "domain uuid")
    if spec.get("virt_type") not in VIRT_TYPES:
        raise ValidationError("virt_type must be one of {}, got {!r}".format(", ".join(VIRT_TYPES), spec.get("virt_type")))
    validate_name(spec.get("arch") or "x86_64", "arch")
    if spec.get("machine") is not None:
        validate_name(spec["machine"], "machine type")
    _positive_int(spec.get("vcpus"), "vcpus")
    _positive_int(spec.get("memory_mb"), "memory_mb")
    for i, disk in enumerate(spec.get("disks") or []):
        validate_abs_path(disk.get("path"), f"path of disk {i}")
        if disk.get("format", "qcow2") not in DISK_FORMATS:
            raise ValidationError(f"format of disk {i} must be one of {', '.join(DISK_FORMATS)}")
        if disk.get("bus", "virtio") not in DISK_BUSES:
            raise ValidationError(f"bus of disk {i} must be one of {', '.join(sorted(DISK_BUSES))}")
    for i, nic in enumerate(spec.get("nics") or []):
        normalise_nic(nic, f"nic {i}")
    if spec.get("serial_log") is not None:
        validate_abs_path(spec["serial_log"], "serial log path")


def build_domain_element(spec):
    """The <domain> element for ``spec`` (validated first)."""
    validate_spec(spec)
    virt_type = spec["virt_type"]
    dom = ET.Element("domain", type=virt_type)
    ET.SubElement(dom, "name").text = spec["name"]
    if spec.get("uuid"):
        ET.SubElement(dom, "uuid").text = spec["uuid"].lower()
    if spec.get("metadata") is not None:
        ET.SubElement(dom, "metadata").append(build_metadata_element(spec["metadata"]))
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec["memory_mb"])
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(spec["memory_mb"])
    ET.SubElement(dom, "vcpu", placement="static").text = str(spec["vcpus"])

    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch=spec.get("arch") or "x86_64",
                  machine=spec.get("machine") or DEFAULT_MACHINE).text = "hvm"
    ET.SubElement(os_el, "boot", dev="hd")

    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")  # graceful shutdown needs the ACPI power button
    ET.SubElement(features, "apic")
    if virt_type == "kvm":
        ET.SubElement(dom, "cpu", mode="host-passthrough", check="none", migratable="on")
    # qemu (TCG): no <cpu> element, QEMU's default model (qemu64) is the cheapest to emulate
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    devices = ET.SubElement(dom, "devices")
    counters = {}
    for disk in spec.get("disks") or []:
        bus = disk.get("bus", "virtio")
        prefix = DISK_BUSES[bus]
        index = counters.get(prefix, 0)
        counters[prefix] = index + 1
        disk_el = ET.SubElement(devices, "disk", type="file", device=disk.get("device", "disk"))
        ET.SubElement(disk_el, "driver", name="qemu", type=disk.get("format", "qcow2"), cache="none"
                      if disk.get("format", "qcow2") == "qcow2" and not disk.get("readonly") else "default")
        ET.SubElement(disk_el, "source", file=disk["path"])
        ET.SubElement(disk_el, "target", dev=disk_target(bus, index), bus=bus)
        if disk.get("readonly"):
            ET.SubElement(disk_el, "readonly")
    for nic in spec.get("nics") or []:
        devices.append(build_interface_element(nic))
    serial = ET.SubElement(devices, "serial", type="pty")
    if spec.get("serial_log"):
        ET.SubElement(serial, "log", file=spec["serial_log"], append="off")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    if spec.get("vnc", True):
        graphics = ET.SubElement(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=VNC_LISTEN)
        ET.SubElement(graphics, "listen", type="address", address=VNC_LISTEN)
        video = ET.SubElement(devices, "video")
        ET.SubElement(video, "model", type="vga", vram="16384", heads="1")
    ET.SubElement(devices, "memballoon", model="virtio")
    return dom


def build_domain_xml(spec):
    """Domain XML text for ``spec``."""
    return ET.tostring(build_domain_element(spec), encoding="unicode")


def _to_mib(elem):
    if elem is None or not (elem.text or "").strip():
        return None
    unit = (elem.get("unit") or "KiB").lower()
    return round(int(elem.text.strip()) * _UNITS_TO_MIB.get(unit, 1.0 / 1024))


def _children(elem):
    return list(elem) if elem is not None else []


def _int_or_none(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def parse_domain_xml(domain_xml):
    """The fields kvmfleet manages, normalised, from domain XML (ours or anyone's)."""
    root = ET.fromstring(domain_xml) if isinstance(domain_xml, str) else domain_xml
    os_type = root.find("os/type")
    vcpu = root.find("vcpu")
    vcpus = None
    if vcpu is not None:
        vcpus = _int_or_none(vcpu.get("current")) or _int_or_none((vcpu.text or "").strip())
    cpu = root.find("cpu")
    fields = {
        "name": root.findtext("name"),
        "uuid": root.findtext("uuid"),
        "virt_type": root.get("type"),
        "arch": os_type.get("arch") if os_type is not None else None,
        "machine": os_type.get("machine") if os_type is not None else None,
        "vcpus": vcpus,
        "memory_mb": _to_mib(root.find("currentMemory")) or _to_mib(root.find("memory")),
        "max_memory_mb": _to_mib(root.find("memory")),
        "cpu_mode": cpu.get("mode") if cpu is not None else None,
        "features": sorted(child.tag for child in _children(root.find("features"))),
        "on_poweroff": root.findtext("on_poweroff"),
        "disks": [],
        "nics": [],
        "console_log": None,
        "vnc": False,
        "vnc_listen": None,
        "vnc_port": None,
        "metadata": None,
    }
    meta_el = find_metadata_element(root)
    if meta_el is not None:
        fields["metadata"] = element_to_metadata(meta_el)
    devices = root.find("devices")
    if devices is None:
        return fields
    for disk in devices.findall("disk"):
        source = disk.find("source")
        target = disk.find("target")
        driver = disk.find("driver")
        path = None
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("name") or source.get("volume")
        fields["disks"].append({
            "path": path,
            "device": disk.get("device", "disk"),
            "bus": target.get("bus") if target is not None else None,
            "target": target.get("dev") if target is not None else None,
            "format": driver.get("type") if driver is not None else None,
            "readonly": disk.find("readonly") is not None,
        })
    for iface in devices.findall("interface"):
        source = iface.find("source")
        mac = iface.find("mac")
        model = iface.find("model")
        network = None
        if source is not None:
            network = source.get("network") or source.get("bridge") or source.get("dev")
        fields["nics"].append({
            "type": iface.get("type"),
            "network": network,
            "mac": mac.get("address").lower() if mac is not None and mac.get("address") else None,
            "model": model.get("type") if model is not None else None,
        })
    for serial in devices.findall("serial"):
        log = serial.find("log")
        if log is not None and log.get("file"):
            fields["console_log"] = log.get("file")
            break
        if serial.get("type") == "file":
            source = serial.find("source")
            if source is not None and source.get("path"):
                fields["console_log"] = source.get("path")
                break
    for graphics in devices.findall("graphics"):
        if graphics.get("type") != "vnc":
            continue
        fields["vnc"] = True
        listen = graphics.find("listen")
        fields["vnc_listen"] = graphics.get("listen") or (listen.get("address") if listen is not None else None)
        port = _int_or_none(graphics.get("port"))
        fields["vnc_port"] = port if port and port > 0 else None
        break
    return fields


def update_config_xml(domain_xml, vcpus=None, memory_mb=None):
    """Persistent (inactive) domain XML with vcpus and/or memory replaced; everything else kept as is."""
    root = ET.fromstring(domain_xml)
    if vcpus is not None:
        vcpu = root.find("vcpu")
        if vcpu is None:
            vcpu = ET.SubElement(root, "vcpu", placement="static")
        vcpu.attrib.pop("current", None)
        vcpu.text = str(_positive_int(vcpus, "vcpus"))
    if memory_mb is not None:
        _positive_int(memory_mb, "memory_mb")
        for tag in ("memory", "currentMemory"):
            elem = root.find(tag)
            if elem is None:
                elem = ET.SubElement(root, tag)
            elem.attrib.clear()
            elem.set("unit", "MiB")
            elem.text = str(memory_mb)
    return ET.tostring(root, encoding="unicode")


def guest_capabilities(caps_xml):
    """{arch: {"domain_types": [...], "machines": {machine: max_cpus or None}}} from virConnectGetCapabilities."""
    root = ET.fromstring(caps_xml)
    guests = {}
    for guest in root.findall("guest"):
        if guest.findtext("os_type") != "hvm":
            continue
        arch = guest.find("arch")
        if arch is None or not arch.get("name"):
            continue
        entry = guests.setdefault(arch.get("name"), {"domain_types": [], "machines": {}})
        for machine in arch.findall("machine"):
            if machine.text:
                entry["machines"][machine.text.strip()] = _int_or_none(machine.get("maxCpus"))
        for dom in arch.findall("domain"):
            if dom.get("type") and dom.get("type") not in entry["domain_types"]:
                entry["domain_types"].append(dom.get("type"))
            for machine in dom.findall("machine"):  # kvm-only machine types
                if machine.text:
                    entry["machines"].setdefault(machine.text.strip(), _int_or_none(machine.get("maxCpus")))
    return guests


def check_guest_support(guests, virt_type, arch, machine, vcpus):
    """Refuse, before anything is made, a guest the host's hypervisor cannot run."""
    if arch not in guests:
        raise ValidationError(f"this host cannot run {arch} guests (it offers: {', '.join(sorted(guests)) or 'none'})",
                              arch=arch)
    entry = guests[arch]
    if virt_type not in entry["domain_types"]:
        hint = " (is /dev/kvm present and usable?)" if virt_type == "kvm" else ""
        raise ValidationError(f"virt_type {virt_type} is not available for {arch} guests on this host{hint}; "
                              f"available: {', '.join(entry['domain_types']) or 'none'}", virt_type=virt_type)
    machine = machine or DEFAULT_MACHINE
    if machine not in entry["machines"]:
        raise ValidationError(f"machine type {machine!r} is not offered for {arch} guests on this host", machine=machine)
    max_cpus = entry["machines"][machine]
    if vcpus is not None and max_cpus is not None and vcpus > max_cpus:
        raise ValidationError(f"vcpus {vcpus} is more than machine type {machine} allows ({max_cpus})", vcpus=vcpus)
