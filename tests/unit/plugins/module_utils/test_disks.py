"""Disk helpers with the real qemu-img, genisoimage, mkfs.vfat and mtools."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils._disks import (
    GIB,
    base_image,
    create_empty,
    create_overlay,
    create_seed,
    remove_dir_if_empty,
    remove_file,
    seed_files,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ImageError, KvmfleetError, ValidationError

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img not installed")


def run(args):
    """What AnsibleModule.run_command does, for tests."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def info(path):
    return json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", "-U", str(path)]))


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.qcow2"
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"])
    return path


def test_base_image_reports_format_and_size(base):
    assert base_image(run, str(base)) == {"path": str(base), "format": "qcow2", "virtual_size": 64 * 1024 * 1024}


def test_missing_base_image_names_the_path(tmp_path):
    with pytest.raises(ImageError, match="base image %s does not exist" % (tmp_path / "nope.qcow2")):
        base_image(run, str(tmp_path / "nope.qcow2"))


def test_base_image_format_is_never_probed(tmp_path, base):
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(range(256)) * 64)  # would pass as "raw" if qemu-img were left to probe
    with pytest.raises(ImageError, match="junk.img"):
        base_image(run, str(junk), "qcow2")
    # A real qcow2 declared raw is read as raw, not silently treated as qcow2.
    assert base_image(run, str(base), "raw")["format"] == "raw"


def test_base_image_with_a_backing_file_is_refused(tmp_path, base):
    child = tmp_path / "child.qcow2"
    create_overlay(run, str(base), "qcow2", str(child), 64 * 1024 * 1024)
    with pytest.raises(ImageError, match="has a backing file"):
        base_image(run, str(child))


def test_overlay_is_backed_by_the_base_with_the_requested_size(tmp_path, base):
    overlay = tmp_path / "disk"
    create_overlay(run, str(base), "qcow2", str(overlay), GIB)
    got = info(overlay)
    assert got["format"] == "qcow2"
    assert got["backing-filename"] == str(base)
    assert got["backing-filename-format"] == "qcow2"
    assert got["virtual-size"] == GIB


def test_empty_disk(tmp_path):
    path = tmp_path / "disk.eph0"
    create_empty(run, str(path), 2)
    got = info(path)
    assert (got["format"], got["virtual-size"]) == ("qcow2", 2 * GIB)
    assert "backing-filename" not in got


def test_qemu_img_failure_is_an_error_with_stderr(tmp_path):
    with pytest.raises(KvmfleetError, match="create disk .*qemu-img failed"):
        create_empty(run, str(tmp_path / "no-such-dir" / "disk"), 1)


def test_seed_files_are_validated_names():
    files = seed_files("web1", "i-123", "#!/bin/sh\necho hi\n")
    assert files == {"meta-data": "instance-id: i-123\nlocal-hostname: web1\n", "user-data": "#!/bin/sh\necho hi\n"}
    with pytest.raises(ValidationError):
        seed_files("web1\ninstance-id: evil", "i-1", None)


def _label(path):
    return subprocess.check_output(["blkid", "-o", "value", "-s", "LABEL", str(path)], text=True).strip()


@pytest.mark.skipif(not shutil.which("genisoimage") or not shutil.which("isoinfo"), reason="genisoimage missing")
def test_iso_seed(tmp_path):
    path = tmp_path / "disk.config"
    create_seed(run, str(path), "web1", "i-1", "echo hi")
    assert _label(path) == "cidata"
    meta = subprocess.check_output(["isoinfo", "-i", str(path), "-R", "-x", "/meta-data"], text=True)
    assert meta == "instance-id: i-1\nlocal-hostname: web1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.config"]  # work dir removed


@pytest.mark.skipif(not shutil.which("mkfs.vfat") or not shutil.which("mcopy"), reason="dosfstools/mtools missing")
def test_vfat_seed_when_genisoimage_is_missing(tmp_path):
    path = tmp_path / "disk.config"

    def which(tool):
        return None if tool == "genisoimage" else shutil.which(tool)

    create_seed(run, str(path), "web1", "i-2", None, which=which)
    assert _label(path).lower() == "cidata"
    user = subprocess.check_output(["mtype", "-i", str(path), "::user-data"], text=True)
    meta = subprocess.check_output(["mtype", "-i", str(path), "::meta-data"], text=True)
    assert user == "" and "instance-id: i-2" in meta


def test_no_seed_tool_is_a_clear_error(tmp_path):
    with pytest.raises(KvmfleetError, match="neither genisoimage nor mkfs.vfat"):
        create_seed(run, str(tmp_path / "disk.config"), "web1", "i-3", None, which=lambda tool: None)
    assert list(tmp_path.iterdir()) == []


def test_remove_helpers(tmp_path):
    d = tmp_path / "inst"
    d.mkdir()
    (d / "disk").write_text("x")
    assert not remove_dir_if_empty(str(d))
    assert remove_file(str(d / "disk"))
    assert not remove_file(str(d / "disk"))
    assert remove_dir_if_empty(str(d))
    assert not remove_dir_if_empty(str(d))
