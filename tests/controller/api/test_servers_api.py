"""The servers API (Nova v2.1 to 2.79) against a real `kvmfleet serve` on the lab, field by field.

One server is built for the module by raw HTTP and checked against the api-ref's exact key sets at 2.1,
2.47 and 2.79 (for a member and for an admin), against what its host really runs (the domain, its MAC),
then listed, filtered, paged, updated, given metadata, taken through actions, and deleted.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Service
from conftest_lab import LabHost, lab_hosts

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
MEMBER = f"srv-{SUFFIX}"
NAME = f"srv-vm-{SUFFIX}"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
USAGE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
NS = "https://kvmfleet.dev/xmlns/instance/1"

# The api-ref's keys of a server (GET /servers/{id}) for an ACTIVE server with a NIC.
BASE = {"accessIPv4", "accessIPv6", "addresses", "created", "flavor", "hostId", "id", "image", "links", "metadata",
        "name", "status", "tenant_id", "user_id", "updated", "OS-DCF:diskConfig", "progress",
        "OS-EXT-AZ:availability_zone", "config_drive", "key_name", "OS-SRV-USG:launched_at",
        "OS-SRV-USG:terminated_at", "security_groups", "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state",
        "OS-EXT-STS:power_state", "os-extended-volumes:volumes_attached"}
ADMIN_21 = {"OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:instance_name", "OS-EXT-SRV-ATTR:hypervisor_hostname"}
ADMIN_23 = ADMIN_21 | {"OS-EXT-SRV-ATTR:hostname", "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:launch_index",
                       "OS-EXT-SRV-ATTR:ramdisk_id", "OS-EXT-SRV-ATTR:reservation_id",
                       "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data"}
V247 = {"locked", "description", "tags"}
V279 = V247 | {"trusted_image_certificates", "locked_reason"}
EXPECTED = {
    ("2.1", False): BASE,
    ("2.1", True): BASE | ADMIN_21,
    ("2.47", False): BASE | V247,
    ("2.47", True): BASE | V247 | ADMIN_23 | {"host_status"},
    ("2.79", False): BASE | V279 | {"server_groups"},
    ("2.79", True): BASE | V279 | {"server_groups"} | ADMIN_23 | {"host_status"},
}
FLAVOR_247 = {"vcpus", "ram", "disk", "ephemeral", "swap", "original_name", "extra_specs"}


def query(svc: Service, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(svc.state / "kvmfleet.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def wait_for(client: httpx.Client, server_id: str, status: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/compute/v2.1/servers/{server_id}")
        if r.status_code == 404 and status == "DELETED":
            return {}
        assert r.status_code == 200, r.text
        shown = r.json()["server"]
        if shown["status"] == status and shown.get("OS-EXT-STS:task_state") is None:
            return shown
        assert shown["status"] != "ERROR" or status == "ERROR", shown.get("fault")
        time.sleep(2)
    raise AssertionError(f"{server_id} still {shown.get('status')} after {timeout}s waiting for {status}")


@pytest.fixture(scope="module")
def tenant(compute_service: Service) -> httpx.Client:
    compute_service.user(MEMBER, MEMBER, "member")
    client = compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.79")
    yield client
    client.close()


@pytest.fixture(scope="module")
def admin(compute_service: Service) -> httpx.Client:
    client = compute_service.http(compute_service.token(), "2.79")
    yield client
    client.close()


@pytest.fixture(scope="module")
def refs(compute_service: Service) -> dict[str, str]:
    return {"image": query(compute_service, "SELECT id FROM images WHERE name = 'tiny'")[0][0],
            "flavor": query(compute_service, "SELECT id FROM flavors WHERE name = 'api.nano'")[0][0],
            "flavor2": query(compute_service, "SELECT id FROM flavors WHERE name = 'api.micro'")[0][0]}


@pytest.fixture(scope="module")
def created(compute_service: Service, tenant: httpx.Client, refs: dict[str, str]) -> dict[str, Any]:
    """POST /servers as the tenant; the response and its headers are kept for the create test."""
    user_data = "IyEvYmluL3NoCmVjaG8gaGVsbG8K"  # "#!/bin/sh\necho hello\n"
    r = tenant.post("/compute/v2.1/servers", json={"server": {
        "name": NAME, "imageRef": refs["image"], "flavorRef": refs["flavor"], "networks": "auto",
        "metadata": {"role": "web", "tier": "1"}, "description": "made by test_servers_api",
        "user_data": user_data,
        "block_device_mapping_v2": [{"uuid": refs["image"], "boot_index": 0, "source_type": "image",
                                     "destination_type": "local", "delete_on_termination": True}]}})
    assert r.status_code == 202, r.text
    return {"response": r, "id": r.json()["server"]["id"], "user_data": user_data}


@pytest.fixture(scope="module")
def active(created: dict[str, Any], tenant: httpx.Client) -> dict[str, Any]:
    return wait_for(tenant, created["id"], "ACTIVE")


def host_named(inventory: Path, name: str) -> LabHost:
    return next(h for h in lab_hosts(inventory) if h.name == name)


def test_create_answers_202_with_nova_create_body(created: dict[str, Any], compute_service: Service) -> None:
    r = created["response"]
    server = r.json()["server"]
    assert set(r.json()) == {"server"}
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "security_groups"}  # no adminPass: none is set
    assert UUID_RE.match(server["id"])
    assert server["OS-DCF:diskConfig"] == "MANUAL"
    assert server["security_groups"] == [{"name": "default"}]
    assert [link["rel"] for link in server["links"]] == ["self", "bookmark"]
    assert server["links"][0]["href"] == f"{compute_service.url}/compute/v2.1/servers/{server['id']}"
    assert server["links"][1]["href"] == f"{compute_service.url}/compute/servers/{server['id']}"
    assert r.headers["location"] == server["links"][0]["href"]
    assert r.headers["openstack-api-version"] == "compute 2.79"
    # the request was a persisted task with its action before the answer
    request_id = r.headers["x-openstack-request-id"]
    assert query(compute_service, "SELECT action FROM instance_actions WHERE instance_uuid = ? AND request_id = ?",
                 server["id"], request_id) == [("create",)]
    assert query(compute_service, "SELECT count(*) FROM tasks WHERE instance_uuid = ? AND kind = 'create'",
                 server["id"]) == [(1,)]


def test_building_server_hides_addresses(created: dict[str, Any], tenant: httpx.Client) -> None:
    shown = tenant.get(f"/compute/v2.1/servers/{created['id']}").json()["server"]
    if shown["status"] == "BUILD":  # only while it builds: Nova hides addresses then
        assert shown["addresses"] == {}
        assert shown["OS-EXT-STS:vm_state"] == "building"
    assert shown["name"] == NAME


@pytest.mark.parametrize("version", ["2.1", "2.47", "2.79"])
@pytest.mark.parametrize("as_admin", [False, True], ids=["member", "admin"])
def test_show_exact_keys(compute_service: Service, active: dict[str, Any], version: str, as_admin: bool) -> None:
    token = compute_service.token() if as_admin else compute_service.token(MEMBER, project=MEMBER)
    with compute_service.http(token, version) as client:
        r = client.get(f"/compute/v2.1/servers/{active['id']}")
    assert r.status_code == 200, r.text
    assert r.headers["openstack-api-version"] == f"compute {version}"
    server = r.json()["server"]
    assert set(server) == EXPECTED[(version, as_admin)], (
        set(server) ^ EXPECTED[(version, as_admin)])
    if version == "2.1":
        assert set(server["flavor"]) == {"id", "links"}
        assert server["flavor"]["links"][0]["rel"] == "bookmark"
    else:
        assert set(server["flavor"]) == FLAVOR_247
        assert server["flavor"]["original_name"] == "api.nano"
        assert (server["flavor"]["vcpus"], server["flavor"]["ram"], server["flavor"]["disk"]) == (1, 128, 1)
    for nics in server["addresses"].values():
        for addr in nics:
            assert set(addr) == {"version", "addr", "OS-EXT-IPS:type", "OS-EXT-IPS-MAC:mac_addr"}


def test_show_values_match_the_host(compute_service: Service, active: dict[str, Any], admin: httpx.Client,
                                    lab_inventory: Path, created: dict[str, Any]) -> None:
    server = admin.get(f"/compute/v2.1/servers/{active['id']}").json()["server"]
    project_id = query(compute_service, "SELECT id FROM projects WHERE name = ?", MEMBER)[0][0]
    assert server["status"] == "ACTIVE" and server["progress"] == 0
    assert server["OS-EXT-STS:vm_state"] == "active" and server["OS-EXT-STS:task_state"] is None
    assert server["OS-EXT-STS:power_state"] == 1
    assert server["tenant_id"] == project_id
    assert server["metadata"] == {"role": "web", "tier": "1"}
    assert server["description"] == "made by test_servers_api"
    assert server["locked"] is False and server["tags"] == [] and server["locked_reason"] is None
    assert server["trusted_image_certificates"] is None and server["server_groups"] == []
    assert server["key_name"] is None and server["config_drive"] == "True"
    assert server["image"]["id"] == query(compute_service, "SELECT id FROM images WHERE name='tiny'")[0][0]
    assert TIME_RE.match(server["created"]) and TIME_RE.match(server["updated"])
    assert USAGE_RE.match(server["OS-SRV-USG:launched_at"]) and server["OS-SRV-USG:terminated_at"] is None
    host = server["OS-EXT-SRV-ATTR:host"]
    assert server["OS-EXT-SRV-ATTR:hypervisor_hostname"] == host
    assert server["hostId"] == hashlib.sha224((project_id + host).encode()).hexdigest()
    assert server["host_status"] == "UP"
    assert server["OS-EXT-SRV-ATTR:user_data"] == created["user_data"]
    assert server["OS-EXT-SRV-ATTR:reservation_id"].startswith("r-")
    assert server["OS-EXT-SRV-ATTR:launch_index"] == 0
    assert server["OS-EXT-SRV-ATTR:root_device_name"] == "/dev/vda"
    assert server["OS-EXT-SRV-ATTR:hostname"] == NAME
    # the host runs that domain, with the MAC the API shows
    lab = host_named(lab_inventory, host)
    domain = server["OS-EXT-SRV-ATTR:instance_name"]
    assert domain == f"kvmfleet-{active['id']}"
    assert lab.run(f"virsh domstate {domain}").strip() == "running"
    macs = re.findall(r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})", lab.run(f"virsh domiflist {domain}"))
    assert macs
    shown_macs = [a["OS-EXT-IPS-MAC:mac_addr"] for nics in server["addresses"].values() for a in nics]
    assert set(shown_macs) <= set(macs)
    # a member sees none of the host attributes
    member = compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.79")
    shown = member.get(f"/compute/v2.1/servers/{active['id']}").json()["server"]
    member.close()
    assert not [k for k in shown if k.startswith("OS-EXT-SRV-ATTR:")] and "host_status" not in shown
    assert shown["hostId"] == server["hostId"]


def test_list_and_detail(tenant: httpx.Client, active: dict[str, Any], refs: dict[str, str]) -> None:
    r = tenant.get("/compute/v2.1/servers")
    assert r.status_code == 200
    listed = {s["id"]: s for s in r.json()["servers"]}
    assert set(r.json()) == {"servers"}
    assert set(listed[active["id"]]) == {"id", "name", "links"}
    detail = {s["id"]: s for s in tenant.get("/compute/v2.1/servers/detail").json()["servers"]}
    # detail carries every show key except server_groups (Nova's detail view omits it)
    assert set(detail[active["id"]]) == EXPECTED[("2.79", False)] - {"server_groups"}
    for params, hit in [({"name": f"^srv-vm-{SUFFIX}$"}, True), ({"name": "^nomatch"}, False),
                        ({"status": "ACTIVE"}, True), ({"status": "SHUTOFF"}, False),
                        ({"flavor": refs["flavor"]}, True), ({"flavor": refs["flavor2"]}, False),
                        ({"image": refs["image"]}, True), ({"changes-since": "2000-01-01T00:00:00Z"}, True),
                        ({"changes-since": "2999-01-01T00:00:00Z"}, False), ({"reservation_id": "r-none"}, False),
                        ({"host": "lab-h1", "name": NAME}, True)]:  # host is admin-only: ignored for a member
        got = [s["id"] for s in tenant.get("/compute/v2.1/servers/detail", params=params).json()["servers"]]
        assert (active["id"] in got) is hit, params


def test_paging_and_sort(compute_service: Service, tenant: httpx.Client, active: dict[str, Any],
                         refs: dict[str, str]) -> None:
    """A second server (quota allows) pages with limit=1: servers_links next carries the marker."""
    r = tenant.post("/compute/v2.1/servers", json={"server": {"name": f"{NAME}-b", "imageRef": refs["image"],
                                                               "flavorRef": refs["flavor"], "networks": "none"}})
    assert r.status_code == 202, r.text
    second = r.json()["server"]["id"]
    try:
        page = tenant.get("/compute/v2.1/servers", params={"limit": 1}).json()
        assert len(page["servers"]) == 1 and page["servers"][0]["id"] == second  # newest first
        link = page["servers_links"]
        assert link[0]["rel"] == "next" and f"marker={second}" in link[0]["href"] and "limit=1" in link[0]["href"]
        nxt = tenant.get(link[0]["href"]).json()
        assert [s["id"] for s in nxt["servers"]] == [active["id"]]
        asc = [s["id"] for s in tenant.get("/compute/v2.1/servers", params={"sort_key": "display_name",
                                                                            "sort_dir": "asc"}).json()["servers"]]
        assert asc == [active["id"], second]
        bad = tenant.get("/compute/v2.1/servers", params={"marker": "6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f"})
        assert bad.status_code == 400 and "marker" in bad.json()["badRequest"]["message"]
        assert tenant.get("/compute/v2.1/servers", params={"sort_key": "host"}).status_code == 403
        assert tenant.get("/compute/v2.1/servers", params={"status": "NOPE"}).status_code == 400
        assert tenant.get("/compute/v2.1/servers", params={"bogus": "1"}).status_code == 400  # 2.75+
        with compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.74") as old:
            assert old.get("/compute/v2.1/servers", params={"bogus": "1"}).status_code == 200
        shown = wait_for(tenant, second, "ACTIVE")
        assert shown["addresses"] == {} and "security_groups" not in shown  # networks "none": no NIC
    finally:
        assert tenant.delete(f"/compute/v2.1/servers/{second}").status_code == 204
        wait_for(tenant, second, "DELETED")


def test_update_name_and_description(compute_service: Service, tenant: httpx.Client, active: dict[str, Any]) -> None:
    r = tenant.put(f"/compute/v2.1/servers/{active['id']}",
                   json={"server": {"name": f"{NAME} ✓ renamed", "description": None}})
    assert r.status_code == 200, r.text
    server = r.json()["server"]
    assert server["name"] == f"{NAME} ✓ renamed" and server["description"] is None
    assert set(server) == EXPECTED[("2.79", False)]  # from 2.75 PUT answers the whole server
    with compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.1") as old:
        r = old.put(f"/compute/v2.1/servers/{active['id']}", json={"server": {"name": NAME}})
        reduced = r.json()["server"]
        assert set(reduced) == {"accessIPv4", "accessIPv6", "addresses", "created", "flavor", "hostId", "id",
                                "image", "links", "metadata", "name", "status", "tenant_id", "updated", "user_id",
                                "OS-DCF:diskConfig", "progress"}
        for nics in reduced["addresses"].values():
            assert all(set(a) == {"version", "addr"} for a in nics)
        r = old.put(f"/compute/v2.1/servers/{active['id']}", json={"server": {"description": "x"}})
        assert r.status_code == 400  # description is 2.19+
    assert tenant.get(f"/compute/v2.1/servers/{active['id']}").json()["server"]["name"] == NAME


def test_a_listed_page_follows_every_change(compute_service: Service, tenant: httpx.Client,
                                            active: dict[str, Any]) -> None:
    """Repeated list requests are answered from rendered pages (kvmfleet.api.page_cache) while the store
    is unchanged: a change through the API and one committed by another process both show at once."""
    def listed_name() -> str:
        r = tenant.get("/compute/v2.1/servers/detail", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return next(s["name"] for s in r.json()["servers"] if s["id"] == active["id"])

    first = listed_name()
    assert listed_name() == first  # the same page again (served from the cache)
    r = tenant.put(f"/compute/v2.1/servers/{active['id']}", json={"server": {"name": f"{NAME}-cached"}})
    assert r.status_code == 200, r.text
    assert listed_name() == f"{NAME}-cached"
    assert listed_name() == f"{NAME}-cached"
    db = sqlite3.connect(compute_service.state / "kvmfleet.db")  # another process commits to the store
    try:
        with db:
            db.execute("UPDATE instances SET name = ? WHERE uuid = ?", (f"{NAME}-elsewhere", active["id"]))
    finally:
        db.close()
    assert listed_name() == f"{NAME}-elsewhere"
    r = tenant.put(f"/compute/v2.1/servers/{active['id']}", json={"server": {"name": first}})
    assert r.status_code == 200 and listed_name() == first


def test_metadata(tenant: httpx.Client, active: dict[str, Any]) -> None:
    base = f"/compute/v2.1/servers/{active['id']}/metadata"
    assert tenant.get(base).json() == {"metadata": {"role": "web", "tier": "1"}}
    r = tenant.post(base, json={"metadata": {"tier": "2", "zone": "a"}})
    assert r.status_code == 200 and r.json() == {"metadata": {"role": "web", "tier": "2", "zone": "a"}}
    assert tenant.get(f"{base}/tier").json() == {"meta": {"tier": "2"}}
    assert tenant.put(f"{base}/owner", json={"meta": {"owner": "ops"}}).json() == {"meta": {"owner": "ops"}}
    r = tenant.put(f"{base}/owner", json={"meta": {"other": "x"}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"] == "Request body and URI mismatch"
    assert tenant.delete(f"{base}/zone").status_code == 204
    r = tenant.get(f"{base}/zone")
    assert r.status_code == 404 and r.json()["itemNotFound"]["message"] == "Metadata item was not found"
    assert tenant.delete(f"{base}/zone").status_code == 404
    r = tenant.put(base, json={"metadata": {"only": "this"}})
    assert r.json() == {"metadata": {"only": "this"}}
    over = tenant.post(base, json={"metadata": {f"k{i}": "v" for i in range(129)}})
    assert over.status_code == 403 and "metadata_items" in over.json()["forbidden"]["message"]
    assert tenant.get(base).json() == {"metadata": {"only": "this"}}


def action(client: httpx.Client, server_id: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/compute/v2.1/servers/{server_id}/action", json=body)


def test_power_actions_on_the_host(tenant: httpx.Client, active: dict[str, Any], admin: httpx.Client,
                                   lab_inventory: Path) -> None:
    sid = active["id"]
    host = host_named(lab_inventory, admin.get(f"/compute/v2.1/servers/{sid}").json()["server"][
        "OS-EXT-SRV-ATTR:host"])
    domain = f"kvmfleet-{sid}"
    r = action(tenant, sid, {"os-start": None})
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["message"] == f"Cannot 'start' instance {sid} while it is in vm_state active"
    for body, status, state in [({"os-stop": None}, "SHUTOFF", "shut off"), ({"os-start": None}, "ACTIVE", "running"),
                                ({"pause": None}, "PAUSED", "paused"), ({"unpause": None}, "ACTIVE", "running"),
                                ({"suspend": None}, "SUSPENDED", None), ({"resume": None}, "ACTIVE", "running"),
                                ({"reboot": {"type": "SOFT"}}, "ACTIVE", "running"),
                                ({"reboot": {"type": "HARD"}}, "ACTIVE", "running")]:
        r = action(tenant, sid, body)
        assert r.status_code == 202, (body, r.text)
        assert r.content == b""
        wait_for(tenant, sid, status)
        if state is not None:
            assert host.run(f"virsh domstate {domain}").strip() == state, body
    assert action(tenant, sid, {"reboot": {"type": "gentle"}}).status_code == 400
    r = action(tenant, sid, {"fly": {}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"] == "There is no such action: fly"
    r = action(tenant, sid, {"os-resetState": {"state": "error"}})
    assert r.status_code == 403  # admin only


def test_console_output(tenant: httpx.Client, active: dict[str, Any]) -> None:
    deadline = time.monotonic() + 180
    while True:  # the reboots just before restarted the guest: wait for its ready line
        r = action(tenant, active["id"], {"os-getConsoleOutput": {"length": 50}})
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"output"}
        if "kvmfleet-guest: ready" in r.json()["output"] or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert "kvmfleet-guest: ready" in r.json()["output"]
    assert len(r.json()["output"].splitlines()) <= 50
    assert action(tenant, active["id"], {"os-getConsoleOutput": {"length": "x"}}).status_code == 400


def test_resize_and_confirm(tenant: httpx.Client, active: dict[str, Any], refs: dict[str, str]) -> None:
    sid = active["id"]
    r = action(tenant, sid, {"resize": {"flavorRef": refs["flavor2"]}})
    assert r.status_code == 202, r.text
    shown = wait_for(tenant, sid, "VERIFY_RESIZE")
    assert shown["flavor"]["original_name"] == "api.micro"
    r = action(tenant, sid, {"confirmResize": None})
    assert r.status_code == 204, r.text
    assert wait_for(tenant, sid, "ACTIVE")["flavor"]["ram"] == 192
    r = action(tenant, sid, {"resize": {"flavorRef": "no-such-flavor"}})
    assert r.status_code == 400 and "Flavor no-such-flavor could not be found." in r.text


def test_rebuild_answers_the_server(tenant: httpx.Client, active: dict[str, Any], refs: dict[str, str]) -> None:
    sid = active["id"]
    r = action(tenant, sid, {"rebuild": {"imageRef": refs["image"], "name": NAME, "metadata": {"rebuilt": "yes"},
                                         "description": "rebuilt"}})
    assert r.status_code == 202, r.text
    server = r.json()["server"]
    assert set(server) == EXPECTED[("2.79", False)] | {"user_data"}
    assert server["metadata"] == {"rebuilt": "yes"} and server["description"] == "rebuilt"
    assert r.headers["location"].endswith(f"/compute/v2.1/servers/{sid}")
    assert wait_for(tenant, sid, "ACTIVE")["image"]["id"] == refs["image"]
    r = action(tenant, sid, {"rebuild": {"imageRef": "6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f"}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"] == "Cannot find image for rebuild"


def test_instance_actions(compute_service: Service, tenant: httpx.Client, admin: httpx.Client,
                          active: dict[str, Any], created: dict[str, Any]) -> None:
    sid = active["id"]
    listed = tenant.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()["instanceActions"]
    names = [a["action"] for a in listed]
    assert names[-1] == "create" and "stop" in names and "rebuild" in names  # newest first
    assert all(set(a) == {"action", "instance_uuid", "request_id", "user_id", "project_id", "start_time",
                          "message", "updated_at"} for a in listed)
    create = listed[-1]
    assert create["request_id"] == created["response"].headers["x-openstack-request-id"]
    with compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.1") as old:
        old_list = old.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()["instanceActions"]
        assert all("updated_at" not in a for a in old_list)
        shown = old.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{create['request_id']}").json()
        assert "events" not in shown["instanceAction"]  # before 2.51 events are admin-only
    shown = tenant.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{create['request_id']}").json()
    events = shown["instanceAction"]["events"]
    assert events and all(set(e) == {"event", "start_time", "finish_time", "result", "hostId"} for e in events)
    as_admin = admin.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/{create['request_id']}").json()
    assert all(set(e) == {"event", "start_time", "finish_time", "result", "hostId", "host", "traceback"}
               for e in as_admin["instanceAction"]["events"])
    page = tenant.get(f"/compute/v2.1/servers/{sid}/os-instance-actions", params={"limit": 1}).json()
    assert len(page["instanceActions"]) == 1 and page["links"][0]["rel"] == "next"
    r = tenant.get(f"/compute/v2.1/servers/{sid}/os-instance-actions/req-nope")
    assert r.status_code == 404 and r.json()["itemNotFound"]["message"] == "Action req-nope not found"


MARKUP = "<b>&amp;'\"$(touch /tmp/kvmfleet-pwned-{s}) `id` {{{{ 7*7 }}}} {{% raw %}} ]]> ü"


def test_markup_name_is_text_everywhere(compute_service: Service, tenant: httpx.Client, admin: httpx.Client,
                                        refs: dict[str, str], lab_inventory: Path) -> None:
    """A display name full of XML, shell and Jinja is stored and shown as given, and reaches the host only
    as escaped text in the domain's metadata: not evaluated, not run."""
    name = MARKUP.format(s=SUFFIX)
    r = tenant.post("/compute/v2.1/servers", json={"server": {"name": name, "imageRef": refs["image"],
                                                               "flavorRef": refs["flavor"], "networks": "auto"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    try:
        shown = wait_for(tenant, sid, "ACTIVE")
        assert shown["name"] == name
        assert [s["name"] for s in tenant.get("/compute/v2.1/servers").json()["servers"] if s["id"] == sid] == [name]
        host = host_named(lab_inventory, admin.get(f"/compute/v2.1/servers/{sid}").json()["server"][
            "OS-EXT-SRV-ATTR:host"])
        xml = host.run(f"virsh dumpxml kvmfleet-{sid}")
        root = ET.fromstring(xml)
        assert root.findtext("name") == f"kvmfleet-{sid}"
        meta = root.find(f"metadata/{{{NS}}}instance")
        assert meta is not None
        assert meta.findtext(f"{{{NS}}}name") == name  # the XML parser gives back exactly the name
        assert "{{ 7*7 }}" in name and " 49 " not in xml  # Jinja was not evaluated on the way
        for h in lab_hosts(lab_inventory):
            assert h.run(f"test -e /tmp/kvmfleet-pwned-{SUFFIX} && echo yes || echo no").strip() == "no"
        assert not Path(f"/tmp/kvmfleet-pwned-{SUFFIX}").exists()
        assert admin.get(f"/compute/v2.1/servers/{sid}").json()["server"]["OS-EXT-SRV-ATTR:hostname"].isascii()
    finally:
        assert tenant.delete(f"/compute/v2.1/servers/{sid}").status_code == 204
        wait_for(tenant, sid, "DELETED")


def test_reset_state_by_an_admin(tenant: httpx.Client, admin: httpx.Client, active: dict[str, Any]) -> None:
    sid = active["id"]
    r = action(admin, sid, {"os-resetState": {"state": "error"}})
    assert r.status_code == 202, r.text
    shown = tenant.get(f"/compute/v2.1/servers/{sid}").json()["server"]
    assert shown["status"] == "ERROR" and shown["OS-EXT-STS:vm_state"] == "error"
    assert "progress" not in shown  # only in ACTIVE/BUILD/REBUILD/RESIZE/VERIFY_RESIZE/MIGRATING
    assert action(admin, sid, {"os-resetState": {"state": "paused"}}).status_code == 400
    assert action(admin, sid, {"os-resetState": {"state": "active"}}).status_code == 202
    assert tenant.get(f"/compute/v2.1/servers/{sid}").json()["server"]["status"] == "ACTIVE"
    actions = tenant.get(f"/compute/v2.1/servers/{sid}/os-instance-actions").json()["instanceActions"]
    assert [a["action"] for a in actions[:2]] == ["resetState", "resetState"]


def test_all_tenants_is_admin_only(tenant: httpx.Client, admin: httpx.Client, active: dict[str, Any]) -> None:
    r = tenant.get("/compute/v2.1/servers", params={"all_tenants": "1"})
    assert r.status_code == 403 and "get_all_tenants" in r.json()["forbidden"]["message"]
    assert active["id"] not in [s["id"] for s in admin.get("/compute/v2.1/servers").json()["servers"]]
    everyone = admin.get("/compute/v2.1/servers/detail", params={"all_tenants": "True"}).json()["servers"]
    assert active["id"] in [s["id"] for s in everyone]


def test_delete_removes_the_domain(tenant: httpx.Client, admin: httpx.Client, active: dict[str, Any],
                                   lab_inventory: Path) -> None:
    sid = active["id"]
    host = host_named(lab_inventory, admin.get(f"/compute/v2.1/servers/{sid}").json()["server"][
        "OS-EXT-SRV-ATTR:host"])
    r = tenant.delete(f"/compute/v2.1/servers/{sid}")
    assert r.status_code == 204 and r.content == b""
    wait_for(tenant, sid, "DELETED")
    r = tenant.get(f"/compute/v2.1/servers/{sid}")
    assert r.status_code == 404
    assert r.json() == {"itemNotFound": {"code": 404, "message": f"Instance {sid} could not be found."}}
    assert f"kvmfleet-{sid}" not in host.domains()
    # changes-since lists the deleted server with status DELETED
    gone = [s for s in admin.get("/compute/v2.1/servers/detail", params={
        "changes-since": "2000-01-01T00:00:00Z", "all_tenants": "1"}).json()["servers"] if s["id"] == sid]
    assert gone and gone[0]["status"] == "DELETED" and USAGE_RE.match(gone[0]["OS-SRV-USG:terminated_at"])


READY = re.compile(r"kvmfleet-guest: ready hostname=(\S+) ip=(\S+) instance-id=(\S+)")


def test_openstack_client_create_shows_the_guests_address(compute_service: Service, tenant: httpx.Client,
                                                          refs: dict[str, str]) -> None:
    """`openstack server create --network default --wait` as the tenant; the server's addresses then carry
    the NIC's MAC and the IPv4 the guest itself reports on its console (from the host's DHCP lease)."""
    name = f"{NAME}-osc"
    created = compute_service.openstack("server", "create", "--image", refs["image"], "--flavor", refs["flavor"],
                                        "--network", "default", "--wait", name, cloud=MEMBER, as_json=True)
    sid = created["id"]
    try:
        assert created["status"] == "ACTIVE" and created["name"] == name
        deadline = time.monotonic() + 240
        ready = None
        addresses: dict[str, Any] = {}
        while time.monotonic() < deadline:
            output = action(tenant, sid, {"os-getConsoleOutput": {"length": -1}}).json()["output"]
            ready = READY.search(output)
            addresses = tenant.get(f"/compute/v2.1/servers/{sid}").json()["server"]["addresses"]
            if ready and addresses.get("default"):
                break
            time.sleep(5)
        assert ready, "the guest never printed its ready line"
        assert list(addresses) == ["default"] and len(addresses["default"]) == 1
        addr = addresses["default"][0]
        assert addr["addr"] == ready.group(2) and addr["version"] == 4 and addr["OS-EXT-IPS:type"] == "fixed"
        assert ready.group(3) == sid
        listed = compute_service.openstack("server", "list", "--name", name, cloud=MEMBER, as_json=True)
        assert [s["ID"] for s in listed] == [sid]
        shown = compute_service.openstack("server", "show", sid, cloud=MEMBER, as_json=True)
        assert shown["id"] == sid and shown["status"] == "ACTIVE"
        assert ready.group(2) in json.dumps(shown["addresses"])
    finally:
        compute_service.openstack("server", "delete", "--wait", sid, cloud=MEMBER)
    assert tenant.get(f"/compute/v2.1/servers/{sid}").status_code == 404


def test_multi_create_returns_the_reservation(compute_service: Service, tenant: httpx.Client, admin: httpx.Client,
                                              refs: dict[str, str]) -> None:
    """min_count/max_count with return_reservation_id: the answer is the reservation id alone, and the
    reservation's servers share it (launch_index 0 and 1)."""
    r = tenant.post("/compute/v2.1/servers", json={"server": {
        "name": f"{NAME}-multi", "imageRef": refs["image"], "flavorRef": refs["flavor"], "networks": "none",
        "min_count": 2, "max_count": "2", "return_reservation_id": True}})
    assert r.status_code == 202, r.text
    assert set(r.json()) == {"reservation_id"} and r.json()["reservation_id"].startswith("r-")
    rid = r.json()["reservation_id"]
    servers = tenant.get("/compute/v2.1/servers/detail", params={"reservation_id": rid}).json()["servers"]
    try:
        assert len(servers) == 2
        shown = [admin.get(f"/compute/v2.1/servers/{s['id']}").json()["server"] for s in servers]
        assert {s["OS-EXT-SRV-ATTR:reservation_id"] for s in shown} == {rid}
        assert sorted(s["OS-EXT-SRV-ATTR:launch_index"] for s in shown) == [0, 1]
    finally:
        for s in servers:
            assert tenant.delete(f"/compute/v2.1/servers/{s['id']}").status_code == 204
        for s in servers:
            wait_for(tenant, s["id"], "DELETED")

