"""domain_info against libvirt's in-process test driver."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

libvirt = pytest.importorskip("libvirt")

from ansible.module_utils.testing import patch_module_args
from ansible_collections.kvmfleet.compute.plugins.module_utils._domain_xml import build_domain_xml
from ansible_collections.kvmfleet.compute.plugins.modules import domain_info

URI = "test:///default"


@pytest.fixture(scope="module", autouse=True)
def keep_test_driver():
    """test:///default keeps its state only while a connection is open; the module closes its own."""
    conn = libvirt.open(URI)
    yield conn
    conn.close()


def run_info(args, capsys, check_mode=False):
    args = dict(args, uri=URI)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        domain_info.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def ours():
    name = f"kf-info-{uuid.uuid4().hex[:8]}"
    conn = libvirt.open(URI)
    dom = conn.defineXML(build_domain_xml({
        "name": name, "uuid": None, "virt_type": "qemu", "vcpus": 2, "memory_mb": 64, "disks": [],
        "nics": [{"network": "default", "mac": "52:54:00:00:00:01", "model": "virtio"}],
        "serial_log": f"/tmp/{name}.log", "vnc": True, "metadata": {"name": "my server", "project": "p"}}))
    yield name
    dom.undefine()
    conn.close()


def test_only_kvmfleet_domains_by_default(ours, capsys):
    res = run_info({}, capsys)
    assert res["changed"] is False
    names = [d["name"] for d in res["domains"]]
    assert ours in names and "test" not in names  # 'test' is the driver's own, foreign domain
    mine = next(d for d in res["domains"] if d["name"] == ours)
    assert mine["state"] == "shutoff" and mine["vcpus"] == 2 and mine["memory_mb"] == 64
    assert mine["metadata"] == {"name": "my server", "project": "p"}
    assert mine["nics"] == [{"network": "default", "mac": "52:54:00:00:00:01", "model": "virtio"}]
    assert mine["console_log"] == f"/tmp/{ours}.log"


def test_all_includes_foreign_domains_sorted(ours, capsys):
    res = run_info({"all": True}, capsys)
    names = [d["name"] for d in res["domains"]]
    assert "test" in names and ours in names and names == sorted(names)
    foreign = next(d for d in res["domains"] if d["name"] == "test")
    assert foreign["metadata"] is None and foreign["state"] == "running"


def test_by_name(ours, capsys):
    assert [d["name"] for d in run_info({"name": ours}, capsys)["domains"]] == [ours]
    assert run_info({"name": "test"}, capsys)["domains"] == []
    assert [d["name"] for d in run_info({"name": "test", "all": True}, capsys)["domains"]] == ["test"]
    assert run_info({"name": "kf-missing"}, capsys)["domains"] == []


def test_check_mode_and_bad_name(ours, capsys):
    assert run_info({}, capsys, check_mode=True)["changed"] is False
    res = run_info({"name": "a<b"}, capsys)
    assert res["failed"] and "domain name 'a<b'" in res["msg"]
