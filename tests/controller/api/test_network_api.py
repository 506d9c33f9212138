"""The Network API (Neutron v2.0) of a real `kvmfleet serve` on the lab, its provider network: the default
network (read-only) and its subnet as the hosts' libvirt reports them, and each server's port with the
MAC its domain really has and the IPv4 address the guest really got (its host's DHCP lease, and the
guest's own ready line on its serial console), through the unmodified `openstack` client and plain HTTP;
tenancy of ports. (Tenant networks, subnets, ports and security groups: test_network_tenant.py, no lab.)

Two servers: one made by `openstack server create --network default --wait` (the API), one by the CLI
(`kvmfleet server create --image <id>`) from an image uploaded through the Image API.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TINY_IMAGE, Service
from conftest_lab import LabHost, lab_hosts

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
TENANT = f"net-{SUFFIX}"
OTHER = f"net-o-{SUFFIX}"
READY = re.compile(r"kvmfleet-guest: ready hostname=(\S+) ip=(\S+) instance-id=(\S+)")
NAMESPACE = uuid.UUID("8a4c2f5e-6b1d-4e0a-9c3f-6b766d6e6574")  # kvmfleet.network.model.NAMESPACE
DEFAULT_ID = str(uuid.uuid5(NAMESPACE, "network:default"))
NETWORK_KEYS = {"id", "name", "tenant_id", "project_id", "admin_state_up", "status", "subnets", "shared",
                "router:external", "mtu", "description", "created_at", "updated_at", "revision_number", "tags",
                "availability_zones", "availability_zone_hints", "port_security_enabled"}
PROVIDER = {"provider:network_type", "provider:physical_network", "provider:segmentation_id"}
PORT_KEYS = {"id", "name", "network_id", "tenant_id", "project_id", "mac_address", "admin_state_up", "status",
             "device_id", "device_owner", "fixed_ips", "security_groups", "binding:vnic_type", "description",
             "created_at", "updated_at", "revision_number", "port_security_enabled", "allowed_address_pairs",
             "extra_dhcp_opts", "tags"}
BINDING = {"binding:host_id", "binding:vif_type", "binding:vif_details", "binding:profile"}


@pytest.fixture(scope="module")
def hosts(lab_inventory: Path) -> list[LabHost]:
    return lab_hosts(lab_inventory)


@pytest.fixture(scope="module")
def svc(compute_service: Service) -> Service:
    compute_service.user(TENANT, project=TENANT)
    compute_service.user(OTHER, project=OTHER)
    return compute_service


@pytest.fixture(scope="module")
def http(svc: Service) -> Any:
    clients = {"admin": svc.http(svc.token()),
               TENANT: svc.http(svc.token(TENANT, project=TENANT)),
               OTHER: svc.http(svc.token(OTHER, project=OTHER))}
    yield clients
    for client in clients.values():
        client.close()


def osc(svc: Service, *args: str, cloud: str = TENANT, **kw: Any) -> Any:
    return svc.openstack(*args, cloud=cloud, as_json=True, **kw)


@pytest.fixture(scope="module")
def api_server(svc: Service) -> Any:
    """`openstack server create --network default --wait` as the tenant."""
    made = osc(svc, "server", "create", "--flavor", "api.nano", "--image", "tiny", "--network", "default", "--wait",
               f"net-api-{SUFFIX}", timeout=900)
    yield made
    svc.openstack("server", "delete", "--wait", made["id"], cloud=TENANT, check=False, timeout=900)


@pytest.fixture(scope="module")
def uploaded(svc: Service) -> Any:
    image = osc(svc, "image", "create", "--file", str(TINY_IMAGE), "--disk-format", "qcow2", "--container-format",
                "bare", f"net-img-{SUFFIX}")
    yield image
    svc.openstack("image", "delete", image["id"], cloud=TENANT, check=False)


@pytest.fixture(scope="module")
def cli_server(svc: Service, uploaded: dict) -> Any:
    """`kvmfleet server create --wait` (the CLI, on the service's store) from the API-uploaded image."""
    name = f"net-cli-{SUFFIX}"
    svc.cli("server", "create", name, "--project", TENANT, "--flavor", "api.nano", "--image", uploaded["id"],
            "--wait", timeout=900)
    shown = osc(svc, "server", "show", name)  # the tenant's own server, by name
    shown = osc(svc, "server", "show", shown["id"], cloud="kvmfleet-admin")  # with its host
    assert shown["status"] == "ACTIVE", shown
    yield shown
    svc.cli("server", "delete", shown["id"], check=False, timeout=900)


def ready_line(svc: Service, server: str, timeout: float = 300) -> tuple[str, str]:
    """(hostname, ip) from the guest's `kvmfleet-guest: ready` line on its serial console."""
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = svc.openstack("console", "log", "show", server, cloud="kvmfleet-admin").stdout
        found = READY.search(log)
        if found:
            return found.group(1), found.group(2)
        time.sleep(3)
    raise AssertionError(f"no ready line on {server}'s console after {timeout}s: {log[-1500:]}")


def leased_port(client: httpx.Client, server_id: str, timeout: float = 240) -> dict[str, Any]:
    """The server's one port once it shows the fixed IP the host's DHCP lease gave (the service refreshes
    leases by itself within seconds of a build)."""
    deadline = time.monotonic() + timeout
    ports: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        r = client.get("/network/v2.0/ports", params={"device_id": server_id})
        assert r.status_code == 200, r.text
        ports = r.json()["ports"]
        if ports and ports[0]["fixed_ips"]:
            assert len(ports) == 1, ports
            return ports[0]
        time.sleep(3)
    raise AssertionError(f"no leased port for {server_id} after {timeout}s: {ports}")


def domain_mac(host: LabHost, server_id: str) -> str:
    out = host.run(f"virsh domiflist kvmfleet-{server_id}")
    macs = re.findall(r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})", out.lower())
    assert len(macs) == 1, out
    return macs[0]


def host_named(hosts: list[LabHost], name: str) -> LabHost:
    return next(h for h in hosts if h.name == name)


# -- discovery --------------------------------------------------------------------------------------


def test_version_documents_and_extensions(svc: Service, http: dict[str, httpx.Client]) -> None:
    root = httpx.get(f"{svc.url}/network", timeout=30).json()
    assert root == {"versions": [{"status": "CURRENT", "id": "v2.0",
                                  "links": [{"href": f"{svc.url}/network/v2.0/", "rel": "self"}]}]}
    resources = httpx.get(f"{svc.url}/network/v2.0/", timeout=30).json()["resources"]
    assert {r["collection"] for r in resources} == {"networks", "subnets", "ports"}
    aliases = {e["alias"] for e in http[TENANT].get("/network/v2.0/extensions").json()["extensions"]}
    assert {"external-net", "provider", "binding", "security-group", "port-security", "quotas", "net-mtu"} <= aliases
    assert http[TENANT].get("/network/v2.0/extensions/binding").json()["extension"]["name"] == "Port Binding"
    missing = http[TENANT].get("/network/v2.0/extensions/dvr")
    assert missing.status_code == 404 and missing.json()["NeutronError"]["type"] == "ExtensionNotFound"


# -- networks and subnets ---------------------------------------------------------------------------


def test_openstack_network_list_and_show_default(svc: Service, hosts: list[LabHost]) -> None:
    listed = osc(svc, "network", "list")
    default = next(n for n in listed if n["Name"] == "default")
    assert default["ID"] == DEFAULT_ID  # stable: uuid5 of a fixed namespace and the name
    shown = osc(svc, "network", "show", "default")
    assert shown["id"] == DEFAULT_ID and shown["shared"] is True and shown["status"] == "ACTIVE"
    assert shown["mtu"] == 1500 and shown["router:external"] in (False, "Internal")
    subnet = osc(svc, "subnet", "show", shown["subnets"][0])
    # what the hosts' libvirt says about their default network
    xml = hosts[0].run("virsh net-dumpxml default")
    gateway = re.search(r"<ip address='([\d.]+)'", xml).group(1)
    start, end = re.search(r"<range start='([\d.]+)' end='([\d.]+)'", xml).groups()
    assert subnet["gateway_ip"] == gateway and subnet["cidr"].startswith(gateway.rsplit(".", 1)[0])
    assert subnet["allocation_pools"] in ([{"start": start, "end": end}], f"{start}-{end}")
    assert subnet["network_id"] == DEFAULT_ID and subnet["ip_version"] == 4 and subnet["enable_dhcp"] is True


def test_network_views_and_queries(http: dict[str, httpx.Client]) -> None:
    member = http[TENANT].get(f"/network/v2.0/networks/{DEFAULT_ID}").json()["network"]
    assert set(member) == NETWORK_KEYS  # no provider attributes for a member
    admin = http["admin"].get(f"/network/v2.0/networks/{DEFAULT_ID}").json()["network"]
    assert set(admin) == NETWORK_KEYS | PROVIDER and admin["provider:network_type"] == "local"
    by_name = http[TENANT].get("/network/v2.0/networks", params={"name": "default"}).json()["networks"]
    assert [n["id"] for n in by_name] == [DEFAULT_ID]
    assert http[TENANT].get("/network/v2.0/networks?name=nope").json()["networks"] == []
    assert http[TENANT].get("/network/v2.0/networks?shared=false").json()["networks"] == []
    assert [n["id"] for n in http[TENANT].get(f"/network/v2.0/networks?id={DEFAULT_ID}&id=x").json()["networks"]
            ] == [DEFAULT_ID]
    fields = http[TENANT].get("/network/v2.0/networks?fields=id&fields=name").json()["networks"]
    assert fields and all(set(n) == {"id", "name"} for n in fields)
    bad = http[TENANT].get("/network/v2.0/networks?colour=blue")
    assert bad.status_code == 400 and "colour" in bad.json()["NeutronError"]["message"]
    missing = http[TENANT].get("/network/v2.0/networks/default")  # by id only, as Neutron
    assert missing.status_code == 404 and missing.json()["NeutronError"]["type"] == "NetworkNotFound"
    # the provider network is read-only: no port of its own, no rename, no delete
    for r in (http[TENANT].post("/network/v2.0/ports", json={"port": {"network_id": DEFAULT_ID}}),
              http["admin"].put(f"/network/v2.0/networks/{DEFAULT_ID}", json={"network": {"name": "x"}}),
              http["admin"].delete(f"/network/v2.0/networks/{DEFAULT_ID}")):
        assert r.status_code == 403 and "read-only" in r.json()["NeutronError"]["message"], r.text


# -- ports: the real MAC and the address the guest got ------------------------------------------------


def test_api_server_port_has_its_real_mac_and_leased_ip(svc: Service, http: dict[str, httpx.Client],
                                                        hosts: list[LabHost], api_server: dict) -> None:
    shown = osc(svc, "server", "show", api_server["id"], cloud="kvmfleet-admin")
    host = host_named(hosts, shown["OS-EXT-SRV-ATTR:host"])
    port = leased_port(http[TENANT], api_server["id"])
    assert set(port) == PORT_KEYS
    assert port["mac_address"] == domain_mac(host, api_server["id"])
    _, ip = ready_line(svc, api_server["id"])
    assert port["fixed_ips"][0]["ip_address"] == ip  # what the guest says it got
    assert port["mac_address"] in host.run("virsh net-dhcp-leases default").lower()
    assert port["network_id"] == DEFAULT_ID and port["status"] == "ACTIVE"
    assert port["device_owner"] == f"compute:{shown['OS-EXT-AZ:availability_zone']}"
    assert port["project_id"] == shown["project_id"]
    subnet = http[TENANT].get(f"/network/v2.0/subnets/{port['fixed_ips'][0]['subnet_id']}")
    assert subnet.status_code == 200 and subnet.json()["subnet"]["network_id"] == DEFAULT_ID
    # the server's addresses (compute API) show the same address
    addresses = osc(svc, "server", "show", api_server["id"])["addresses"]
    assert ip in str(addresses), addresses
    # the admin also sees where it is bound
    admin_port = http["admin"].get(f"/network/v2.0/ports/{port['id']}").json()["port"]
    assert set(admin_port) == PORT_KEYS | BINDING and admin_port["binding:host_id"] == host.name


def test_openstack_port_list_for_a_server(svc: Service, api_server: dict, http: dict[str, httpx.Client]) -> None:
    port = leased_port(http[TENANT], api_server["id"])
    listed = osc(svc, "port", "list", "--server", api_server["id"])
    assert [p["ID"] for p in listed] == [port["id"]]
    assert listed[0]["MAC Address"] == port["mac_address"]
    shown = osc(svc, "port", "show", port["id"])
    assert shown["device_id"] == api_server["id"]


def test_cli_server_from_an_api_uploaded_image(svc: Service, http: dict[str, httpx.Client], hosts: list[LabHost],
                                               uploaded: dict, cli_server: dict) -> None:
    assert uploaded["id"] in str(cli_server["image"])
    host = host_named(hosts, cli_server["OS-EXT-SRV-ATTR:host"])
    port = leased_port(http[TENANT], cli_server["id"])
    assert port["mac_address"] == domain_mac(host, cli_server["id"])
    _, ip = ready_line(svc, cli_server["id"])
    assert port["fixed_ips"][0]["ip_address"] == ip


def test_ports_of_another_project_are_not_found(http: dict[str, httpx.Client], api_server: dict) -> None:
    port = leased_port(http[TENANT], api_server["id"])
    other = http[OTHER]
    assert other.get("/network/v2.0/ports", params={"device_id": api_server["id"]}).json()["ports"] == []
    assert port["id"] not in {p["id"] for p in other.get("/network/v2.0/ports").json()["ports"]}
    r = other.get(f"/network/v2.0/ports/{port['id']}")
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "PortNotFound"
    # every project uses the shared network
    assert other.get(f"/network/v2.0/networks/{DEFAULT_ID}").status_code == 200
    mac = http[TENANT].get("/network/v2.0/ports", params={"mac_address": port["mac_address"]}).json()["ports"]
    assert [p["id"] for p in mac] == [port["id"]]
    by_ip = http[TENANT].get("/network/v2.0/ports",
                             params={"fixed_ips": f"ip_address={port['fixed_ips'][0]['ip_address']}"}).json()
    assert port["id"] in {p["id"] for p in by_ip["ports"]}


def test_security_groups_floating_ips_and_quotas(svc: Service, http: dict[str, httpx.Client],
                                                 api_server: dict) -> None:
    groups = http[TENANT].get("/network/v2.0/security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    port = leased_port(http[TENANT], api_server["id"])
    assert port["security_groups"] == [groups[0]["id"]]
    shown = http[TENANT].get(f"/network/v2.0/security-groups/{groups[0]['id']}").json()["security_group"]
    assert len(shown["security_group_rules"]) == 4
    assert http[OTHER].get(f"/network/v2.0/security-groups/{groups[0]['id']}").status_code == 404
    assert {r["remote_group_id"] for r in shown["security_group_rules"] if r["direction"] == "ingress"} == {
        groups[0]["id"]}  # Neutron's default group: ingress from its own members
    assert http[TENANT].get("/network/v2.0/floatingips").json() == {"floatingips": []}
    project = shown["project_id"]
    details = http[TENANT].get(f"/network/v2.0/quotas/{project}/details").json()["quota"]
    assert details["port"]["used"] >= 1 and details["network"]["limit"] == 100
    assert http[OTHER].get(f"/network/v2.0/quotas/{project}").status_code == 403
    quota = osc(svc, "quota", "show", "--network")
    assert quota


def test_an_image_in_use_can_be_deleted(svc: Service, uploaded: dict, cli_server: dict) -> None:
    """Glance allows it: the image and its data go, the server keeps running and still names it."""
    svc.openstack("image", "delete", uploaded["id"], cloud=TENANT)
    gone = svc.openstack("image", "show", uploaded["id"], cloud=TENANT, check=False)
    assert gone.returncode != 0
    assert not list((svc.state / "images").glob(f"{uploaded['id']}*"))
    assert uploaded["id"] not in svc.cli("image", "list", "-f", "json").stdout
    shown = osc(svc, "server", "show", cli_server["id"])
    assert shown["status"] == "ACTIVE" and uploaded["id"] in str(shown["image"])


def test_stopped_server_port_is_down(svc: Service, http: dict[str, httpx.Client], cli_server: dict) -> None:
    leased_port(http[TENANT], cli_server["id"])
    svc.cli("server", "stop", cli_server["id"], timeout=600)
    port = http[TENANT].get("/network/v2.0/ports", params={"device_id": cli_server["id"]}).json()["ports"][0]
    assert port["status"] == "DOWN"
    svc.cli("server", "delete", cli_server["id"], timeout=900)
    assert http[TENANT].get("/network/v2.0/ports", params={"device_id": cli_server["id"]}).json()["ports"] == []
