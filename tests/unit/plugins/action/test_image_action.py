"""The image action plugin, driven by a real ``ansible`` ad-hoc run against localhost (local connection).

The local connection's put_file logs ``PUT <src> TO <dest>`` at -vvv, which is how these tests see
whether the controller file was transferred.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO / "build" / "collections"
ANSIBLE = Path(sys.executable).with_name("ansible")

pytestmark = [
    pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed"),
    pytest.mark.skipif(not (COLLECTIONS / "ansible_collections" / "kvmfleet" / "compute").exists(),
                       reason="collection not linked under build/collections (make collection)"),
    pytest.mark.skipif(not ANSIBLE.exists(), reason="ansible CLI not next to the test interpreter"),
]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ansible_image(tmp_path, *flags, **args):
    """Run the module through the CLI; return (result dict, number of PUTs of the image source)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
               ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"))
    env.pop("ANSIBLE_CONFIG", None)
    cmd = [str(ANSIBLE), "localhost", "-c", "local", "-e", "ansible_python_interpreter={}".format("/usr/bin/python3"),
           "-m", "kvmfleet.compute.image", "-a", json.dumps(args), "-vvv", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120, check=False)
    out = proc.stdout
    puts = sum(1 for line in out.splitlines() if " PUT " in line and line.rstrip().endswith("/image-source"))
    marker = re.search(r"^localhost \| ([A-Z!]+) => ", out, re.MULTILINE)
    assert marker, f"no result in ansible output:\n{out}\n{proc.stderr}"
    result = json.loads(out[marker.end():])
    result["failed"] = marker.group(1) == "FAILED!"  # the ad-hoc output says it in the header only
    return result, puts


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory):
    d = tmp_path_factory.mktemp("controller")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "base.qcow2"), "16M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(d / "base.qcow2"), "-F", "qcow2",
                    str(d / "overlay.qcow2")], check=True)
    return d


def test_transfer_once_then_unchanged(qcow2, tmp_path):
    cache = tmp_path / "images"
    args = {"name": "base.qcow2", "src": str(qcow2 / "base.qcow2"), "sha256": sha256(qcow2 / "base.qcow2"),
            "images_dir": str(cache)}

    check, puts = ansible_image(tmp_path, "--check", "--diff", **args)
    assert check["changed"] is True and puts == 0 and not cache.exists()
    assert check["diff"] == {"before": {"state": "absent"}, "after": {"state": "present", "sha256": args["sha256"]}}
    assert check["image"]["path"] == str(cache / "base.qcow2") and check["image"]["state"] == "present"

    first, puts = ansible_image(tmp_path, **args)
    assert first["changed"] is True and first["transferred"] is True and puts == 1
    assert first["image"]["path"] == str(cache / "base.qcow2")
    assert sorted(os.listdir(cache)) == ["base.qcow2"]

    second, puts = ansible_image(tmp_path, **args)
    assert second["changed"] is False and second["transferred"] is False and puts == 0

    check, puts = ansible_image(tmp_path, "--check", **args)
    assert check["changed"] is False and puts == 0
    # the remote temp directory was cleaned up every time
    assert list((tmp_path / "ansible-remote").glob("ansible-tmp-*")) == []


def test_wrong_checksum_is_refused_before_transfer(qcow2, tmp_path):
    cache = tmp_path / "images"
    result, puts = ansible_image(tmp_path, name="base.qcow2", src=str(qcow2 / "base.qcow2"), sha256="ab" * 32,
                                 images_dir=str(cache))
    assert result["failed"] is True and puts == 0
    assert "checksum mismatch" in result["msg"] and "nothing was transferred" in result["msg"]
    assert not cache.exists() or os.listdir(cache) == []


def test_refused_image_names_the_controller_file(qcow2, tmp_path):
    cache = tmp_path / "images"
    result, puts = ansible_image(tmp_path, name="overlay.qcow2", src=str(qcow2 / "overlay.qcow2"),
                                 sha256=sha256(qcow2 / "overlay.qcow2"), images_dir=str(cache))
    assert result["failed"] is True and puts == 1
    assert "%s (from the controller) has a backing file" % (qcow2 / "overlay.qcow2") in result["msg"]
    assert os.listdir(cache) == []
    assert list((tmp_path / "ansible-remote").glob("ansible-tmp-*")) == []


def test_missing_src(tmp_path):
    result, puts = ansible_image(tmp_path, name="x.qcow2", src=str(tmp_path / "nope.qcow2"), sha256="ab" * 32,
                                 images_dir=str(tmp_path / "images"))
    assert result["failed"] is True and puts == 0
    assert "nope.qcow2" in result["msg"]
