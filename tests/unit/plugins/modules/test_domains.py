"""kvmfleet.compute.domains: several domains brought to their states in one call, side by side, on the
libvirt test driver (test:///default) with real qcow2 overlays made by qemu-img."""

from __future__ import annotations

import json
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
from ansible_collections.kvmfleet.compute.plugins.modules import domains

URI = "test:///default"
SECRET = "#cloud-config\npassword: s3cret-user-data\n"


@pytest.fixture(scope="module", autouse=True)
def keep_test_driver():
    """test:///default keeps its state only while a connection is open; the module closes its own."""
    conn = libvirt.open(URI)
    yield conn
    conn.close()


@pytest.fixture
def host(tmp_path):
    images, instances = tmp_path / "images", tmp_path / "instances"
    images.mkdir()
    instances.mkdir()
    subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "tiny.qcow2"), "64M"])
    return {"images": images, "instances": instances}


@pytest.fixture
def names():
    made = [f"kf-batch-{uuid.uuid4().hex[:8]}" for _index in range(4)]
    yield made
    conn = libvirt.open(URI)
    for n in made:
        try:
            dom = conn.lookupByName(n)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(1)
    conn.close()


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        domains.main()
    return json.loads(capsys.readouterr().out)


def one(name, image="tiny.qcow2", **over):
    spec = {"name": name, "uuid": str(uuid.uuid4()), "vcpus": 1, "memory_mb": 128,
            "root_disk": {"image": image, "size_gb": 1}, "nics": [{"network": "default"}],
            "config_drive": {"hostname": name, "instance_id": name}, "metadata": {"project": "demo"}}
    spec.update(over)
    return spec


def call(host, specs, **over):
    args = {"domains": specs, "uri": URI, "virt_type": "qemu", "images_dir": str(host["images"]),
            "instances_dir": str(host["instances"])}
    args.update(over)
    return args


def defined(name):
    conn = libvirt.open(URI)
    try:
        return conn.lookupByName(name).isActive() == 1
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def test_creates_every_domain_in_one_call_then_nothing_to_change(host, names, capsys):
    specs = [one(n) for n in names[:3]]
    res = run(call(host, specs, user_data={specs[0]["uuid"]: SECRET}), capsys)
    assert res["changed"] is True and not res.get("failed"), res
    assert [r["item"] for r in res["results"]] == [{"name": s["name"], "uuid": s["uuid"]} for s in specs]
    for spec, r in zip(specs, res["results"], strict=True):
        assert r["failed"] is False and r["changed"] is True
        assert r["domain"]["state"] == "running" and r["domain"]["uuid"] == spec["uuid"]
        assert r["domain"]["virt_type"] == "qemu"  # the module's virt_type, the domain naming none
        assert defined(spec["name"]) is True
    seed = host["instances"] / specs[0]["name"] / "disk.config"
    assert b"s3cret-user-data" in seed.read_bytes()  # the top-level user_data reached its domain's seed
    assert "s3cret-user-data" not in json.dumps(res)

    again = run(call(host, specs), capsys)
    assert again["changed"] is False and all(r["changed"] is False for r in again["results"]), again


def test_one_failing_domain_fails_the_call_and_leaves_nothing_the_others_keep_theirs(host, names, capsys):
    good = [one(names[0]), one(names[1])]
    bad = one(names[2], image="missing.qcow2")
    res = run(call(host, [good[0], bad, good[1]]), capsys)
    assert res["failed"] is True
    assert res["msg"].startswith("1 of 3 domains failed: " + names[2] + ":"), res["msg"]
    by_name = {r["item"]["name"]: r for r in res["results"]}
    assert by_name[names[2]]["failed"] is True and "missing.qcow2" in by_name[names[2]]["msg"]
    assert defined(names[2]) is None and not (host["instances"] / names[2]).exists()
    assert defined(names[0]) is True and defined(names[1]) is True


def test_each_domain_may_name_its_own_state_and_virt_type(host, names, capsys):
    res = run(call(host, [one(names[0], state="present", virt_type="kvm"), one(names[1])]), capsys)
    assert not res.get("failed"), res
    first, second = res["results"]
    assert first["domain"]["state"] == "shutoff" and first["domain"]["virt_type"] == "kvm"
    assert second["domain"]["state"] == "running" and second["domain"]["virt_type"] == "qemu"
    gone = run(call(host, [{"name": names[0], "state": "absent"}, {"name": names[1], "state": "absent"}]), capsys)
    assert gone["changed"] is True and defined(names[0]) is None and defined(names[1]) is None
    assert not (host["instances"] / names[0]).exists() and not (host["instances"] / names[1]).exists()


def test_a_name_given_twice_is_refused_before_anything_is_made(host, names, capsys):
    res = run(call(host, [one(names[0]), one(names[0])]), capsys)
    assert res["failed"] is True and res["msg"] == f"domains named more than once: {names[0]}"
    assert defined(names[0]) is None


def test_unsafe_names_are_refused_per_domain(host, names, capsys):
    res = run(call(host, [one("bad;name$(x)"), one(names[0])]), capsys)
    assert res["failed"] is True
    bad, ok = res["results"]
    assert bad["failed"] is True and "domain name" in bad["msg"]
    assert ok["failed"] is False and defined(names[0]) is True
