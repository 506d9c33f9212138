"""_firewall: ports and security group rules validated, the nwfilter built, normalised and diffed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils import _firewall as fw
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError

PORT = {"id": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab", "mac": "FA:16:3E:12:34:56", "ips": ["10.0.0.5", "fd00::5"],
        "rules": [{"direction": "egress", "ethertype": "IPv4"},
                  {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22,
                   "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"},
                  {"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "remote_ip_prefix": "10.1.0.0/16"},
                  {"direction": "ingress", "ethertype": "IPv4", "remote_ips": ["10.0.0.7", "10.0.0.6", "fd00::9"]},
                  {"direction": "ingress", "ethertype": "IPv4", "protocol": "udp", "remote_ips": []}]}


def _rules(port):
    return fw.filter_rules(fw.build_filter_xml(fw.port_spec(port)))


def test_filter_is_named_after_the_port_and_in_the_root_chain():
    root = ET.fromstring(fw.build_filter_xml(fw.port_spec(PORT), uuid="0b5f6f1c-7a4e-4a8e-9a7e-0123456789ab"))
    assert root.get("name") == "kf-port-6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab"
    assert root.get("chain") == "root"
    assert root.findtext("uuid") == "0b5f6f1c-7a4e-4a8e-9a7e-0123456789ab"


def test_security_group_rules_become_stateful_accepts_then_everything_is_dropped():
    rules = _rules(PORT)
    assert "+0200 out accept all(state=NEW)" in rules
    assert "+0201 in accept tcp(dstportend=22,dstportstart=22,state=NEW)" in rules  # 0.0.0.0/0: any source
    assert "+0202 in accept icmp(srcipaddr=10.1.0.0,srcipmask=16,state=NEW,type=8)" in rules
    # a remote group: one rule per member of the rule's ethertype
    assert "+0203 in accept all(srcipaddr=10.0.0.6,srcipmask=32,state=NEW)" in rules
    assert "+0203 in accept all(srcipaddr=10.0.0.7,srcipmask=32,state=NEW)" in rules
    assert not [r for r in rules if "fd00::9" in r]
    # an empty remote group matches nothing
    assert not [r for r in rules if r.startswith("+0204")]
    assert "+0100 inout accept all(state=ESTABLISHED,RELATED)" in rules
    assert "+1000 inout drop all()" in rules and "+1000 inout drop all-ipv6()" in rules


def test_anti_spoofing_allows_only_the_ports_mac_and_ips():
    rules = _rules(PORT)
    assert "-0800 out drop mac(match=no,srcmacaddr=fa:16:3e:12:34:56)" in rules
    assert "-0780 out accept ip(srcipaddr=10.0.0.5)" in rules
    assert "-0770 out drop ip()" in rules
    assert "-0760 out accept arp(arpsrcipaddr=10.0.0.5,arpsrcmacaddr=fa:16:3e:12:34:56)" in rules
    assert "-0740 out accept ipv6(srcipaddr=fd00::5)" in rules
    assert "-0720 out drop mac()" in rules
    assert "+0110 out accept udp(dstportstart=67,srcportstart=68)" in rules  # DHCP client


def test_port_security_off_accepts_everything():
    rules = _rules(dict(PORT, port_security=False))
    assert not [r for r in rules if " drop " in r]
    assert "+0500 inout accept all()" in rules


def test_normalised_rules_ignore_uuid_attribute_order_and_case():
    libvirt_rendering = """<filter name='kf-port-x' chain='root'>
      <uuid>cc792fdf-d640-4a68-9cb7-180656fce530</uuid>
      <rule action='drop' direction='out' priority='-800'><mac srcmacaddr='FA:16:3E:12:34:56' match='no'/></rule>
      <rule action='accept' direction='inout' priority='100'><all state='RELATED,ESTABLISHED'/></rule>
    </filter>"""
    ours = """<filter name='kf-port-x' chain='root'>
      <rule priority='-800' direction='out' action='drop'><mac match='no' srcmacaddr='fa:16:3e:12:34:56'/></rule>
      <rule action='accept' direction='inout' priority='100'><all state='ESTABLISHED,RELATED'/></rule>
    </filter>"""
    assert fw.filter_rules(libvirt_rendering) == fw.filter_rules(ours)


def test_rule_changes_name_what_was_added_and_removed():
    before = _rules(PORT)
    after = _rules(dict(PORT, rules=PORT["rules"][:1] + [{"direction": "ingress", "protocol": "tcp",
                                                         "port_range_min": 80}]))
    changes = fw.rule_changes(before, after)
    assert changes["added"] == ["+0201 in accept tcp(dstportend=80,dstportstart=80,state=NEW)"]
    assert "+0201 in accept tcp(dstportend=22,dstportstart=22,state=NEW)" in changes["removed"]


@pytest.mark.parametrize("protocol, tag", [
    ("tcp", "tcp"), ("6", "tcp"), (17, "udp"), ("icmp", "icmp"), (None, "all"), ("esp", "esp"), ("132", "sctp"),
])
def test_protocols_by_name_or_number(protocol, tag):
    spec = fw.rule_spec({"direction": "ingress", "protocol": protocol}, "rule")
    assert fw.PROTOCOLS[spec["protocol"]][0] == tag


def test_icmp_for_ipv6_is_icmpv6():
    spec = fw.rule_spec({"direction": "ingress", "ethertype": "IPv6", "protocol": "icmp"}, "rule")
    assert spec["protocol"] == "icmpv6"
    assert fw.rule_spec({"direction": "ingress", "ethertype": "IPv6", "protocol": "58"}, "r")["protocol"] == "icmpv6"


@pytest.mark.parametrize("port, says", [
    ({"id": "p'/><x", "mac": "fa:16:3e:00:00:01"}, "not a valid name"),
    ({"id": "p1", "mac": "fa:16:3e:zz:00:01"}, "is not a MAC address"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01", "ips": ["10.0.0.1;reboot"]}, "is not an IP address"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01", "port_security": "yes"}, "port_security must be true or false"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01", "rules": [{"direction": "sideways"}]}, "must be ingress or egress"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01", "rules": [{"direction": "ingress", "ethertype": "IPv5"}]},
     "must be IPv4 or IPv6"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01", "rules": [{"direction": "ingress", "protocol": "gre"}]},
     "cannot be enforced by nwfilter"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01",
      "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}]},
     "is above port_range_max"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01",
      "rules": [{"direction": "ingress", "protocol": "tcp", "port_range_min": 70000}]}, "from 0 to 65535"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01",
      "rules": [{"direction": "ingress", "protocol": "esp", "port_range_min": 1}]}, "does not have"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01",
      "rules": [{"direction": "ingress", "remote_ip_prefix": "10.0.0.0/33"}]}, "is not a CIDR"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01",
      "rules": [{"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}]},
     "is not an IPv6 network"),
    ({"id": "p1", "mac": "fa:16:3e:00:00:01",
      "rules": [{"direction": "ingress", "ethertype": "IPv6", "protocol": "igmp"}]}, "does not exist for IPv6"),
])
def test_bad_ports_are_refused(port, says):
    with pytest.raises(ValidationError) as info:
        fw.port_spec(port)
    assert says in info.value.msg
