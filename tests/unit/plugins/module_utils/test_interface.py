"""_interface: nic validation, the <interface> element built and parsed back, the filter switched in place."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils import _interface as i
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError

NIC = {"network": "kf-net1", "mac": "FA:16:3E:12:34:56", "model": "virtio", "target": "tap6f1c7a4e-0b",
       "mtu": 1450, "filter": "kf-port-6f1c7a4e"}

LIVE = """<domain><devices>
  <interface type='bridge'>
    <mac address='fa:16:3e:12:34:56'/>
    <source network='kf-net1' portid='1b2c' bridge='kfbr1001'/>
    <target dev='tap6f1c7a4e-0b'/>
    <model type='virtio'/>
    <filterref filter='kf-port-6f1c7a4e'/>
    <mtu size='1450'/>
    <alias name='net1'/>
  </interface>
  <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>
</devices></domain>"""


def test_build_then_parse_round_trips():
    nic = i.normalise_nic(NIC)
    parsed = i.parse_interface(i.build_interface_element(nic))
    assert i.interface_view(parsed) == {k: nic[k] for k in ("network", "mac", "model", "target", "mtu", "filter")}
    assert parsed["mac"] == "fa:16:3e:12:34:56"


def test_unset_fields_are_left_out():
    iface = i.build_interface_element(i.normalise_nic({"network": "default"}))
    assert [child.tag for child in iface] == ["source", "model"]


def test_live_interfaces_are_found_by_mac():
    ifaces = i.domain_interfaces(LIVE)
    live = i.find_interface(ifaces, "fa:16:3e:12:34:56")
    assert (live["type"], live["network"], live["bridge"], live["target"], live["mtu"], live["filter"]) == (
        "bridge", "kf-net1", "kfbr1001", "tap6f1c7a4e-0b", 1450, "kf-port-6f1c7a4e")
    assert i.find_interface(ifaces, "52:54:00:00:00:02") is None


def test_filter_switched_keeps_the_rest_of_the_device():
    live = i.find_interface(i.domain_interfaces(LIVE), "fa:16:3e:12:34:56")
    switched = ET.fromstring(i.with_filter(live["element"], "kf-port-other"))
    assert [f.get("filter") for f in switched.findall("filterref")] == ["kf-port-other"]
    assert switched.find("target").get("dev") == "tap6f1c7a4e-0b"
    assert ET.fromstring(i.with_filter(live["element"], None)).find("filterref") is None


@pytest.mark.parametrize("changes, says", [
    ({"target": "vnet3"}, "which libvirt reserves"),
    ({"target": "macvtap0"}, "which libvirt reserves"),
    ({"target": "vif1.0"}, "which libvirt reserves"),
    ({"target": "tap0123456789abcdef"}, "at most 15"),
    ({"target": "tap;reboot"}, "not a valid device name"),
    ({"filter": "kf'/><x"}, "filter of nic"),
    ({"mtu": 67}, "mtu of nic must be an integer from 68"),
    ({"mtu": True}, "mtu of nic must be an integer"),
    ({"model": "ne2k"}, "model of nic must be one of"),
    ({"network": "../etc"}, "network name of nic"),
    ({"mac": "fa:16:3e"}, "is not a MAC address"),
])
def test_bad_nics_are_refused(changes, says):
    with pytest.raises(ValidationError) as info:
        i.normalise_nic(dict(NIC, **changes))
    assert says in info.value.msg
