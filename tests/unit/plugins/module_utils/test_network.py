"""_network: network facts from data-file cases (a new case is a new file)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils._network import (
    build_networks,
    normalise_leases,
    parse_network,
)
from conftest import case_params


@pytest.mark.parametrize("case", case_params("networks"))
def test_build_networks(case):
    (net,) = build_networks([case["observation"]])
    for key, expected in case["expected"].items():
        assert net[key] == expected, key
    assert json.loads(json.dumps(net)) == net  # plain JSON over the wire


def test_networks_sorted_by_name():
    def obs(name):
        return {"xml": f"<network><name>{name}</name></network>", "active": True, "leases": []}

    assert [n["name"] for n in build_networks([obs("b"), obs("default"), obs("a")])] == ["a", "b", "default"]


def test_leases_without_mac_or_address_are_dropped():
    assert normalise_leases([{"mac": "", "ipaddr": "10.0.0.2"}, {"mac": "52:54:00:00:00:01", "ipaddr": None}]) == []


def test_netmask_and_prefix_agree():
    a = parse_network("<network><name>n</name><ip address='10.1.2.1' netmask='255.255.255.128'/></network>")
    b = parse_network("<network><name>n</name><ip address='10.1.2.1' prefix='25'/></network>")
    assert a["subnets"] == b["subnets"] and a["subnets"][0]["cidr"] == "10.1.2.0/25"
