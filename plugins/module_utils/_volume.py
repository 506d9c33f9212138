# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volumes on libvirt storage pools and their attachment to domains: validation, the pool, volume and disk
XML (xml.etree only, never string templates), parsing it back, and the plans the volume and
volume_attachment modules compute. Pure logic; the modules do the libvirt calls."""

from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError, WaitTimeout
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_abs_path, validate_name

GIB = 1024 ** 3
POOL_TYPES = ("dir", "logical")
VOLUME_FORMATS = ("qcow2", "raw")
DEFAULT_POOL_PATH = "/var/lib/kvmfleet/volumes"
_SERIAL_RE = re.compile(r"\A[A-Za-z0-9-]{1,20}\Z")
_TARGET_RE = re.compile(r"\Avd[a-z]{1,2}\Z")


# -- validation ----------------------------------------------------------------------------------------

def validate_serial(value):
    """A disk serial the guest shows as /dev/disk/by-id/virtio-<serial>: 1-20 of [A-Za-z0-9-]."""
    if not isinstance(value, str) or not _SERIAL_RE.match(value):
        raise ValidationError(f"serial {value!r} must be 1-20 characters of A-Z a-z 0-9 -", what="serial")
    return value


def validate_target(value):
    if not isinstance(value, str) or not _TARGET_RE.match(value):
        raise ValidationError(f"target {value!r} must be a virtio disk name like vdb", what="target")
    return value


def pool_spec(pool, pool_type, pool_path=None, pool_vg=None):
    """The wanted pool, validated: {name, type, path, vg}. A logical pool's target path is /dev/<vg>."""
    name = validate_name(pool, "pool name")
    if pool_type not in POOL_TYPES:
        raise ValidationError(f"pool_type {pool_type!r} must be one of {', '.join(POOL_TYPES)}", what="pool_type")
    if pool_type == "dir":
        if pool_vg is not None:
            raise ValidationError("pool_vg is only for pool_type logical", what="pool_vg")
        path = validate_abs_path(pool_path or DEFAULT_POOL_PATH, "pool_path")
        if path == "/":
            raise ValidationError("pool_path must not be /", what="pool_path")
        return {"name": name, "type": "dir", "path": path, "vg": None}
    if pool_path is not None:
        raise ValidationError("pool_path is only for pool_type dir; a logical pool lives in /dev/<pool_vg>",
                              what="pool_path")
    if pool_vg is None:
        raise ValidationError("pool_vg (an existing LVM volume group) is required for pool_type logical",
                              what="pool_vg")
    vg = validate_name(pool_vg, "pool_vg")
    return {"name": name, "type": "logical", "path": "/dev/" + vg, "vg": vg}


def volume_format(pool_type, fmt):
    """The format a volume gets: qcow2 by default on a dir pool; raw only on a logical pool."""
    if fmt is not None and fmt not in VOLUME_FORMATS:
        raise ValidationError(f"format {fmt!r} must be one of {', '.join(VOLUME_FORMATS)}", what="format")
    if pool_type == "logical":
        if fmt == "qcow2":
            raise ValidationError("format qcow2 is not possible on a logical pool: a logical volume holds raw data",
                                  what="format")
        return "raw"
    return fmt or "qcow2"


# -- XML -----------------------------------------------------------------------------------------------

def build_pool_xml(spec):
    root = ET.Element("pool", type=spec["type"])
    ET.SubElement(root, "name").text = spec["name"]
    if spec["type"] == "logical":
        source = ET.SubElement(root, "source")
        ET.SubElement(source, "name").text = spec["vg"]
        ET.SubElement(source, "format", type="lvm2")
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "path").text = spec["path"]
    return ET.tostring(root, encoding="unicode")


def parse_pool_xml(pool_xml):
    root = ET.fromstring(pool_xml)
    path = root.findtext("target/path")
    return {"name": root.findtext("name"), "type": root.get("type"),
            "path": os.path.normpath(path) if path else None, "vg": root.findtext("source/name")}


def pool_differences(have, want):
    """What differs between an existing pool and the wanted one, as 'field X, not Y' phrases."""
    diffs = []
    if have["type"] != want["type"]:
        diffs.append(f"type {have['type']}, not {want['type']}")
    elif want["type"] == "dir" and have["path"] != want["path"]:
        diffs.append(f"path {have['path']}, not {want['path']}")
    elif want["type"] == "logical" and have["vg"] != want["vg"]:
        diffs.append(f"volume group {have['vg']}, not {want['vg']}")
    return diffs


def build_volume_xml(name, capacity_bytes, fmt, pool_type):
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(int(capacity_bytes))
    if pool_type == "dir":
        ET.SubElement(root, "allocation", unit="bytes").text = "0"  # sparse
        target = ET.SubElement(root, "target")
        ET.SubElement(target, "format", type=fmt)
    return ET.tostring(root, encoding="unicode")


def parse_volume_xml(volume_xml):
    root = ET.fromstring(volume_xml)
    fmt = root.find("target/format")
    return {"name": root.findtext("name"), "path": root.findtext("target/path") or root.findtext("key"),
            "format": fmt.get("type") if fmt is not None and fmt.get("type") in VOLUME_FORMATS else "raw"}


def build_disk_xml(path, fmt, target, serial=None, block=False, bus="virtio"):
    """A <disk> for attachDeviceFlags: a file or (block=True) a block device such as a logical volume."""
    disk = ET.Element("disk", type="block" if block else "file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", **{"dev" if block else "file": path})
    ET.SubElement(disk, "target", dev=target, bus=bus)
    if serial:
        ET.SubElement(disk, "serial").text = serial
    return ET.tostring(disk, encoding="unicode")


def domain_disks(domain_xml):
    """[{path, target, serial, format, readonly, element}] of a domain's <disk device='disk'> elements."""
    root = ET.fromstring(domain_xml)
    disks = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        target = disk.find("target")
        driver = disk.find("driver")
        path = source.get("file") or source.get("dev") if source is not None else None
        disks.append({
            "path": path,
            "device": disk.get("device", "disk"),
            "target": target.get("dev") if target is not None else None,
            "serial": disk.findtext("serial"),
            "format": driver.get("type") if driver is not None else None,
            "readonly": disk.find("readonly") is not None,
            "element": ET.tostring(disk, encoding="unicode"),
        })
    return disks


def same_path(a, b):
    """Two host paths naming the same file (/dev/vg/lv and /dev/mapper/vg-lv resolve alike)."""
    if not a or not b:
        return False
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def find_disk(disks, path):
    for disk in disks:
        if same_path(disk["path"], path):
            return disk
    return None


def first_free_target(*disk_lists):
    """The first vdX (vda, vdb, ..., vdz, vdaa, ...) no disk of the given lists uses."""
    used = {d["target"] for disks in disk_lists for d in disks if d["target"]}
    for i in range(26 * 27):
        letters = chr(ord("a") + i % 26)
        if i >= 26:
            letters = chr(ord("a") + i // 26 - 1) + letters
        if "vd" + letters not in used:
            return "vd" + letters
    raise ValidationError("no free virtio disk name left on the domain")


# -- plans ---------------------------------------------------------------------------------------------

def size_gb_of(capacity_bytes):
    """Capacity in GiB for the diff: an int when whole, else two decimals."""
    if capacity_bytes is None:
        return None
    if capacity_bytes % GIB == 0:
        return capacity_bytes // GIB
    return round(capacity_bytes / GIB, 2)


def volume_plan(have, want):
    """Steps to bring a volume from ``have`` ({capacity_bytes, format} or None) to ``want``
    ({state, size_gb, format or None}). Raises ValidationError for what cannot be done (shrink, reformat)."""
    if want["state"] == "absent":
        return [("delete",)] if have is not None else []
    if have is None:
        if want.get("size_gb") is None:
            raise ValidationError("size_gb is required to create a volume", what="size_gb")
        return [("create",)]
    steps = []
    if want.get("format") is not None and want["format"] != have["format"]:
        raise ValidationError(f"volume exists with format {have['format']}, not {want['format']}; a volume's format "
                              "is never converted", what="format")
    if want.get("size_gb") is not None:
        wanted = want["size_gb"] * GIB
        if wanted < have["capacity_bytes"]:
            raise ValidationError(f"size_gb {want['size_gb']} is smaller than the volume's "
                                  f"{size_gb_of(have['capacity_bytes'])} GiB ({have['capacity_bytes']} bytes): "
                                  "volumes are never shrunk", what="size_gb")
        if wanted > have["capacity_bytes"]:
            steps.append(("extend", wanted))
    return steps


def attachment_plan(active, config_disk, live_disk):
    """Flags (1 LIVE, 2 CONFIG) still to attach to / detach from: for state present, the sides that lack the
    disk; for absent, the sides that have it. Returns (attach_flags, detach_flags)."""
    attach = (0 if config_disk else 2) | (0 if (live_disk or not active) else 1)
    detach = (2 if config_disk else 0) | (1 if (live_disk and active) else 0)
    return attach, detach


def poll(check, timeout, what, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """Call ``check()`` until it returns true; WaitTimeout naming ``what`` after ``timeout`` seconds."""
    deadline = clock() + timeout
    while True:
        if check():
            return
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        sleep(min(interval, remaining))
