"""The domain module end to end against libvirt's in-process test driver with the real qemu-img.

The test driver (test:///default) is a real libvirt driver that runs no guests, so every code path
of the module runs for real: XML, definitions, power transitions, disks, rollback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

libvirt = pytest.importorskip("libvirt")
pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img not installed")

from ansible.module_utils.testing import patch_module_args
from ansible_collections.kvmfleet.compute.plugins.module_utils._metadata import parse_metadata
from ansible_collections.kvmfleet.compute.plugins.modules import domain

URI = "test:///default"


@pytest.fixture(scope="module", autouse=True)
def keep_test_driver():
    """test:///default keeps its state only while a connection is open; the module closes its own."""
    conn = libvirt.open(URI)
    yield conn
    conn.close()


TEST_DRIVER_DOMAIN_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"  # the 'test' domain of test:///default


def run_module(module, args, capsys, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def host(tmp_path):
    images = tmp_path / "images"
    instances = tmp_path / "instances"
    images.mkdir()
    instances.mkdir()
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "tiny.qcow2"), "64M"])
    return {"images": images, "instances": instances}


@pytest.fixture
def name():
    n = f"kf-unit-{uuid.uuid4().hex[:8]}"
    yield n
    conn = libvirt.open(URI)
    try:
        dom = conn.lookupByName(n)
    except libvirt.libvirtError:
        dom = None
    if dom is not None:
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(1)
    conn.close()


def spec(host, domain_name, **over):
    args = {
        "name": domain_name, "uri": URI, "virt_type": "qemu", "vcpus": 1, "memory_mb": 128,
        "root_disk": {"image": "tiny.qcow2", "size_gb": 1}, "disks": [{"size_gb": 1}],
        "nics": [{"network": "default"}], "config_drive": {"hostname": "web1", "user_data": "echo hi"},
        "metadata": {"project": "demo"},
        "images_dir": str(host["images"]), "instances_dir": str(host["instances"]),
    }
    args.update(over)
    return args


def libvirt_dom(name):
    conn = libvirt.open(URI)
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError:
        return None


def test_create_running_then_repeat_is_unchanged(host, name, capsys):
    res = run_module(domain, spec(host, name), capsys)
    assert res["changed"] is True, res
    d = res["domain"]
    assert d["state"] == "running" and d["vcpus"] == 1 and d["memory_mb"] == 128
    inst = host["instances"] / name
    assert [x["path"] for x in d["disks"]] == [str(inst / "disk"), str(inst / "disk.eph0"), str(inst / "disk.config")]
    assert d["console_log"] == str(inst / "console.log")
    assert d["metadata"]["project"] == "demo" and d["metadata"]["name"] == name
    assert d["metadata"]["disks"] == [str(inst / "disk"), str(inst / "disk.eph0"), str(inst / "disk.config")]
    assert res["diff"]["before"] == {"state": "absent"} and res["diff"]["after"]["state"] == "running"
    info = json.loads(subprocess.check_output(["qemu-img", "info", "--output=json", "-U", str(inst / "disk")]))
    assert info["backing-filename"] == str(host["images"] / "tiny.qcow2") and info["virtual-size"] == 1024 ** 3
    assert parse_metadata(libvirt_dom(name).XMLDesc(0))["uuid"] == d["uuid"]

    again = run_module(domain, spec(host, name), capsys)
    assert again["changed"] is False, again
    assert again["restart_required"] == []
    assert again["diff"]["before"] == again["diff"]["after"]
    checked = run_module(domain, spec(host, name), capsys, check_mode=True)
    assert checked["changed"] is False


def test_check_mode_create_changes_nothing(host, name, capsys):
    res = run_module(domain, spec(host, name), capsys, check_mode=True)
    assert res["changed"] is True
    assert res["domain"]["state"] == "running"
    assert libvirt_dom(name) is None
    assert list(host["instances"].iterdir()) == []


def test_power_states_and_their_repeats(host, name, capsys):
    run_module(domain, spec(host, name, state="present"), capsys)
    assert libvirt_dom(name).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    for state, observed in [("running", "running"), ("paused", "paused"), ("running", "running"),
                            ("suspended", "suspended"), ("running", "running"), ("stopped", "shutoff"),
                            ("paused", "paused"), ("suspended", "suspended"), ("stopped", "shutoff")]:
        args = {"name": name, "uri": URI, "state": state}
        checked = run_module(domain, args, capsys, check_mode=True)
        assert checked["changed"] is True and checked["diff"]["after"]["state"] == observed, (state, checked)
        res = run_module(domain, args, capsys)
        assert res.get("changed") is True and res["domain"]["state"] == observed, (state, res)
        again = run_module(domain, args, capsys)
        assert again["changed"] is False, (state, again)


def test_present_keeps_the_power_state_of_an_existing_domain(host, name, capsys):
    run_module(domain, spec(host, name), capsys)
    res = run_module(domain, {"name": name, "uri": URI, "state": "present"}, capsys)
    assert res["changed"] is False and res["domain"]["state"] == "running"


def test_vcpus_and_memory_when_stopped_apply_and_when_running_need_restart(host, name, capsys):
    run_module(domain, spec(host, name, state="stopped"), capsys)
    args = {"name": name, "uri": URI, "state": "stopped", "vcpus": 2, "memory_mb": 256}
    checked = run_module(domain, args, capsys, check_mode=True)
    assert checked["changed"] and checked["diff"]["before"]["vcpus"] == 1 and checked["diff"]["after"]["vcpus"] == 2
    assert libvirt_dom(name).info()[3] == 1  # check mode changed nothing
    res = run_module(domain, args, capsys)
    assert res["changed"] and res["domain"]["vcpus"] == 2 and res["domain"]["memory_mb"] == 256
    assert checked["diff"] == res["diff"]  # one plan: check mode predicted exactly this
    assert checked["domain"] == res["domain"]
    assert res["restart_required"] == []
    assert run_module(domain, args, capsys)["changed"] is False

    run_module(domain, {"name": name, "uri": URI, "state": "running"}, capsys)
    checked = run_module(domain, {"name": name, "uri": URI, "vcpus": 3}, capsys, check_mode=True)
    res = run_module(domain, {"name": name, "uri": URI, "vcpus": 3}, capsys)
    assert res["changed"] and res["restart_required"] == ["vcpus"]
    assert (checked["diff"], checked["domain"], checked["restart_required"]) == \
        (res["diff"], res["domain"], res["restart_required"])
    assert res["domain"]["vcpus"] == 2  # still running with the old value
    again = run_module(domain, {"name": name, "uri": URI, "vcpus": 3}, capsys)
    assert again["changed"] is False and again["restart_required"] == ["vcpus"]
    res = run_module(domain, {"name": name, "uri": URI, "state": "stopped"}, capsys)
    assert res["restart_required"] == []
    res = run_module(domain, {"name": name, "uri": URI, "state": "running"}, capsys)
    assert res["domain"]["vcpus"] == 3


def test_metadata_update_merges_keys(host, name, capsys):
    run_module(domain, spec(host, name), capsys)
    res = run_module(domain, {"name": name, "uri": URI, "metadata": {"flavor": "m1.small"}}, capsys)
    assert res["changed"] is True
    meta = res["domain"]["metadata"]
    assert meta["flavor"] == "m1.small" and meta["project"] == "demo" and len(meta["disks"]) == 3
    assert run_module(domain, {"name": name, "uri": URI, "metadata": {"flavor": "m1.small"}}, capsys)["changed"] is False


def test_absent_removes_created_disks_only(host, name, capsys):
    run_module(domain, spec(host, name), capsys)
    inst = host["instances"] / name
    checked = run_module(domain, {"name": name, "uri": URI, "state": "absent"}, capsys, check_mode=True)
    assert checked["changed"] is True and (inst / "disk").exists()
    res = run_module(domain, {"name": name, "uri": URI, "state": "absent", "instances_dir": str(host["instances"]),
                              "images_dir": str(host["images"])}, capsys)
    assert res["changed"] is True and res["domain"] is None
    assert libvirt_dom(name) is None
    assert not inst.exists()
    assert (host["images"] / "tiny.qcow2").exists()
    again = run_module(domain, {"name": name, "uri": URI, "state": "absent"}, capsys)
    assert again["changed"] is False


def test_absent_keeps_files_it_did_not_create(host, name, capsys):
    run_module(domain, spec(host, name, state="stopped"), capsys)
    inst = host["instances"] / name
    (inst / "notes.txt").write_text("operator's file")
    run_module(domain, {"name": name, "uri": URI, "state": "absent", "instances_dir": str(host["instances"])}, capsys)
    assert sorted(p.name for p in inst.iterdir()) == ["notes.txt"]


def test_absent_removes_resize_originals_beside_its_disks(host, name, capsys):
    """An in-place resize keeps <disk>.resize-orig beside each grown disk until confirm: a delete before
    that removes them with the disks; a .resize-orig file named after no disk of the domain stays."""
    run_module(domain, spec(host, name, state="stopped"), capsys)
    inst = host["instances"] / name
    owned = [p.name for p in inst.iterdir() if p.name.startswith("disk")]
    assert "disk" in owned, owned
    for disk in owned:
        (inst / f"{disk}.resize-orig").write_bytes(b"original")
    (inst / "notes.resize-orig").write_text("operator's file")
    run_module(domain, {"name": name, "uri": URI, "state": "absent", "instances_dir": str(host["instances"])}, capsys)
    assert sorted(p.name for p in inst.iterdir()) == ["notes.resize-orig"]


def test_absent_never_removes_paths_only_listed_in_metadata(tmp_path, name, capsys, keep_test_driver):
    from ansible_collections.kvmfleet.compute.plugins.module_utils._domain_xml import build_domain_xml

    precious = tmp_path / "precious"
    precious.write_text("keep me")
    base = tmp_path / "images" / "base.qcow2"
    base.parent.mkdir()
    base.write_text("base")
    keep_test_driver.defineXML(build_domain_xml({
        "name": name, "uuid": None, "virt_type": "qemu", "vcpus": 1, "memory_mb": 64,
        "disks": [{"path": str(base), "format": "qcow2", "bus": "virtio"}], "nics": [], "serial_log": None,
        "vnc": False, "metadata": {"disks": [str(precious), str(base)]}}))
    res = run_module(domain, {"name": name, "uri": URI, "state": "absent", "images_dir": str(base.parent)}, capsys)
    assert res["changed"] is True and libvirt_dom(name) is None
    assert precious.read_text() == "keep me"  # listed, not attached
    assert base.read_text() == "base"  # attached, but a base image in the cache
    assert len(res["warnings"]) == 2


def test_memory_larger_than_host_fails_before_anything(host, name, capsys):
    with open("/proc/meminfo", encoding="ascii") as fh:  # the module's measure, as host_facts'
        total = next(int(line.split()[1]) // 1024 for line in fh if line.startswith("MemTotal:"))
    res = run_module(domain, spec(host, name, memory_mb=total + 1), capsys)
    assert res["failed"] and "more than the host's total memory" in res["msg"]
    assert libvirt_dom(name) is None and list(host["instances"].iterdir()) == []


def test_missing_base_image_fails_naming_the_path_and_leaves_nothing(host, name, capsys):
    res = run_module(domain, spec(host, name, root_disk={"image": "nope.qcow2"}), capsys)
    assert res["failed"] and res["msg"] == "base image %s does not exist" % (host["images"] / "nope.qcow2")
    assert libvirt_dom(name) is None and list(host["instances"].iterdir()) == []


def test_failure_after_disks_are_made_removes_them(host, name, capsys):
    # defining fails for real: the uuid belongs to another domain (the test driver's 'test' domain)
    res = run_module(domain, spec(host, name, uuid=TEST_DRIVER_DOMAIN_UUID), capsys)
    assert res["failed"] and res["msg"].startswith(f"define domain {name}: "), res
    assert libvirt_dom(name) is None
    assert list(host["instances"].iterdir()) == []


def test_existing_file_in_the_way_is_refused_and_kept(host, name, capsys):
    inst = host["instances"] / name
    inst.mkdir()
    (inst / "disk").write_text("someone else's")
    res = run_module(domain, spec(host, name), capsys)
    assert res["failed"] and "already exists" in res["msg"]
    assert (inst / "disk").read_text() == "someone else's"


@pytest.mark.parametrize("over, message", [
    ({"name": "a<b"}, "domain name 'a<b'"),
    ({"name": "x;rm -rf"}, "domain name 'x;rm -rf'"),
    ({"name": "$(id)"}, "domain name '$(id)'"),
    ({"name": "../etc"}, "domain name '../etc'"),
    ({"name": "a" * 65}, "at most 64"),
    ({"name": "web 1"}, "domain name 'web 1'"),
    ({"nics": [{"network": "net;reboot"}]}, "network name of nic 0 'net;reboot'"),
    ({"root_disk": {"image": "../../etc/shadow"}}, "root_disk image file name '../../etc/shadow'"),
    ({"root_disk": {"image": "/var/lib/../../etc/shadow"}}, "must not contain '..'"),
    ({"config_drive": {"hostname": "$(id)"}}, "config_drive hostname '$(id)'"),
    ({"metadata": {"bad key": "x"}}, "metadata key 'bad key'"),
    ({"nics": [{"network": "no-such-net"}]}, "look up network no-such-net"),
    ({"vcpus": None}, "vcpus is required to create it"),
    ({"root_disk": {"image": "tiny.qcow2", "size_gb": 0}}, "root_disk size_gb must be at least 1"),
])
def test_bad_input_fails_clearly_and_makes_nothing(host, name, capsys, over, message):
    args = spec(host, name, **over)
    res = run_module(domain, args, capsys)
    assert res["failed"] and message in res["msg"], res
    assert list(host["instances"].iterdir()) == []
    if "name" not in over:
        assert libvirt_dom(name) is None


def test_uuid_mismatch_with_existing_domain(host, name, capsys):
    run_module(domain, spec(host, name, state="present"), capsys)
    res = run_module(domain, {"name": name, "uri": URI, "uuid": str(uuid.uuid4())}, capsys)
    assert res["failed"] and "exists with uuid" in res["msg"]


def test_user_data_is_not_logged(host, name, capsys):
    res = run_module(domain, spec(host, name, config_drive={"user_data": "TOPSECRET-42"}), capsys)
    assert "TOPSECRET-42" not in json.dumps(res)
    assert os.path.exists(host["instances"] / name / "disk.config")
