# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base images in the host's image cache: checksums, safe inspection, verified atomic copies, users.

Nothing here probes an image format: ``qemu-img`` is always told the declared format with ``-f``,
because probing lets a raw image that looks like qcow2 point QEMU at any file on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ImageError, ValidationError

DEFAULT_IMAGES_DIR = "/var/lib/libvirt/kvmfleet/images"
FORMATS = ("qcow2", "raw")
CHUNK = 1024 * 1024
QCOW2_MAGIC = b"QFI\xfb"
MAX_CHAIN = 16  # qemu refuses longer backing chains than this anyway

_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def normalise_sha256(value):
    """The checksum as 64 lower-case hex digits; accepts an optional ``sha256:`` prefix."""
    if not isinstance(value, str):
        raise ValidationError(f"sha256 must be a string of 64 hex digits, got {value!r}", value=repr(value))
    text = value.strip().lower()
    text = text.removeprefix("sha256:")
    if not _SHA256_RE.match(text):
        raise ValidationError(f"sha256 {value!r} is not a SHA-256 checksum (64 hex digits)", value=value)
    return text


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_magic(path, size=4):
    with open(path, "rb") as handle:
        return handle.read(size)


def parse_qemu_img_info(text, declared_format, path):
    """Check ``qemu-img info --output=json -f <declared_format>`` output; return the image facts.

    Raises ImageError naming the problem: unparsable output, wrong format, a backing file, an
    external data file, the corrupt flag or encryption.
    """
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ImageError(f"image {path}: qemu-img info printed no JSON ({exc})", image_path=path) from exc
    if not isinstance(info, dict):
        raise ImageError(f"image {path}: qemu-img info printed {type(info).__name__}, not an object",
                         image_path=path)
    fmt = info.get("format")
    if fmt != declared_format:
        raise ImageError(f"image {path}: qemu-img reports format {fmt!r}, expected {declared_format!r}",
                         image_path=path, format=fmt)
    backing = info.get("backing-filename") or info.get("full-backing-filename")
    if backing:
        raise ImageError(f"image {path} has a backing file ({backing}); base images must be self-contained: "
                         "flatten it with 'qemu-img convert' first",
                         image_path=path, backing_file=backing)
    specific = info.get("format-specific") or {}
    data = specific.get("data") or {}
    data_file = data.get("data-file")
    if data_file:
        raise ImageError(f"image {path} uses an external data file ({data_file}); base images must be self-contained: "
                         "convert it with 'qemu-img convert' first",
                         image_path=path, data_file=data_file)
    if data.get("corrupt"):
        raise ImageError(f"image {path} is marked corrupt in its qcow2 header", image_path=path)
    if info.get("encrypted") or data.get("encrypt"):
        raise ImageError(f"image {path} is encrypted; base images must be readable without a secret",
                         image_path=path)
    virtual_size = info.get("virtual-size")
    if not isinstance(virtual_size, int) or virtual_size <= 0:
        raise ImageError(f"image {path}: qemu-img reports no usable virtual size ({virtual_size!r})",
                         image_path=path)
    return {
        "format": fmt,
        "virtual_size": virtual_size,
        "actual_size": info.get("actual-size"),
    }


def parse_qemu_img_check(rc, text, path):
    """Judge ``qemu-img check --output=json -f qcow2`` (rc 0 clean, 3 leaks only: both acceptable)."""
    if rc in (0, 3):
        return
    try:
        report = json.loads(text) if text else {}
    except ValueError:
        report = {}
    corruptions = report.get("corruptions", 0) if isinstance(report, dict) else 0
    if rc == 2 or corruptions:
        raise ImageError(f"image {path} is corrupt: qemu-img check found {corruptions or 'some'} corruption(s)",
                         image_path=path, corruptions=corruptions)
    raise ImageError(f"image {path} could not be checked: qemu-img check exited {rc}", image_path=path, rc=rc)


def refuse_disguised_raw(path, declared_format, label=None):
    """A file declared raw whose header says qcow2 is refused: someone meant it to be read as qcow2.

    ``label`` names the image in messages when ``path`` is a temporary file.
    """
    if declared_format == "raw" and read_magic(path) == QCOW2_MAGIC:
        label = label or path
        raise ImageError(f"image {label} is declared raw but has a qcow2 header; declare format qcow2 "
                         "(or convert it) instead", image_path=label)


QCOW2_INCOMPAT_CORRUPT = 1 << 1
QCOW2_INCOMPAT_DATA_FILE = 1 << 2


def read_qcow2_header(path):
    """The fields of a qcow2 header we care about, or None when ``path`` is not a qcow2 file.

    Read directly so that images can be judged before any tool opens the files they point to, and
    disks of running domains (locked by QEMU) can be examined without ``qemu-img -U``.
    """
    try:
        with open(path, "rb") as handle:
            header = handle.read(104)
            if len(header) < 72 or header[:4] != QCOW2_MAGIC:
                return None
            version, offset, size = struct.unpack(">IQI", header[4:20])
            crypt_method = struct.unpack(">I", header[32:36])[0]
            incompatible = struct.unpack(">Q", header[72:80])[0] if version >= 3 and len(header) >= 80 else 0
            backing = None
            if offset and 0 < size <= 4096:
                handle.seek(offset)
                backing = handle.read(size).decode("utf-8", "replace")
    except OSError:
        return None
    return {
        "version": version,
        "backing_file": backing,
        "encrypted": crypt_method != 0,
        "corrupt": bool(incompatible & QCOW2_INCOMPAT_CORRUPT),
        "external_data_file": bool(incompatible & QCOW2_INCOMPAT_DATA_FILE),
    }


def qcow2_backing_file(path):
    """The backing file name recorded in a qcow2 header, or None (also for non-qcow2 files)."""
    header = read_qcow2_header(path)
    return header["backing_file"] if header else None


def refuse_unsafe_qcow2(path, label=None):
    """Judge a qcow2 header before qemu-img opens anything it names; raise ImageError on a problem."""
    header = read_qcow2_header(path)
    path = label or path
    if header is None:
        raise ImageError(f"image {path} is not a qcow2 image (no qcow2 header); declare the right format",
                         image_path=path)
    if header["backing_file"]:
        raise ImageError("image {} has a backing file ({}); base images must be self-contained: "
                         "flatten it with 'qemu-img convert' first".format(path, header["backing_file"]),
                         image_path=path, backing_file=header["backing_file"])
    if header["external_data_file"]:
        raise ImageError(f"image {path} uses an external data file; base images must be self-contained: "
                         "convert it with 'qemu-img convert' first", image_path=path)
    if header["corrupt"]:
        raise ImageError(f"image {path} is marked corrupt in its qcow2 header", image_path=path)
    if header["encrypted"]:
        raise ImageError(f"image {path} is encrypted; base images must be readable without a secret",
                         image_path=path)


def backing_chain(path):
    """Absolute paths of the backing files below ``path`` (nearest first), following qcow2 headers."""
    chain = []
    current = path
    for _depth in range(MAX_CHAIN):
        backing = qcow2_backing_file(current)
        if not backing or ":" in backing.split("/", 1)[0]:  # none, or a protocol like nbd:
            break
        if not os.path.isabs(backing):
            backing = os.path.join(os.path.dirname(current), backing)
        backing = os.path.normpath(backing)
        if backing in chain:
            break
        chain.append(backing)
        current = backing
    return chain


def domain_disks(domain_xml):
    """[(source file, [files of its <backingStore> chain])] for the file-backed disks of a domain."""
    root = ET.fromstring(domain_xml) if isinstance(domain_xml, str) else domain_xml
    disks = []
    for disk in root.findall("./devices/disk"):
        source = disk.find("source")
        if source is None or not source.get("file"):
            continue
        chain = [s.get("file") for s in disk.findall(".//backingStore/source") if s.get("file")]
        disks.append((source.get("file"), chain))
    return disks


def files_using(domain_xml, image_path):
    """The disk files of the domain that are ``image_path`` or have it in their backing chain.

    The chain comes from the qcow2 headers and, for running domains, from libvirt's <backingStore>.
    """
    target = os.path.realpath(image_path)
    users = []
    for disk, listed_chain in domain_disks(domain_xml):
        candidates = [disk] + listed_chain + backing_chain(disk)
        if any(os.path.realpath(path) == target for path in candidates):
            users.append(disk)
    return users


class VerifiedCopy:
    """Copy ``src`` to a hidden temporary file beside ``dest``, hashing what is written.

    ``commit()`` renames it over ``dest`` atomically; ``discard()`` (always safe to call) removes it,
    so a failure never leaves a partial file in the cache.
    """

    def __init__(self, src, dest, mode=0o644):
        self.src = src
        self.dest = dest
        self.mode = mode
        self.tmp = None
        self.sha256 = None

    def write(self):
        directory = os.path.dirname(self.dest)
        base = os.path.basename(self.dest)
        digest = hashlib.sha256()
        # mkstemp's O_EXCL keeps two concurrent runs from sharing a temp file.
        fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=directory)
        with os.fdopen(fd, "wb") as out, open(self.src, "rb") as inp:
            for block in iter(lambda: inp.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(self.tmp, self.mode)
        self.sha256 = digest.hexdigest()
        return self.tmp

    def commit(self):
        os.replace(self.tmp, self.dest)
        self.tmp = None
        fsync_dir(os.path.dirname(self.dest))

    def discard(self):
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
