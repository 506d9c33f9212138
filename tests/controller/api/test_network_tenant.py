"""Tenant networks, subnets, ports, security groups and rules through the Network API (Neutron v2.0) of a
real `kvmfleet serve`, driven by the unmodified `openstack` client, openstacksdk and plain HTTP (no lab:
nothing here touches a host): create, list, show, update, delete; tenancy (another project's network or
port is a 404 and never listed); bad input answered with Neutron's fault and nothing created; concurrent
port creates on a nearly full pool, on SQLite and on PostgreSQL; the default security group; quotas.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openstack
import pytest
import yaml
from conftest import ADMIN_CLOUD, QUIET_CONFIG, REPO, CommandError, Service, free_port
from db_fixtures import fresh_database
from openstack.config import loader

SUFFIX = secrets.token_hex(3)
TENANT = f"tn-{SUFFIX}"
OTHER = f"tn-o-{SUFFIX}"
NET = "/network/v2.0"
NASTY = "<net name='x'>&amp;\"; rm -rf / `id` $(reboot) ]]></net>"


@pytest.fixture(scope="module")
def svc(service: Service) -> Service:
    service.user(TENANT, project=TENANT)
    service.user(OTHER, project=OTHER)
    return service


@pytest.fixture(scope="module")
def http(svc: Service) -> Iterator[dict[str, httpx.Client]]:
    clients = {"admin": svc.http(svc.token()),
               TENANT: svc.http(svc.token(TENANT, project=TENANT)),
               OTHER: svc.http(svc.token(OTHER, project=OTHER))}
    yield clients
    for client in clients.values():
        client.close()


def osc(svc: Service, *args: str, cloud: str = TENANT, **kw: Any) -> Any:
    return svc.openstack(*args, cloud=cloud, as_json=True, **kw)


def fails(svc: Service, *args: str, cloud: str = TENANT) -> str:
    proc = svc.openstack(*args, cloud=cloud, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def fault(r: httpx.Response, status: int, kind: str | None = None) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["NeutronError"]
    assert set(err) == {"type", "message", "detail"}
    if kind is not None:
        assert err["type"] == kind, err
    return err["message"]


def counts(admin: httpx.Client) -> dict[str, int]:
    out = {}
    for path, key in (("networks", "networks"), ("subnets", "subnets"), ("ports", "ports"),
                      ("security-groups", "security_groups"), ("security-group-rules", "security_group_rules")):
        r = admin.get(f"{NET}/{path}")
        assert r.status_code == 200, r.text
        out[key] = len(r.json()[key])
    return out


def project_id(svc: Service, name: str) -> str:
    return osc(svc, "project", "show", name, cloud=ADMIN_CLOUD)["id"]


# -- the lifecycle through the openstack client -------------------------------------------------------


def test_openstack_network_subnet_port_lifecycle(svc: Service, http: dict[str, httpx.Client]) -> None:
    net = osc(svc, "network", "create", f"web-{SUFFIX}")
    assert net["status"] == "ACTIVE" and net["mtu"] == 1450 and net["shared"] is False
    assert net["project_id"] == project_id(svc, TENANT)
    sub = osc(svc, "subnet", "create", "--network", net["id"], "--subnet-range", "10.20.0.0/24",
              "--dns-nameserver", "10.20.0.53", f"web-sub-{SUFFIX}")
    assert sub["gateway_ip"] == "10.20.0.1" and sub["ip_version"] == 4 and sub["enable_dhcp"] is True
    assert sub["allocation_pools"] in ([{"start": "10.20.0.2", "end": "10.20.0.254"}], "10.20.0.2-10.20.0.254")
    assert sub["dns_nameservers"] in (["10.20.0.53"], "10.20.0.53")
    shown = osc(svc, "network", "show", f"web-{SUFFIX}")
    assert shown["subnets"] in ([sub["id"]], sub["id"])

    port = osc(svc, "port", "create", "--network", net["id"], f"web-port-{SUFFIX}")
    assert port["mac_address"].startswith("fa:16:3e:")
    ips = port["fixed_ips"]
    assert "10.20.0.2" in str(ips) and sub["id"] in str(ips)
    body = http[TENANT].get(f"{NET}/ports/{port['id']}").json()["port"]
    assert body["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.20.0.2"}]
    default = [g for g in http[TENANT].get(f"{NET}/security-groups").json()["security_groups"]
               if g["name"] == "default"]
    assert body["security_groups"] == [default[0]["id"]] and body["port_security_enabled"] is True
    assert body["status"] == "DOWN" and body["device_id"] == "" and body["tenant_id"] == body["project_id"]
    assert {"allowed_address_pairs", "extra_dhcp_opts", "tags", "revision_number"} <= set(body)
    assert "binding:host_id" not in body  # admin only
    assert http["admin"].get(f"{NET}/ports/{port['id']}").json()["port"]["binding:vif_type"] == "unbound"

    second = osc(svc, "port", "create", "--network", net["id"], "--fixed-ip",
                 f"subnet={sub['id']},ip-address=10.20.0.77", f"web-port2-{SUFFIX}")
    assert "10.20.0.77" in str(second["fixed_ips"])
    listed = osc(svc, "port", "list", "--network", net["id"])
    assert {p["ID"] for p in listed} == {port["id"], second["id"]}

    svc.openstack("network", "set", "--name", f"web2-{SUFFIX}", net["id"], cloud=TENANT)
    svc.openstack("port", "set", "--name", f"renamed-{SUFFIX}", port["id"], cloud=TENANT)
    svc.openstack("subnet", "set", "--name", f"sub2-{SUFFIX}", sub["id"], cloud=TENANT)
    assert osc(svc, "network", "show", net["id"])["name"] == f"web2-{SUFFIX}"
    assert osc(svc, "port", "show", port["id"])["name"] == f"renamed-{SUFFIX}"
    assert osc(svc, "subnet", "show", sub["id"])["name"] == f"sub2-{SUFFIX}"
    assert osc(svc, "network", "show", net["id"])["revision_number"] >= 1

    # a subnet with addresses in use stays; deleting the network takes its unbound ports and subnets along
    assert fault(http[TENANT].delete(f"{NET}/subnets/{sub['id']}"), 409, "SubnetInUse")
    svc.openstack("port", "delete", second["id"], cloud=TENANT)
    svc.openstack("network", "delete", net["id"], cloud=TENANT)
    for path in (f"networks/{net['id']}", f"subnets/{sub['id']}", f"ports/{port['id']}"):
        assert http[TENANT].get(f"{NET}/{path}").status_code == 404
    assert net["id"] not in {n["ID"] for n in osc(svc, "network", "list")}


def test_openstacksdk_networks(svc: Service) -> None:
    config = loader.OpenStackConfig(config_files=[str(svc.clouds_file)], load_envvars=False)
    conn = openstack.connection.Connection(config=config.get_one(cloud=TENANT))
    try:
        net = conn.network.create_network(name=f"sdk-{SUFFIX}")
        sub = conn.network.create_subnet(network_id=net.id, cidr="10.21.0.0/28", ip_version=4,
                                         gateway_ip=None, name=f"sdk-sub-{SUFFIX}")
        assert sub.gateway_ip is None and sub.allocation_pools == [{"start": "10.21.0.1", "end": "10.21.0.14"}]
        port = conn.network.create_port(network_id=net.id, name=f"sdk-port-{SUFFIX}")
        assert port.fixed_ips == [{"subnet_id": sub.id, "ip_address": "10.21.0.1"}]
        assert conn.network.find_network(f"sdk-{SUFFIX}").id == net.id
        assert [p.id for p in conn.network.ports(network_id=net.id)] == [port.id]
        port = conn.network.update_port(port, name="again", description=NASTY)
        assert port.description == NASTY
        group = conn.network.create_security_group(name=f"sdk-sg-{SUFFIX}", description="x")
        rule = conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                       protocol="udp", port_range_min=53, port_range_max=53,
                                                       ethertype="IPv4", remote_ip_prefix="10.0.0.0/8")
        port = conn.network.update_port(port, security_groups=[group.id])
        assert port.security_group_ids == [group.id]
        assert rule.port_range_min == 53 and rule.remote_ip_prefix == "10.0.0.0/8"
        conn.network.update_port(port, security_groups=[])
        conn.network.delete_security_group_rule(rule)
        conn.network.delete_security_group(group)
        conn.network.delete_port(port)
        conn.network.delete_subnet(sub)
        conn.network.delete_network(net)
        assert conn.network.find_network(f"sdk-{SUFFIX}") is None
    finally:
        conn.close()


# -- tenancy --------------------------------------------------------------------------------------------


def test_another_projects_network_and_port_are_not_found(svc: Service, http: dict[str, httpx.Client]) -> None:
    mine, other = http[TENANT], http[OTHER]
    net = mine.post(f"{NET}/networks", json={"network": {"name": f"private-{SUFFIX}"}}).json()["network"]
    sub = mine.post(f"{NET}/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.30.0.0/24",
                                                       "ip_version": 4}}).json()["subnet"]
    port = mine.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    try:
        fault(other.get(f"{NET}/networks/{net['id']}"), 404, "NetworkNotFound")
        fault(other.get(f"{NET}/subnets/{sub['id']}"), 404, "SubnetNotFound")
        fault(other.get(f"{NET}/ports/{port['id']}"), 404, "PortNotFound")
        assert net["id"] not in {n["id"] for n in other.get(f"{NET}/networks").json()["networks"]}
        assert port["id"] not in {p["id"] for p in other.get(f"{NET}/ports").json()["ports"]}
        assert sub["id"] not in {s["id"] for s in other.get(f"{NET}/subnets").json()["subnets"]}
        fault(other.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}}), 404, "NetworkNotFound")
        fault(other.put(f"{NET}/ports/{port['id']}", json={"port": {"name": "x"}}), 404, "PortNotFound")
        fault(other.delete(f"{NET}/networks/{net['id']}"), 404, "NetworkNotFound")
        fails(svc, "network", "show", net["id"], cloud=OTHER)
        # the provider network default is every project's, and read-only
        default = next(n for n in other.get(f"{NET}/networks").json()["networks"] if n["name"] == "default")
        assert default["shared"] is True
        assert "read-only" in fault(other.delete(f"{NET}/networks/{default['id']}"), 403)
        assert "read-only" in fault(mine.put(f"{NET}/networks/{default['id']}", json={"network": {"name": "x"}}),
                                    403)
        assert "read-only" in fault(mine.post(f"{NET}/ports", json={"port": {"network_id": default["id"]}}), 403)
        # shared and external networks are admin's, and then visible to all
        fault(mine.post(f"{NET}/networks", json={"network": {"name": "s", "shared": True}}), 403,
              "PolicyNotAuthorized")
        fault(mine.post(f"{NET}/networks", json={"network": {"name": "s", "provider:segmentation_id": 5000}}), 403)
        shared = http["admin"].post(f"{NET}/networks", json={"network": {"name": f"shared-{SUFFIX}", "shared": True}})
        assert shared.status_code == 201, shared.text
        shared_id = shared.json()["network"]["id"]
        assert other.get(f"{NET}/networks/{shared_id}").status_code == 200
        assert "provider:segmentation_id" not in other.get(f"{NET}/networks/{shared_id}").json()["network"]
        fault(other.post(f"{NET}/subnets", json={"subnet": {"network_id": shared_id, "cidr": "10.31.0.0/24",
                                                            "ip_version": 4}}), 403)
        assert http["admin"].delete(f"{NET}/networks/{shared_id}").status_code == 204
    finally:
        mine.delete(f"{NET}/ports/{port['id']}")
        mine.delete(f"{NET}/networks/{net['id']}")


# -- bad input: a clear error, nothing created --------------------------------------------------------


def test_bad_input_creates_nothing(svc: Service, http: dict[str, httpx.Client]) -> None:
    mine, admin = http[TENANT], http["admin"]
    first = mine.post(f"{NET}/networks", json={"network": {"name": f"bad-a-{SUFFIX}"}}).json()["network"]
    second = mine.post(f"{NET}/networks", json={"network": {"name": f"bad-b-{SUFFIX}"}}).json()["network"]
    base = mine.post(f"{NET}/subnets", json={"subnet": {"network_id": first["id"], "cidr": "10.40.0.0/16",
                                                        "ip_version": 4}})
    assert base.status_code == 201, base.text
    group = mine.post(f"{NET}/security-groups", json={"security_group": {"name": f"bad-sg-{SUFFIX}"}}).json()
    gid = group["security_group"]["id"]
    before = counts(admin)

    def subnet(**kw: Any) -> httpx.Response:
        return mine.post(f"{NET}/subnets", json={"subnet": {"network_id": second["id"], "ip_version": 4, **kw}})

    def rule(**kw: Any) -> httpx.Response:
        return mine.post(f"{NET}/security-group-rules", json={"security_group_rule": {
            "security_group_id": gid, "direction": "ingress", **kw}})

    assert "overlaps with another subnet" in fault(subnet(cidr="10.40.3.0/24"), 400)  # another network, one project
    assert "overlaps" in fault(subnet(cidr="10.0.0.0/8"), 400)
    message = fault(subnet(cidr="10.50.0.0/24", gateway_ip="10.51.0.1"), 400)
    assert "Gateway IP 10.51.0.1" in message and "10.50.0.0/24" in message
    assert "10.50.0.0/33" in fault(subnet(cidr="10.50.0.0/33"), 400)
    assert "'banana'" in fault(subnet(cidr="banana"), 400)
    assert "10.50.0.7/24" in fault(subnet(cidr="10.50.0.7/24"), 400)
    assert "IPv6" in fault(subnet(cidr="fd00::/64", ip_version=6), 400)
    assert "conflicts with allocation pool" in fault(subnet(cidr="10.50.0.0/24", allocation_pools=[
        {"start": "10.50.0.1", "end": "10.50.0.9"}]), 400, "GatewayConflictWithAllocationPools")
    assert "spans beyond" in fault(subnet(cidr="10.50.0.0/24", allocation_pools=[
        {"start": "10.50.0.10", "end": "10.50.1.9"}]), 400, "OutOfBoundsAllocationPool")
    fault(subnet(cidr="10.50.0.0/24", allocation_pools=[{"start": "10.50.0.10", "end": "10.50.0.20"},
                                                        {"start": "10.50.0.15", "end": "10.50.0.30"}]), 400,
          "OverlappingAllocationPools")
    fault(subnet(cidr="10.50.0.0/24", colour="blue"), 400)
    fault(rule(protocol="tcp", port_range_min=100, port_range_max=10), 400, "SecurityGroupInvalidPortRange")
    fault(rule(protocol="tcp", port_range_min=0, port_range_max=10), 400, "SecurityGroupInvalidPortValue")
    fault(rule(protocol="tcp", port_range_min=1, port_range_max=70000), 400, "SecurityGroupInvalidPortValue")
    fault(rule(protocol="icmp", port_range_min=300), 400, "SecurityGroupInvalidIcmpValue")
    fault(rule(port_range_min=22, port_range_max=22), 400)
    fault(rule(protocol="gre", port_range_min=22, port_range_max=22), 400)
    fault(rule(protocol="banana"), 400, "SecurityGroupRuleInvalidProtocol")
    fault(rule(protocol=256), 400, "SecurityGroupRuleInvalidProtocol")
    fault(rule(direction="sideways"), 400)
    fault(rule(ethertype="IPv5"), 400, "SecurityGroupRuleInvalidEtherType")
    fault(rule(ethertype="IPv6", remote_ip_prefix="10.0.0.0/8"), 400, "SecurityGroupRuleParameterConflict")
    fault(rule(remote_ip_prefix="10.0.0.0/8", remote_group_id=gid), 400, "SecurityGroupRemoteGroupAndRemoteIpPrefix")
    fault(rule(remote_ip_prefix="not-a-cidr"), 400)
    fault(rule(remote_group_id="00000000-0000-0000-0000-000000000000"), 404, "SecurityGroupNotFound")
    for vni in (0, 16777216, -5):
        assert str(vni) in fault(admin.post(f"{NET}/networks", json={"network": {
            "name": "v", "provider:network_type": "vxlan", "provider:segmentation_id": vni}}), 400)
    fault(admin.post(f"{NET}/networks", json={"network": {"name": "v", "provider:network_type": "vlan",
                                                          "provider:physical_network": "eth1",
                                                          "provider:segmentation_id": 5000}}), 400)
    fault(admin.post(f"{NET}/networks", json={"network": {"name": "v", "provider:network_type": "gre"}}), 400)
    fault(mine.post(f"{NET}/networks", json={"network": {"name": 42}}), 400)
    fault(mine.post(f"{NET}/networks", json={"net": {}}), 400)
    fault(mine.post(f"{NET}/ports", json={"port": {"network_id": first["id"], "fixed_ips": [
        {"ip_address": "192.168.99.9"}]}}), 400, "InvalidIpForNetwork")
    fault(mine.post(f"{NET}/ports", json={"port": {"network_id": first["id"], "mac_address": "01:00:5e:00:00:01"}}),
          400)
    fault(mine.post(f"{NET}/ports", json={"port": {"network_id": first["id"], "port_security_enabled": False}}), 403)
    assert counts(admin) == before

    # XML and shell text is data: stored and shown back as given, nothing breaks
    odd = mine.post(f"{NET}/networks", json={"network": {"name": NASTY, "description": NASTY}})
    assert odd.status_code == 201, odd.text
    assert mine.get(f"{NET}/networks/{odd.json()['network']['id']}").json()["network"]["name"] == NASTY
    assert [n["id"] for n in mine.get(f"{NET}/networks", params={"name": NASTY}).json()["networks"]] == [
        odd.json()["network"]["id"]]
    odd_group = mine.post(f"{NET}/security-groups", json={"security_group": {"name": NASTY}})
    assert odd_group.status_code == 201 and odd_group.json()["security_group"]["name"] == NASTY
    assert mine.delete(f"{NET}/security-groups/{odd_group.json()['security_group']['id']}").status_code == 204
    assert mine.delete(f"{NET}/networks/{odd.json()['network']['id']}").status_code == 204

    # an admin's VNI in range is taken once
    vxlan = admin.post(f"{NET}/networks", json={"network": {"name": "v", "provider:network_type": "vxlan",
                                                            "provider:segmentation_id": 777777}})
    assert vxlan.status_code == 201 and vxlan.json()["network"]["provider:segmentation_id"] == 777777
    fault(admin.post(f"{NET}/networks", json={"network": {"name": "v2", "provider:network_type": "vxlan",
                                                          "provider:segmentation_id": 777777}}), 409, "TunnelIdInUse")
    admin.delete(f"{NET}/networks/{vxlan.json()['network']['id']}")
    for net in (first, second):
        assert mine.delete(f"{NET}/networks/{net['id']}").status_code == 204
    mine.delete(f"{NET}/security-groups/{gid}")


def test_vnis_are_distinct_and_from_the_range(http: dict[str, httpx.Client]) -> None:
    admin = http["admin"]
    made = [admin.post(f"{NET}/networks", json={"network": {"name": f"vni-{i}"}}).json()["network"] for i in range(3)]
    try:
        vnis = [n["provider:segmentation_id"] for n in made]
        assert len(set(vnis)) == 3 and all(1000 <= v <= 65535 for v in vnis)
        assert all(n["provider:network_type"] == "vxlan" and n["provider:physical_network"] is None for n in made)
    finally:
        for n in made:
            admin.delete(f"{NET}/networks/{n['id']}")


# -- security groups -----------------------------------------------------------------------------------


def test_default_security_group_and_rules(svc: Service, http: dict[str, httpx.Client]) -> None:
    mine, other = http[TENANT], http[OTHER]
    groups = osc(svc, "security", "group", "list")
    default = next(g for g in groups if g["Name"] == "default")
    shown = mine.get(f"{NET}/security-groups/{default['ID']}").json()["security_group"]
    rules = {(r["direction"], r["ethertype"], r["remote_group_id"], r["protocol"], r["remote_ip_prefix"])
             for r in shown["security_group_rules"]}
    assert rules == {("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None),
                     ("ingress", "IPv4", default["ID"], None, None), ("ingress", "IPv6", default["ID"], None, None)}
    assert len(shown["security_group_rules"]) == 4
    assert "Removing default" in fault(mine.delete(f"{NET}/security-groups/{default['ID']}"), 409)
    fault(other.get(f"{NET}/security-groups/{default['ID']}"), 404, "SecurityGroupNotFound")

    web = osc(svc, "security", "group", "create", "--description", "web servers", f"web-{SUFFIX}")
    ssh = osc(svc, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", web["id"])
    assert ssh["port_range_min"] == 22 and ssh["port_range_max"] == 22 and ssh["direction"] == "ingress"
    assert "already exists" in fails(svc, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port",
                                     "22", web["id"])
    dup = mine.post(f"{NET}/security-group-rules", json={"security_group_rule": {
        "security_group_id": web["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
        "port_range_max": 22, "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0"}})
    assert ssh["id"] in fault(dup, 409, "SecurityGroupRuleExists")
    osc(svc, "security", "group", "rule", "create", "--protocol", "icmp", "--remote-group", default["ID"], web["id"])
    listed = osc(svc, "security", "group", "rule", "list", web["id"])
    assert len(listed) == 4  # the two egress rules every new group gets, ssh and icmp
    svc.openstack("security", "group", "set", "--name", f"web2-{SUFFIX}", web["id"], cloud=TENANT)
    assert osc(svc, "security", "group", "show", web["id"])["name"] == f"web2-{SUFFIX}"
    # another project can neither see nor add to it
    fault(other.post(f"{NET}/security-group-rules", json={"security_group_rule": {
        "security_group_id": web["id"], "direction": "ingress"}}), 404, "SecurityGroupNotFound")
    fault(other.get(f"{NET}/security-group-rules/{ssh['id']}"), 404, "SecurityGroupRuleNotFound")
    fault(other.delete(f"{NET}/security-groups/{web['id']}"), 404)
    # a group a port is in stays
    net = mine.post(f"{NET}/networks", json={"network": {"name": f"sg-net-{SUFFIX}"}}).json()["network"]
    port = mine.post(f"{NET}/ports", json={"port": {"network_id": net["id"], "security_groups": [web["id"]]}})
    assert port.status_code == 201 and port.json()["port"]["security_groups"] == [web["id"]]
    assert "in use" in fault(mine.delete(f"{NET}/security-groups/{web['id']}"), 409, "SecurityGroupInUse")
    mine.delete(f"{NET}/ports/{port.json()['port']['id']}")
    svc.openstack("security", "group", "rule", "delete", ssh["id"], cloud=TENANT)
    svc.openstack("security", "group", "delete", web["id"], cloud=TENANT)
    fault(mine.get(f"{NET}/security-group-rules/{ssh['id']}"), 404)
    mine.delete(f"{NET}/networks/{net['id']}")


def test_port_security_is_an_admins_choice(http: dict[str, httpx.Client], svc: Service) -> None:
    admin = http["admin"]
    net = admin.post(f"{NET}/networks", json={"network": {"name": f"ps-{SUFFIX}"}}).json()["network"]
    try:
        open_port = admin.post(f"{NET}/ports", json={"port": {"network_id": net["id"], "port_security_enabled": False}})
        assert open_port.status_code == 201, open_port.text
        assert open_port.json()["port"]["security_groups"] == [] and not open_port.json()["port"][
            "port_security_enabled"]
        pid = open_port.json()["port"]["id"]
        own = admin.get(f"{NET}/security-groups", params={"name": "default", "project_id": open_port.json()[
            "port"]["project_id"]}).json()["security_groups"]
        fault(admin.put(f"{NET}/ports/{pid}", json={"port": {"security_groups": [own[0]["id"]]}}), 400,
              "PortSecurityAndIPRequiredForSecurityGroups")
        back = admin.put(f"{NET}/ports/{pid}", json={"port": {"port_security_enabled": True}})
        assert back.status_code == 200 and back.json()["port"]["port_security_enabled"] is True
        fault(admin.post(f"{NET}/ports", json={"port": {"network_id": net["id"], "port_security_enabled": False,
                                                        "security_groups": ["default"]}}), 400)
    finally:
        admin.delete(f"{NET}/networks/{net['id']}")


# -- quotas ------------------------------------------------------------------------------------------------


def test_network_quota_exceeded_is_409(svc: Service, http: dict[str, httpx.Client]) -> None:
    pid = project_id(svc, OTHER)
    svc.openstack("quota", "set", "--networks", "1", "--ports", "1", pid, cloud=ADMIN_CLOUD)
    other = http[OTHER]
    made: list[str] = []
    try:
        assert other.get(f"{NET}/quotas/{pid}").json()["quota"]["network"] == 1
        first = other.post(f"{NET}/networks", json={"network": {"name": "q1"}})
        assert first.status_code == 201, first.text
        made.append(first.json()["network"]["id"])
        before = counts(http["admin"])
        assert "network" in fault(other.post(f"{NET}/networks", json={"network": {"name": "q2"}}), 409, "OverQuota")
        assert counts(http["admin"]) == before
        assert other.post(f"{NET}/ports", json={"port": {"network_id": made[0]}}).status_code == 201
        assert "port" in fault(other.post(f"{NET}/ports", json={"port": {"network_id": made[0]}}), 409, "OverQuota")
        details = other.get(f"{NET}/quotas/{pid}/details").json()["quota"]
        assert details["network"] == {"limit": 1, "used": 1, "reserved": 0} and details["port"]["used"] == 1
        shown = svc.openstack("quota", "show", "--network", pid, cloud=ADMIN_CLOUD).stdout
        assert "networks" in shown.lower()
    finally:
        for nid in made:
            assert other.delete(f"{NET}/networks/{nid}").status_code == 204
        http["admin"].delete(f"{NET}/quotas/{pid}")
    assert other.get(f"{NET}/quotas/{pid}").json()["quota"]["network"] == 100


# -- concurrent port creates on a nearly full pool ----------------------------------------------------------


def race_for_addresses(svc: Service, tokens: list[str]) -> None:
    """A shared /29 (5 addresses) with 2 taken: 8 concurrent creates from two projects get the 3 free ones,
    distinct, and the other 5 Neutron's 409 with no port made."""
    admin = svc.http(svc.token())
    net = admin.post(f"{NET}/networks", json={"network": {"name": f"race-{SUFFIX}", "shared": True}}).json()["network"]
    sub = admin.post(f"{NET}/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.60.0.0/29",
                                                        "ip_version": 4}}).json()["subnet"]
    for _ in range(2):
        assert admin.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}}).status_code == 201
    results: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def create(token: str) -> None:
        with svc.http(token) as client:
            start.wait()
            r = client.post(f"{NET}/ports", json={"port": {"network_id": net["id"]}})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=create, args=(tokens[i % len(tokens)],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    made = [r.json()["port"] for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(made) == 3, [(r.status_code, r.text) for r in results]
    addresses = [p["fixed_ips"][0]["ip_address"] for p in made]
    assert sorted(addresses) == ["10.60.0.4", "10.60.0.5", "10.60.0.6"]
    for r in refused:
        assert fault(r, 409, "IpAddressGenerationFailure") == f"No more IP addresses available on network {net['id']}."
    ports = admin.get(f"{NET}/ports", params={"network_id": net["id"]}).json()["ports"]
    assert len(ports) == 5 and len({p["fixed_ips"][0]["ip_address"] for p in ports}) == 5
    assert all(p["fixed_ips"][0]["subnet_id"] == sub["id"] for p in ports)
    assert admin.delete(f"{NET}/networks/{net['id']}").status_code == 204
    admin.close()


def test_concurrent_port_creates_sqlite(svc: Service) -> None:
    race_for_addresses(svc, [svc.token(TENANT, project=TENANT), svc.token(OTHER, project=OTHER)])


@pytest.fixture(scope="module")
def pg_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    for url in fresh_database("postgresql", None, f"kvmfleet_net_{SUFFIX}"):
        state = tmp_path_factory.mktemp("net-pg") / "state"
        state.mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KVMFLEET_", "OS_"))}
        env.update({"KVMFLEET_STATE_DIR": str(state), "KVMFLEET_DATABASE_URL": url,
                    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "COLUMNS": "200"})
        (state / "kvmfleet.yml").write_text(yaml.safe_dump(QUIET_CONFIG))
        svc = Service(state=state, port=free_port(), env=env, admin_password=secrets.token_urlsafe(16))
        svc.cli("db", "upgrade")
        svc.cli("identity", "bootstrap", "--admin-password-stdin", input=svc.admin_password + "\n")
        svc.write_clouds()
        svc.user("pg-a", project="pg-a")
        svc.user("pg-b", project="pg-b")
        svc.start()
        try:
            yield svc
        finally:
            svc.stop()


@pytest.mark.postgres
def test_concurrent_port_creates_postgresql(pg_service: Service) -> None:
    race_for_addresses(pg_service, [pg_service.token("pg-a", project="pg-a"),
                                    pg_service.token("pg-b", project="pg-b")])


def test_cli_network_commands(svc: Service) -> None:
    name = f"cli-{SUFFIX}"
    made = yaml.safe_load(svc.cli("network", "create", name, "--project", TENANT, "-f", "json").stdout)
    try:
        sub = yaml.safe_load(svc.cli("subnet", "create", f"{name}-sub", "--network", made["id"], "--cidr",
                                     "10.70.0.0/24", "-f", "json").stdout)
        assert sub["gateway_ip"] == "10.70.0.1"
        port = yaml.safe_load(svc.cli("port", "create", "--network", made["id"], "--project", TENANT, "-f",
                                      "json").stdout)
        assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.70.0.2"}]
        assert name in svc.cli("network", "list").stdout
        assert port["id"] in svc.cli("port", "list", "--project", TENANT).stdout
        group = yaml.safe_load(svc.cli("security-group", "create", f"{name}-sg", "--project", TENANT, "-f",
                                       "json").stdout)
        rule = yaml.safe_load(svc.cli("security-group", "rule-create", group["id"], "--protocol", "tcp",
                                      "--port", "80", "-f", "json").stdout)
        assert rule["port_range_min"] == 80
        bad = svc.cli("security-group", "rule-create", group["id"], "--protocol", "tcp", "--port", "99999",
                      check=False)
        assert bad.returncode != 0 and "99999" in bad.stderr
        svc.cli("security-group", "rule-delete", rule["id"])
        svc.cli("security-group", "delete", group["id"])
        svc.cli("port", "delete", port["id"])
        svc.cli("subnet", "delete", sub["id"])
    finally:
        svc.cli("network", "delete", made["id"], check=False)
    with pytest.raises(CommandError):
        svc.cli("network", "show", made["id"])


# -- Nova's proxy: a server's security groups --------------------------------------------------------------


def server_row(svc: Service, project: str, name: str) -> str:
    from kvmfleet.store import Instance, open_store
    from kvmfleet.store.states import VmState

    store = open_store(f"sqlite:///{svc.state / 'kvmfleet.db'}")
    try:
        with store.transaction() as s:
            inst = Instance(name=name, project_id=project, flavor_name="tn", vcpus=1, memory_mb=64, root_gb=1,
                            vm_state=VmState.ERROR)
            s.add(inst)
            s.flush()
            return inst.uuid
    finally:
        store.dispose()


def test_server_add_and_remove_security_group(svc: Service, http: dict[str, httpx.Client]) -> None:
    """On a server that has a tenant port. No host here: the server is a row of the service's store, as a
    server whose build failed stays (the compute side binds ports to servers; here an admin does)."""
    mine = http[TENANT]
    server = server_row(svc, project_id(svc, TENANT), f"sg-vm-{SUFFIX}")
    net = mine.post(f"{NET}/networks", json={"network": {"name": f"vm-net-{SUFFIX}"}}).json()["network"]
    mine.post(f"{NET}/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.80.0.0/24", "ip_version": 4}})
    web = mine.post(f"{NET}/security-groups", json={"security_group": {"name": f"vm-web-{SUFFIX}"}}).json()
    web_id = web["security_group"]["id"]
    try:
        action = f"/compute/v2.1/servers/{server}/action"
        r = mine.post(action, json={"addSecurityGroup": {"name": f"vm-web-{SUFFIX}"}})
        assert r.status_code == 400 and "no port on a tenant network" in r.text, r.text
        port = http["admin"].post(f"{NET}/ports", json={"port": {
            "network_id": net["id"], "project_id": project_id(svc, TENANT), "device_id": server,
            "device_owner": "compute:nova"}}).json()["port"]
        svc.openstack("server", "add", "security", "group", server, f"vm-web-{SUFFIX}", cloud=TENANT)
        assert set(mine.get(f"{NET}/ports/{port['id']}").json()["port"]["security_groups"]) >= {web_id}
        listed = mine.get(f"/compute/v2.1/servers/{server}/os-security-groups").json()["security_groups"]
        assert {g["name"] for g in listed} == {"default", f"vm-web-{SUFFIX}"}
        default = next(g for g in listed if g["name"] == "default")
        assert {(r["group"].get("name"), r["ip_range"].get("cidr")) for r in default["rules"]} == {("default", None)}
        assert mine.post(action, json={"addSecurityGroup": {"name": "nope"}}).status_code == 404
        assert mine.post(action, json={"addSecurityGroup": {"name": f"vm-web-{SUFFIX}"}}).status_code == 400
        assert mine.post(action, json={"removeSecurityGroup": {"name": "default"}}).status_code == 202
        assert mine.get(f"{NET}/ports/{port['id']}").json()["port"]["security_groups"] == [web_id]
        assert mine.post(action, json={"removeSecurityGroup": {"name": "default"}}).status_code == 400
        assert http[OTHER].post(action, json={"addSecurityGroup": {"name": "default"}}).status_code == 404
        # a port a server holds stays, and so does its network
        assert "attached device" in fault(mine.delete(f"{NET}/ports/{port['id']}"), 409, "PortInUse")
        fault(mine.delete(f"{NET}/networks/{net['id']}"), 409, "NetworkInUse")
        http["admin"].put(f"{NET}/ports/{port['id']}", json={"port": {"device_owner": "", "device_id": ""}})
    finally:
        assert mine.delete(f"{NET}/networks/{net['id']}").status_code == 204
        mine.delete(f"{NET}/security-groups/{web_id}")


def test_port_fixed_ips_update_and_list_paging(http: dict[str, httpx.Client]) -> None:
    mine = http[TENANT]
    nets = [mine.post(f"{NET}/networks", json={"network": {"name": f"page-{i}-{SUFFIX}"}}).json()["network"]
            for i in range(3)]
    try:
        sub = mine.post(f"{NET}/subnets", json={"subnet": {"network_id": nets[0]["id"], "cidr": "10.90.0.0/24",
                                                           "ip_version": 4, "gateway_ip": "10.90.0.254"}})
        assert sub.status_code == 201 and sub.json()["subnet"]["allocation_pools"] == [
            {"start": "10.90.0.1", "end": "10.90.0.253"}]
        port = mine.post(f"{NET}/ports", json={"port": {"network_id": nets[0]["id"]}}).json()["port"]
        assert port["fixed_ips"][0]["ip_address"] == "10.90.0.1"
        moved = mine.put(f"{NET}/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.90.0.50"}]}})
        assert moved.status_code == 200, moved.text
        assert [f["ip_address"] for f in moved.json()["port"]["fixed_ips"]] == ["10.90.0.50"]
        assert moved.json()["port"]["revision_number"] == port["revision_number"] + 1
        again = mine.post(f"{NET}/ports", json={"port": {"network_id": nets[0]["id"]}}).json()["port"]
        assert again["fixed_ips"][0]["ip_address"] == "10.90.0.1"  # released by the move
        fault(mine.post(f"{NET}/ports", json={"port": {"network_id": nets[0]["id"], "fixed_ips": [
            {"ip_address": "10.90.0.50"}]}}), 409, "IpAddressInUse")
        by_ip = mine.get(f"{NET}/ports", params={"fixed_ips": "ip_address=10.90.0.50"}).json()["ports"]
        assert [p["id"] for p in by_ip] == [port["id"]]
        names = sorted(n["name"] for n in nets)
        page = mine.get(f"{NET}/networks", params={"name": names, "sort_key": "name", "sort_dir": "asc",
                                                   "limit": 2}).json()
        assert [n["name"] for n in page["networks"]] == names[:2] and page["networks_links"][0]["rel"] == "next"
        rest = mine.get(f"{NET}/networks", params={"name": names, "sort_key": "name", "limit": 2,
                                                   "marker": page["networks"][-1]["id"]}).json()
        assert [n["name"] for n in rest["networks"]] == names[2:]
        fields = mine.get(f"{NET}/ports", params={"network_id": nets[0]["id"], "fields": ["id", "mac_address"]})
        assert all(set(p) == {"id", "mac_address"} for p in fields.json()["ports"])
    finally:
        for net in nets:
            assert mine.delete(f"{NET}/networks/{net['id']}").status_code == 204
