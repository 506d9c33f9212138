"""Image data inspection with an explicit format: what a host may be given, and what it must never get.

``inspect(path, disk_format)`` refuses (ImageDataRefused, nothing changed) unless the file truly is
``disk_format``:

- qcow2: the header is read here first (magic, version 2/3, no backing file, no external data file, not
  encrypted, not marked corrupt, no unknown incompatible feature), so qemu-img never opens a file the
  image names; then ``qemu-img info -f qcow2`` (never a probe) under a CPU and memory limit, as Nova
  runs it, must agree.
- raw: the contents must not be any format qemu would recognise (qcow2, QED, VMDK, VHD/VHDX, VDI,
  LUKS, Parallels, ...): a "raw" image that is really a qcow2 could point a host at any of its files
  the moment something probes it. ISO 9660 and partitioned disks are raw data and pass.

Glance's own upload-time format inspector makes the same checks (glance/common/format_inspector.py);
it lets a raw image whose contents are another format through with a warning, kvmfleet refuses it.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

from kvmfleet.images.errors import ImageDataRefused

DISK_FORMATS = ("qcow2", "raw")
QEMU_IMG_LIMITS = ("--as=1073741824", "--cpu=30")  # 1 GiB address space, 30 s CPU (Nova's qemu-img limits)
QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_KNOWN_INCOMPATIBLE = 0b11111  # dirty, corrupt, external data file, compression type, extended L2
_QCOW2_CORRUPT = 1 << 1
_QCOW2_EXTERNAL_DATA = 1 << 2


def _read_at(fh: Any, offset: int, size: int) -> bytes:
    fh.seek(offset)
    return fh.read(size)


def detect_format(path: Path) -> str | None:
    """The non-raw format the file's contents announce (by magic number), or None for raw data."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = _read_at(fh, 0, 512)
        vdi = _read_at(fh, 0x40, 4)
        tail = _read_at(fh, size - 512, 512) if size >= 1024 else b""
    magics = (
        (b"QFI\xfb", "qcow2"), (b"QED\x00", "qed"), (b"KDMV", "vmdk"), (b"COWD", "vmdk"),
        (b"# Disk DescriptorFile", "vmdk"), (b"vhdxfile", "vhdx"), (b"conectix", "vpc"),
        (b"LUKS\xba\xbe", "luks"), (b"WithoutFreeSpace", "parallels"), (b"WithouFreSpacExt", "parallels"),
        (b"Bochs Virtual HD Image", "bochs"), (b"#!/bin/sh\n#V2.0 Format", "cloop"),
    )
    for magic, name in magics:
        if head.startswith(magic):
            return name
    if vdi == b"\x7f\x10\xda\xbe":
        return "vdi"
    if tail.startswith(b"conectix"):
        return "vpc"  # a fixed VHD keeps its footer at the end only
    if tail.startswith(b"koly"):
        return "dmg"
    return None


def check_qcow2_header(path: Path) -> dict[str, Any]:
    """The qcow2 header, refusing what must not reach qemu-img or a host."""
    with open(path, "rb") as fh:
        header = fh.read(104)
    if len(header) < 72 or not header.startswith(QCOW2_MAGIC):
        found = detect_format(path) or "raw data"
        raise ImageDataRefused(f"the data is not a qcow2 image (it looks like {found})")
    version, backing_offset, backing_size = struct.unpack(">IQI", header[4:20])
    crypt_method = struct.unpack(">I", header[32:36])[0]
    if version not in (2, 3):
        raise ImageDataRefused(f"qcow2 version {version} is not supported")
    if backing_offset or backing_size:
        raise ImageDataRefused("the qcow2 image has a backing file: upload a standalone image "
                               "(qemu-img convert -O qcow2 it first)")
    if crypt_method:
        raise ImageDataRefused("the qcow2 image is encrypted: hosts cannot boot it")
    incompatible = 0
    if version == 3:
        if len(header) < 104:
            raise ImageDataRefused("the qcow2 v3 header is truncated")
        incompatible = struct.unpack(">Q", header[72:80])[0]
        if incompatible & _QCOW2_EXTERNAL_DATA:
            raise ImageDataRefused("the qcow2 image has an external data file: refused")
        if incompatible & _QCOW2_CORRUPT:
            raise ImageDataRefused("the qcow2 image is marked corrupt")
        if incompatible & ~_QCOW2_KNOWN_INCOMPATIBLE:
            raise ImageDataRefused(f"the qcow2 image uses unknown incompatible features ({incompatible:#x})")
    return {"version": version, "incompatible_features": incompatible}


def qemu_img_info(path: Path, disk_format: str) -> dict[str, Any]:
    """``qemu-img info -f <disk_format>``: the format is given, never probed; limits as Nova's."""
    if shutil.which("qemu-img") is None:
        raise ImageDataRefused("qemu-img is not installed on the controller (install qemu-utils)")
    argv = ["qemu-img", "info", "-f", disk_format, "--output=json", str(path)]
    if shutil.which("prlimit"):
        argv = ["prlimit", *QEMU_IMG_LIMITS, "--", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise ImageDataRefused(f"qemu-img did not finish inspecting the {disk_format} image") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).replace(str(path), "the image")
        raise ImageDataRefused(f"the data is not a valid {disk_format} image: {detail[:300]}")
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        raise ImageDataRefused("qemu-img gave no readable answer about the image") from None
    return info if isinstance(info, dict) else {}


def inspect(path: Path, disk_format: str) -> dict[str, Any]:
    """Check that ``path`` is a safe ``disk_format`` image; qemu-img's view of it (virtual-size...)."""
    if disk_format not in DISK_FORMATS:
        raise ImageDataRefused(f"disk format {disk_format!r} is not supported (allowed: {', '.join(DISK_FORMATS)})")
    if path.stat().st_size == 0:
        raise ImageDataRefused("the image data is empty")
    if disk_format == "qcow2":
        check_qcow2_header(path)
    else:
        found = detect_format(path)
        if found is not None:
            raise ImageDataRefused(f"the data declared raw is a {found} image: declare its format "
                                   f"(disk_format {found}) or convert it to raw")
    info = qemu_img_info(path, disk_format)
    if info.get("format") not in (None, disk_format):
        raise ImageDataRefused(f"qemu-img reads the data as {info.get('format')}, not {disk_format}")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageDataRefused("the image has a backing file: refused")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise ImageDataRefused("the image has an external data file: refused")
    if info.get("encrypted"):
        raise ImageDataRefused("the image is encrypted: hosts cannot boot it")
    if data.get("corrupt"):
        raise ImageDataRefused("the qcow2 image is marked corrupt")
    return info
