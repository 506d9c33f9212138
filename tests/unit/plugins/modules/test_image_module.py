"""image module run in-process against real images made with qemu-img in a temp dir.

Nothing is mocked: qemu-img runs for real, and the "is it in use" check talks to libvirt's
in-process test driver (test:///default), where a domain is defined with a disk backed by the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if (_COLLECTIONS / "ansible_collections").is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args
from ansible_collections.kvmfleet.compute.plugins.module_utils import _image
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ImageError
from ansible_collections.kvmfleet.compute.plugins.modules import image

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed")


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real images: good qcow2 with data, overlay, data-file qcow2, raw, corrupt qcow2, corrupt-bit qcow2."""
    d = tmp_path_factory.mktemp("src")
    raw_data = d / "data.bin"
    raw_data.write_bytes(os.urandom(3 * 1024 * 1024))
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw_data), str(d / "good.qcow2"))
    qemu_img("create", "-f", "qcow2", "-b", str(d / "good.qcow2"), "-F", "qcow2", str(d / "overlay.qcow2"))
    qemu_img("create", "-f", "qcow2", "-o", "data_file=%s" % (d / "external.raw"), str(d / "datafile.qcow2"), "64M")
    qemu_img("create", "-f", "raw", str(d / "disk.raw"), "8M")
    qemu_img("create", "-f", "qcow2", str(d / "other.qcow2"), "32M")
    # corrupt: zero the first refcount block, so qemu-img check finds clusters with refcount 0
    shutil.copy(d / "good.qcow2", d / "corrupt.qcow2")
    with open(d / "corrupt.qcow2", "r+b") as f:
        header = f.read(104)
        table = struct.unpack(">Q", header[48:56])[0]
        f.seek(table)
        block = struct.unpack(">Q", f.read(8))[0]
        f.seek(block)
        f.write(b"\0" * 512)
    # the corrupt bit (incompatible feature bit 1) that QEMU sets when it finds corruption
    shutil.copy(d / "good.qcow2", d / "flagged.qcow2")
    with open(d / "flagged.qcow2", "r+b") as f:
        f.seek(72)
        incompatible = struct.unpack(">Q", f.read(8))[0]
        f.seek(72)
        f.write(struct.pack(">Q", incompatible | 2))
    return d


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache" / "images"


@pytest.fixture
def run(capsys):
    def _run(check=False, diff=True, **args):
        args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(SystemExit):
            image.main()
        return json.loads(capsys.readouterr().out)
    return _run


def listing(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


# --- header inspection on real files -------------------------------------------------------------

def test_read_qcow2_header(images):
    good = _image.read_qcow2_header(str(images / "good.qcow2"))
    assert good == {"version": 3, "backing_file": None, "encrypted": False, "corrupt": False,
                    "external_data_file": False}
    assert _image.read_qcow2_header(str(images / "overlay.qcow2"))["backing_file"] == str(images / "good.qcow2")
    assert _image.read_qcow2_header(str(images / "datafile.qcow2"))["external_data_file"] is True
    assert _image.read_qcow2_header(str(images / "flagged.qcow2"))["corrupt"] is True
    assert _image.read_qcow2_header(str(images / "disk.raw")) is None
    assert _image.read_qcow2_header(str(images / "missing")) is None


@pytest.mark.parametrize("name, error", [
    ("overlay.qcow2", "has a backing file"),
    ("datafile.qcow2", "uses an external data file"),
    ("flagged.qcow2", "is marked corrupt"),
    ("disk.raw", "is not a qcow2 image"),
])
def test_refuse_unsafe_qcow2(images, name, error):
    with pytest.raises(ImageError, match=error):
        _image.refuse_unsafe_qcow2(str(images / name), label="LABEL")


def test_refuse_disguised_raw(images):
    with pytest.raises(ImageError, match="declared raw but has a qcow2 header"):
        _image.refuse_disguised_raw(str(images / "good.qcow2"), "raw")
    _image.refuse_disguised_raw(str(images / "disk.raw"), "raw")
    _image.refuse_disguised_raw(str(images / "good.qcow2"), "qcow2")


def test_backing_chain_and_files_using(images, tmp_path):
    top = tmp_path / "top.qcow2"
    shutil.copy(images / "overlay.qcow2", tmp_path / "overlay.qcow2")
    qemu_img("create", "-f", "qcow2", "-b", "overlay.qcow2", "-F", "qcow2", str(top))  # relative name
    assert _image.backing_chain(str(top)) == [str(tmp_path / "overlay.qcow2"), str(images / "good.qcow2")]
    xml = ("<domain><name>d</name><devices><disk type='file'><source file='{}'/></disk>"
           "<disk type='file'><source file='{}'/></disk></devices></domain>").format(top, images / "disk.raw")
    assert _image.files_using(xml, str(images / "good.qcow2")) == [str(top)]
    assert _image.files_using(xml, str(images / "disk.raw")) == [str(images / "disk.raw")]
    assert _image.files_using(xml, str(images / "other.qcow2")) == []
    # a running domain's live XML lists the chain in <backingStore>; the disk is named once
    live = ("<domain><devices><disk type='file'><source file='/nonexistent/disk'/>"
            "<backingStore type='file'><source file='%s'/><backingStore/></backingStore></disk>"
            "</devices></domain>") % (images / "good.qcow2")
    assert _image.files_using(live, str(images / "good.qcow2")) == ["/nonexistent/disk"]


def test_verified_copy_discard_leaves_nothing(images, tmp_path):
    copy = _image.VerifiedCopy(str(images / "good.qcow2"), str(tmp_path / "good.qcow2"))
    copy.write()
    assert copy.sha256 == sha256(images / "good.qcow2")
    assert len(listing(tmp_path)) == 1 and listing(tmp_path)[0].endswith(".part")
    copy.discard()
    copy.discard()  # idempotent
    assert listing(tmp_path) == []


# --- the module --------------------------------------------------------------------------------

def test_add_then_unchanged(images, cache, run):
    args = {"name": "good.qcow2", "remote_src": str(images / "good.qcow2"), "sha256": sha256(images / "good.qcow2"),
            "images_dir": str(cache)}
    first = run(**args)
    assert first["changed"] is True and first["transferred"] is True
    assert first["diff"] == {"before": {"state": "absent"},
                             "after": {"state": "present", "sha256": args["sha256"]}}
    img = first["image"]
    assert img["path"] == str(cache / "good.qcow2") and img["format"] == "qcow2"
    assert img["virtual_size"] == 3 * 1024 * 1024 and img["sha256"] == args["sha256"]
    assert listing(cache) == ["good.qcow2"]
    assert oct(os.stat(cache / "good.qcow2").st_mode & 0o777) == "0o644"
    assert sha256(cache / "good.qcow2") == args["sha256"]
    mtime = os.stat(cache / "good.qcow2").st_mtime_ns

    second = run(**args)
    assert second["changed"] is False and second["transferred"] is False
    assert second["image"] == img
    assert os.stat(cache / "good.qcow2").st_mtime_ns == mtime

    # verify-only (what the action plugin asks first): no source, cached copy is fine
    verify = run(name="good.qcow2", sha256="sha256:" + args["sha256"].upper(), images_dir=str(cache))
    assert verify["changed"] is False and verify["image"] == img


def test_check_mode_changes_nothing(images, cache, run):
    args = {"name": "good.qcow2", "remote_src": str(images / "good.qcow2"), "sha256": sha256(images / "good.qcow2"),
            "images_dir": str(cache)}
    result = run(check=True, **args)
    assert result["changed"] is True and result["transferred"] is False
    assert result["image"]["virtual_size"] == 3 * 1024 * 1024
    assert not cache.exists()


def test_raw_image(images, cache, run):
    result = run(name="disk.raw", remote_src=str(images / "disk.raw"), sha256=sha256(images / "disk.raw"),
                 format="raw", images_dir=str(cache))
    assert result["changed"] is True
    assert result["image"]["format"] == "raw" and result["image"]["virtual_size"] == 8 * 1024 * 1024


@pytest.mark.parametrize("src, fmt, error", [
    ("overlay.qcow2", "qcow2", "has a backing file"),
    ("datafile.qcow2", "qcow2", "uses an external data file"),
    ("corrupt.qcow2", "qcow2", "is corrupt: qemu-img check found"),
    ("flagged.qcow2", "qcow2", "is marked corrupt"),
    ("disk.raw", "qcow2", "is not a qcow2 image"),
    ("good.qcow2", "raw", "declared raw but has a qcow2 header"),
])
@pytest.mark.parametrize("check", [False, True], ids=["real", "check"])
def test_refused_images_leave_nothing(images, cache, run, src, fmt, error, check):
    result = run(check=check, name="x.img", remote_src=str(images / src), sha256=sha256(images / src),
                 format=fmt, images_dir=str(cache))
    assert result["failed"] is True
    assert error in result["msg"]
    assert str(images / src) in result["msg"]  # names the source, not a temp file
    assert listing(cache) == []


def test_checksum_mismatch_leaves_nothing(images, cache, run):
    wrong = sha256(images / "disk.raw")
    result = run(name="good.qcow2", remote_src=str(images / "good.qcow2"), sha256=wrong, images_dir=str(cache))
    assert result["failed"] is True
    assert "checksum mismatch" in result["msg"] and wrong in result["msg"]
    assert result["actual_sha256"] == sha256(images / "good.qcow2")
    assert listing(cache) == []


def test_missing_without_source_reports_cached_false(cache, run):
    result = run(name="nothere.qcow2", sha256="0" * 64, images_dir=str(cache))
    assert result["failed"] is True and result["cached"] is False
    assert "not in the cache" in result["msg"]
    assert result["before"] == {"state": "absent"}


@pytest.mark.parametrize("args, error", [
    ({"name": "../etc/passwd"}, "not a valid name"),
    ({"name": ".hidden"}, "not a valid name"),
    ({"name": "ok.qcow2", "sha256": "abc"}, "is not a SHA-256 checksum"),
    ({"name": "ok.qcow2", "images_dir": "relative/dir"}, "must be an absolute path"),
    ({"name": "ok.qcow2", "src": "/controller/file"}, "handled by the kvmfleet.compute.image action plugin"),
    ({"name": "ok.qcow2", "remote_src": "/nonexistent/file"}, "does not exist or is not a regular file"),
])
def test_bad_parameters(cache, run, args, error):
    full = {"sha256": "0" * 64, "images_dir": str(cache)}
    full.update(args)
    result = run(**full)
    assert result["failed"] is True and error in result["msg"]
    assert listing(cache) == []


def test_symlink_in_cache_is_refused(images, cache, run):
    cache.mkdir(parents=True)
    (cache / "link.qcow2").symlink_to(images / "good.qcow2")
    result = run(name="link.qcow2", sha256=sha256(images / "good.qcow2"), images_dir=str(cache))
    assert result["failed"] is True and "not a regular file" in result["msg"]


@pytest.fixture
def test_conn():
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")  # state is shared with the module's connection in this process
    defined = []
    yield conn, defined
    for dom in defined:
        dom.undefine()
    conn.close()


def define_domain(conn, name, disk):
    xml = (f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid><memory>65536</memory><vcpu>1</vcpu>"
           "<os><type>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
           f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk></devices></domain>")
    return conn.defineXML(xml)


def test_absent_and_replace_refused_while_in_use(images, cache, tmp_path, run, test_conn):
    conn, defined = test_conn
    good = sha256(images / "good.qcow2")
    run(name="base.qcow2", remote_src=str(images / "good.qcow2"), sha256=good, images_dir=str(cache))
    disk = tmp_path / "instance-disk"
    qemu_img("create", "-f", "qcow2", "-b", str(cache / "base.qcow2"), "-F", "qcow2", str(disk))
    defined.append(define_domain(conn, "user-of-base", str(disk)))

    removed = run(name="base.qcow2", state="absent", images_dir=str(cache), uri="test:///default")
    assert removed["failed"] is True
    assert "cannot remove image" in removed["msg"] and "user-of-base" in removed["msg"]
    assert removed["domains"] == {"user-of-base": [str(disk)]}

    other = sha256(images / "other.qcow2")
    replaced = run(name="base.qcow2", remote_src=str(images / "other.qcow2"), sha256=other,
                   images_dir=str(cache), uri="test:///default")
    assert replaced["failed"] is True and "cannot replace image" in replaced["msg"]
    assert listing(cache) == ["base.qcow2"] and sha256(cache / "base.qcow2") == good

    defined.pop().undefine()
    replaced = run(name="base.qcow2", remote_src=str(images / "other.qcow2"), sha256=other,
                   images_dir=str(cache), uri="test:///default")
    assert replaced["changed"] is True
    assert replaced["diff"]["before"] == {"state": "present", "sha256": good}
    assert listing(cache) == ["base.qcow2"] and sha256(cache / "base.qcow2") == other


def test_absent(images, cache, run, test_conn):
    good = sha256(images / "good.qcow2")
    run(name="base.qcow2", remote_src=str(images / "good.qcow2"), sha256=good, images_dir=str(cache))

    wrong = run(name="base.qcow2", state="absent", sha256="1" * 64, images_dir=str(cache), uri="test:///default")
    assert wrong["failed"] is True and "not removing it" in wrong["msg"]

    check = run(check=True, name="base.qcow2", state="absent", images_dir=str(cache), uri="test:///default")
    assert check["changed"] is True and listing(cache) == ["base.qcow2"]
    assert check["diff"] == {"before": {"state": "present", "sha256": good}, "after": {"state": "absent"}}

    gone = run(name="base.qcow2", state="absent", sha256=good, images_dir=str(cache), uri="test:///default")
    assert gone["changed"] is True and gone["image"]["state"] == "absent"
    assert listing(cache) == []

    again = run(name="base.qcow2", state="absent", images_dir=str(cache), uri="test:///default")
    assert again["changed"] is False
