"""_network (the network module's half): the spec, iproute2 JSON parsed, the kernel plan (cases/network_plan: a
new case is a new file), removal of exactly what was made, and the libvirt network XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils import _network as n
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import KvmfleetError, ValidationError
from conftest import case_params

VX = {"name": "kf-n1", "bridge": "kfbr1001", "type": "vxlan", "segmentation_id": 1001, "vxlan_device": "kfvx1001",
      "local_ip": "10.0.0.11", "remote_ips": ["10.0.0.12"]}

IP_LINK = [
    {"ifname": "eth0", "flags": ["BROADCAST", "UP", "LOWER_UP"], "mtu": 1500},
    {"ifname": "kfvx1001", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1450, "master": "kfbr1001",
     "linkinfo": {"info_kind": "vxlan", "info_data": {"id": 1001, "local": "10.0.0.11", "port": 4789,
                                                      "learning": False},
                  "info_slave_kind": "bridge"}},
    {"ifname": "kfbr1001", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1450,
     "linkinfo": {"info_kind": "bridge", "info_data": {"stp_state": 0}}},
    {"ifname": "eth1.100", "link": "eth1", "flags": ["UP"], "mtu": 1500,
     "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 100}}},
]
FDB = [{"mac": "66:90:53:68:4f:8e", "flags": [], "master": "kfbr1001", "state": "permanent"},
       {"mac": "00:00:00:00:00:00", "dst": "10.0.0.13", "flags": ["self"], "state": "permanent"},
       {"mac": "00:00:00:00:00:00", "dst": "10.0.0.12", "flags": ["self"], "state": "permanent"}]
IP_ADDR = [{"ifname": "lo", "mtu": 65536, "addr_info": [{"local": "127.0.0.1"}]},
           {"ifname": "eth0", "mtu": 9000, "addr_info": [{"local": "10.0.0.11"}, {"local": "fe80::1"}]}]


def _spec(**changes):
    params = dict(VX, **changes)
    return n.network_spec(params)


@pytest.mark.parametrize("case", case_params("network_plan"))
def test_kernel_plan(case):
    spec = n.network_spec(case["params"])
    if "error" in case:
        with pytest.raises(KvmfleetError) as info:
            n.kernel_plan(spec, case["links"], case["remotes"], case["record"], case["mtu"])
        assert case["error"] in info.value.msg
        return
    steps, made, bridge = n.kernel_plan(spec, case["links"], case["remotes"], case["record"], case["mtu"])
    assert [s["argv"] for s in steps] == case["steps"]
    assert made == case["made"]
    assert bridge == case["bridge"]


def test_parse_links_reads_iproute2_json():
    links = n.parse_links(IP_LINK)
    assert links["kfvx1001"]["vxlan"] == {"id": 1001, "local": "10.0.0.11", "port": 4789, "learning": False}
    assert links["kfvx1001"]["master"] == "kfbr1001" and links["kfvx1001"]["up"]
    assert links["kfbr1001"]["kind"] == "bridge" and not links["kfbr1001"]["up"]
    assert links["eth0"]["kind"] == "device"
    assert links["eth1.100"]["vlan_id"] == 100 and links["eth1.100"]["link"] == "eth1"


def test_fdb_remotes_are_the_all_zeros_entries_sorted():
    assert n.fdb_remotes(FDB) == ["10.0.0.12", "10.0.0.13"]
    assert n.fdb_remotes([]) == []


def test_vxlan_mtu_is_the_underlay_minus_50():
    assert n.wanted_mtu(_spec(), {}, IP_ADDR) == 8950
    assert n.wanted_mtu(_spec(mtu=1400), {}, IP_ADDR) == 1400
    with pytest.raises(KvmfleetError, match="not an address of this host"):
        n.wanted_mtu(_spec(local_ip="10.9.9.9"), {}, IP_ADDR)


def test_spec_normalises_remotes_and_drops_the_local_address():
    spec = _spec(remote_ips=["10.0.0.13", "10.0.0.11", "10.0.0.12", "10.0.0.13"])
    assert spec["remote_ips"] == ["10.0.0.12", "10.0.0.13"]
    assert spec["vxlan_port"] == 4789
    assert _spec(vxlan_device=None)["vxlan_device"] == "kfvx1001"


@pytest.mark.parametrize("changes, says", [
    ({"name": "kf<x/>;rm -rf /"}, "not a valid name"),
    ({"bridge": "br;reboot"}, "not a valid device name"),
    ({"bridge": "kfbr0123456789abc"}, "at most 15"),
    ({"vxlan_device": "-x"}, "not a valid device name"),
    ({"segmentation_id": 0}, "1-16777215"),
    ({"segmentation_id": 16777216}, "1-16777215"),
    ({"segmentation_id": "5"}, "must be an integer"),
    ({"local_ip": "10.0.0.300"}, "not an IP address"),
    ({"local_ip": None}, "local_ip (this host's tunnel address) is required"),
    ({"remote_ips": ["$(reboot)"]}, "not an IP address"),
    ({"vxlan_port": 70000}, "vxlan_port must be 1-65535"),
    ({"mtu": 20}, "mtu must be an integer from 68"),
    ({"type": "gre"}, "type 'gre' must be one of"),
    ({"vxlan_device": "kfbr1001"}, "must differ"),
    ({"type": "vlan", "segmentation_id": 4095, "physical_interface": "eth1", "local_ip": None, "vxlan_device": None,
      "remote_ips": []}, "1-4094"),
    ({"type": "vlan", "segmentation_id": 100, "physical_interface": "enp0s31f6long", "local_ip": None,
      "vxlan_device": None, "remote_ips": []}, "VLAN sub-interface name"),
    ({"type": "flat", "local_ip": None, "vxlan_device": None, "remote_ips": [], "segmentation_id": None},
     "physical_interface is required"),
    ({"type": "flat", "physical_interface": "eth1", "vxlan_device": None, "remote_ips": [], "segmentation_id": None},
     "local_ip is only for type vxlan"),
])
def test_bad_specs_are_refused(changes, says):
    with pytest.raises(ValidationError) as info:
        _spec(**changes)
    assert says in info.value.msg


def test_absent_needs_only_the_name():
    spec = n.network_spec({"name": "kf-n1", "state": "absent"})
    assert spec["state"] == "absent" and spec["bridge"] is None


def test_removal_undoes_only_what_was_made():
    links = n.parse_links(IP_LINK + [{"ifname": "eth2", "flags": ["UP"], "mtu": 1500, "master": "kfbr1001"}])
    record = {"bridge": "kfbr1001", "made": {"bridge": True, "device": "kfvx1001", "enslaved": "eth2"}}
    assert [s["argv"] for s in n.removal_steps(record, links)] == [
        ["ip", "link", "del", "kfvx1001"], ["ip", "link", "set", "dev", "eth2", "nomaster"],
        ["ip", "link", "del", "kfbr1001"]]
    # a bridge that was there before (flat onto an existing bridge): nothing of the kernel's is touched
    assert n.removal_steps({"bridge": "kfbr1001", "made": {"bridge": False}}, links) == []
    # what is gone already is skipped
    assert n.removal_steps(record, {}) == []


def test_libvirt_network_forwards_onto_the_bridge():
    root = ET.fromstring(n.build_network_xml("kf-n1", "kfbr1001", "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab"))
    assert root.findtext("name") == "kf-n1"
    assert root.findtext("uuid") == "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab"
    assert root.find("forward").get("mode") == "bridge"
    assert root.find("bridge").get("name") == "kfbr1001"
    assert root.find("mtu") is None  # libvirt refuses <mtu> in bridge mode; the tap takes the bridge's
    parsed = n.parse_network(ET.tostring(root, encoding="unicode"))
    assert (parsed["bridge"], parsed["forward_mode"]) == ("kfbr1001", "bridge")


def test_predicted_devices_match_what_is_read_back():
    spec = _spec()
    links = {"kfbr1001": n.parse_links(IP_LINK)["kfbr1001"], "kfvx1001": n.parse_links(IP_LINK)["kfvx1001"]}
    links["kfbr1001"]["up"] = True
    assert n.device_view(links, ["kfbr1001", "kfvx1001"]) == n.predicted_devices(spec, 1450, "kfbr1001")
