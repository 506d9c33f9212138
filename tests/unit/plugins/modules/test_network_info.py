"""network_info against libvirt's in-process test driver (its built-in NAT network 'default')."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

libvirt = pytest.importorskip("libvirt")

from ansible.module_utils.testing import patch_module_args
from ansible_collections.kvmfleet.compute.plugins.modules import network_info

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
        network_info.main()
    return json.loads(capsys.readouterr().out)


def test_lists_the_default_network(capsys):
    result = run_info({}, capsys)
    assert result["changed"] is False
    (net,) = result["networks"]
    assert net["name"] == "default" and net["active"] is True and net["bridge"] == "virbr0"
    assert net["forward_mode"] == "nat"
    assert net["subnets"] == [{"ip_version": 4, "address": "192.168.122.1", "prefix": 24,
                               "cidr": "192.168.122.0/24",
                               "dhcp_ranges": [{"start": "192.168.122.2", "end": "192.168.122.254"}]}]
    # the test driver has no dnsmasq: no leases, and it says why instead of failing
    assert net["dhcp_leases"] == [] and "not supported" in net["dhcp_leases_error"]


def test_names_filter_and_check_mode(capsys):
    assert run_info({"names": ["nope"]}, capsys)["networks"] == []
    result = run_info({"names": ["default"]}, capsys, check_mode=True)
    assert [n["name"] for n in result["networks"]] == ["default"] and result["changed"] is False


def test_a_bad_network_name_fails_with_a_message(capsys):
    result = run_info({"names": ["../etc"]}, capsys)
    assert result["failed"] is True and "network name" in result["msg"]


def test_a_defined_inactive_network_is_listed_without_leases(capsys, keep_test_driver):
    net = keep_test_driver.networkDefineXML(
        "<network><name>kf-test-iso</name><bridge name='virbr9'/>"
        "<ip address='10.9.0.1' netmask='255.255.255.0'/></network>")
    try:
        result = run_info({"names": ["kf-test-iso"]}, capsys)
        (info,) = result["networks"]
        assert info["active"] is False and info["persistent"] is True and info["forward_mode"] == "isolated"
        assert info["dhcp_leases"] == [] and info["dhcp_leases_error"] is None
    finally:
        net.undefine()
