# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instance disks: qcow2 overlays on cached base images, empty disks and the seed (NoCloud or config drive).

``run`` is a callable with the shape of AnsibleModule.run_command: run(args) -> (rc, stdout, stderr).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ansible_collections.kvmfleet.compute.plugins.module_utils import _seed
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ImageError, KvmfleetError

GIB = 1024 ** 3
SEED_LABEL = _seed.LABELS["nocloud"]


def _run(run, args, doing, error=KvmfleetError):
    rc, out, err = run(args)
    if rc != 0:
        raise error("{}: {} failed (rc={}): {}".format(doing, args[0], rc, (err or out or "").strip()),
                    cmd=args, rc=rc, stderr=err)
    return out


def image_info(run, path, fmt=None):
    """``qemu-img info`` as a dict; ImageError naming the path when it is missing or unreadable."""
    if not os.path.isfile(path):
        raise ImageError(f"base image {path} does not exist", path=path)
    args = ["qemu-img", "info", "--output=json", "--force-share"]
    if fmt:
        args += ["-f", fmt]
    out = _run(run, args + [path], f"inspect image {path}", ImageError)
    try:
        return json.loads(out)
    except ValueError as exc:
        raise ImageError(f"inspect image {path}: qemu-img printed no JSON: {exc}", path=path) from exc


def base_image(run, path, fmt="qcow2"):
    """Format and virtual size of a base image read as ``fmt`` (never probed); refuse images that have a
    backing file."""
    info = image_info(run, path, fmt)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageError("base image {} has a backing file ({}); base images must be standalone".format(path, info.get("backing-filename")), path=path)
    fmt = info.get("format")
    if fmt not in ("qcow2", "raw"):
        raise ImageError(f"base image {path} has format {fmt!r}; qcow2 or raw is needed", path=path)
    return {"path": path, "format": fmt, "virtual_size": int(info.get("virtual-size") or 0)}


def create_overlay(run, base_path, base_format, path, size_bytes):
    """A qcow2 overlay at ``path`` backed by ``base_path`` with virtual size ``size_bytes``."""
    _run(run, ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base_format, "-b", base_path, path,
               str(int(size_bytes))], f"create root disk {path}")


def create_empty(run, path, size_gb, fmt="qcow2"):
    """An empty disk image at ``path`` of ``size_gb`` GiB."""
    _run(run, ["qemu-img", "create", "-q", "-f", fmt, path, f"{int(size_gb)}G"], f"create disk {path}")


def seed_files(hostname, instance_id, user_data, **options):
    """Path inside the seed -> content (see _seed.seed_files)."""
    return _seed.seed_files(hostname, instance_id, user_data, **options)


def create_seed(run, path, hostname, instance_id, user_data, which=shutil.which, fmt="nocloud", public_keys=None,
                network_data=None, meta_data=None):
    """A seed at ``path``: NoCloud (label cidata) or a config drive (label config-2, ``fmt="config-drive"``);
    iso9660 via genisoimage, else vfat via mkfs.vfat + mcopy."""
    files = seed_files(hostname, instance_id, user_data, fmt=fmt, public_keys=public_keys,
                       network_data=network_data, meta_data=meta_data)
    label = _seed.LABELS[fmt]
    workdir = tempfile.mkdtemp(prefix=".seed-", dir=os.path.dirname(path))
    try:
        for name, content in files.items():
            full = os.path.join(workdir, name)
            os.makedirs(os.path.dirname(full), mode=0o700, exist_ok=True)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
        tops = sorted(os.path.join(workdir, name) for name in os.listdir(workdir))
        if which("genisoimage"):
            _run(run, ["genisoimage", "-quiet", "-output", path, "-volid", label, "-joliet", "-rock", workdir],
                 f"create seed {path}")
        elif which("mkfs.vfat") and which("mcopy"):
            _run(run, ["mkfs.vfat", "-n", label, "-C", path, "1024"], f"create seed {path}")
            _run(run, ["mcopy", "-s", "-oi", path] + tops + ["::"], f"copy seed files into {path}")
        else:
            raise KvmfleetError(f"create seed {path}: neither genisoimage nor mkfs.vfat+mcopy is installed")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    os.chmod(path, 0o600)  # user data may hold secrets; libvirt hands the file to QEMU itself


def remove_file(path):
    """Remove ``path`` if it exists; True if something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def remove_dir_if_empty(path):
    """Remove directory ``path`` if it exists and is empty; True if removed."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return False
    except OSError:
        return False  # not empty: something we did not create is still in it
    return True
