"""Tenancy and policy of the servers API (Nova's defaults) against a real `kvmfleet serve` on the lab.

Project B's server is a 404 for project A's member on show, update, delete, every action, metadata and
instance actions, and never appears in A's lists (all_tenants is admin-only: 403). A reader reads but
cannot write; admin-only paths (resetState, zone:host, host filters and sorting) refuse a member.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import Any

import httpx
import pytest
from conftest import Service

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
A, B = f"ten-a-{SUFFIX}", f"ten-b-{SUFFIX}"
READER = f"ten-reader-{SUFFIX}"


def query(svc: Service, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(svc.state / "kvmfleet.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def client(svc: Service, user: str, project: str, version: str = "2.79") -> httpx.Client:
    return svc.http(svc.token(user, project=project), version)


@pytest.fixture(scope="module")
def users(compute_service: Service) -> dict[str, httpx.Client]:
    compute_service.user(A, A, "member")
    compute_service.user(B, B, "member")
    compute_service.user(READER, B, "reader")
    out = {"a": client(compute_service, A, A), "b": client(compute_service, B, B),
           "reader": client(compute_service, READER, B), "admin": compute_service.http(compute_service.token(), "2.79")}
    yield out
    for c in out.values():
        c.close()


@pytest.fixture(scope="module")
def b_server(compute_service: Service, users: dict[str, httpx.Client]) -> str:
    image = query(compute_service, "SELECT id FROM images WHERE name = 'tiny'")[0][0]
    flavor = query(compute_service, "SELECT id FROM flavors WHERE name = 'api.nano'")[0][0]
    r = users["b"].post("/compute/v2.1/servers", json={"server": {
        "name": f"ten-vm-{SUFFIX}", "imageRef": image, "flavorRef": flavor, "networks": "auto",
        "metadata": {"owner": "b"}}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    yield sid
    users["b"].delete(f"/compute/v2.1/servers/{sid}")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and users["b"].get(f"/compute/v2.1/servers/{sid}").status_code != 404:
        time.sleep(2)


def not_found(r: httpx.Response, sid: str) -> None:
    assert r.status_code == 404, (r.status_code, r.text)
    assert r.json() == {"itemNotFound": {"code": 404, "message": f"Instance {sid} could not be found."}}


ACTIONS = [{"os-stop": None}, {"os-start": None}, {"reboot": {"type": "HARD"}}, {"pause": None},
           {"unpause": None}, {"suspend": None}, {"resume": None}, {"resize": {"flavorRef": "1"}},
           {"confirmResize": None}, {"revertResize": None}, {"os-getConsoleOutput": {"length": 5}},
           {"rebuild": {"imageRef": "6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f"}}]


def test_other_projects_server_is_404_everywhere(compute_service: Service, users: dict[str, httpx.Client],
                                                 b_server: str) -> None:
    a = users["a"]
    before = query(compute_service, "SELECT name, metadata, description, deleted_at FROM instances WHERE uuid = ?",
                   b_server)
    actions_before = query(compute_service, "SELECT count(*) FROM instance_actions WHERE instance_uuid = ?", b_server)
    not_found(a.get(f"/compute/v2.1/servers/{b_server}"), b_server)
    not_found(a.put(f"/compute/v2.1/servers/{b_server}", json={"server": {"name": "mine"}}), b_server)
    for body in ACTIONS:
        not_found(a.post(f"/compute/v2.1/servers/{b_server}/action", json=body), b_server)
    not_found(a.get(f"/compute/v2.1/servers/{b_server}/metadata"), b_server)
    not_found(a.get(f"/compute/v2.1/servers/{b_server}/metadata/owner"), b_server)
    not_found(a.post(f"/compute/v2.1/servers/{b_server}/metadata", json={"metadata": {"x": "y"}}), b_server)
    not_found(a.put(f"/compute/v2.1/servers/{b_server}/metadata", json={"metadata": {}}), b_server)
    not_found(a.put(f"/compute/v2.1/servers/{b_server}/metadata/owner", json={"meta": {"owner": "a"}}), b_server)
    not_found(a.delete(f"/compute/v2.1/servers/{b_server}/metadata/owner"), b_server)
    not_found(a.get(f"/compute/v2.1/servers/{b_server}/os-instance-actions"), b_server)
    not_found(a.delete(f"/compute/v2.1/servers/{b_server}"), b_server)
    # nothing about B's server changed (its build goes on), no action was recorded
    assert query(compute_service, "SELECT name, metadata, description, deleted_at FROM instances WHERE uuid = ?",
                 b_server) == before
    assert query(compute_service, "SELECT count(*) FROM instance_actions WHERE instance_uuid = ?",
                 b_server) == actions_before
    assert users["b"].get(f"/compute/v2.1/servers/{b_server}").status_code == 200


def test_never_in_another_projects_lists(users: dict[str, httpx.Client], b_server: str) -> None:
    a = users["a"]
    for path in ("/compute/v2.1/servers", "/compute/v2.1/servers/detail"):
        for params in ({}, {"name": "ten-vm"}, {"project_id": B.replace("-", "")}, {"tenant_id": "x"},
                       {"changes-since": "2000-01-01T00:00:00Z"}):
            ids = [s["id"] for s in a.get(path, params=params).json()["servers"]]
            assert b_server not in ids, (path, params)
        r = a.get(path, params={"all_tenants": "1"})
        assert r.status_code == 403 and list(r.json()) == ["forbidden"]
        assert b_server in [s["id"] for s in users["b"].get(path).json()["servers"]]
        assert b_server in [s["id"] for s in users["admin"].get(path, params={"all_tenants": ""}).json()["servers"]]


def test_reader_reads_but_cannot_write(compute_service: Service, users: dict[str, httpx.Client],
                                       b_server: str) -> None:
    reader = users["reader"]
    assert reader.get(f"/compute/v2.1/servers/{b_server}").status_code == 200
    assert b_server in [s["id"] for s in reader.get("/compute/v2.1/servers").json()["servers"]]
    assert reader.get(f"/compute/v2.1/servers/{b_server}/metadata").json() == {"metadata": {"owner": "b"}}
    assert reader.get(f"/compute/v2.1/servers/{b_server}/os-instance-actions").status_code == 200
    before = query(compute_service, "SELECT count(*) FROM instances")
    image = query(compute_service, "SELECT id FROM images WHERE name = 'tiny'")[0][0]
    writes = [
        ("post", "/compute/v2.1/servers", {"server": {"name": "r", "imageRef": image, "flavorRef": "x",
                                                      "networks": "none"}}, "os_compute_api:servers:create"),
        ("put", f"/compute/v2.1/servers/{b_server}", {"server": {"name": "r"}}, "os_compute_api:servers:update"),
        ("post", f"/compute/v2.1/servers/{b_server}/action", {"os-stop": None}, "os_compute_api:servers:stop"),
        ("post", f"/compute/v2.1/servers/{b_server}/action", {"pause": None}, "os-pause-server:pause"),
        ("post", f"/compute/v2.1/servers/{b_server}/metadata", {"metadata": {"r": "1"}}, "server-metadata:create"),
        ("delete", f"/compute/v2.1/servers/{b_server}/metadata/owner", None, "server-metadata:delete"),
        ("delete", f"/compute/v2.1/servers/{b_server}", None, "os_compute_api:servers:delete"),
    ]
    for method, path, body, rule in writes:
        r = reader.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert rule in r.json()["forbidden"]["message"]
    assert query(compute_service, "SELECT count(*) FROM instances") == before
    assert users["b"].get(f"/compute/v2.1/servers/{b_server}/metadata").json() == {"metadata": {"owner": "b"}}


def test_admin_only_paths_refuse_a_member(compute_service: Service, users: dict[str, httpx.Client],
                                          b_server: str) -> None:
    b = users["b"]
    r = b.post(f"/compute/v2.1/servers/{b_server}/action", json={"os-resetState": {"state": "active"}})
    assert r.status_code == 403 and "os-admin-actions:reset_state" in r.json()["forbidden"]["message"]
    image = query(compute_service, "SELECT id FROM images WHERE name = 'tiny'")[0][0]
    flavor = query(compute_service, "SELECT id FROM flavors WHERE name = 'api.nano'")[0][0]
    host = query(compute_service, "SELECT name FROM hosts ORDER BY name")[0][0]
    before = query(compute_service, "SELECT count(*) FROM instances")
    r = b.post("/compute/v2.1/servers", json={"server": {"name": "forced", "imageRef": image, "flavorRef": flavor,
                                                         "networks": "none", "availability_zone": f"nova:{host}"}})
    assert r.status_code == 403 and "create:forced_host" in r.json()["forbidden"]["message"]
    r = b.post("/compute/v2.1/servers", json={"server": {"name": "forced", "imageRef": image, "flavorRef": flavor,
                                                         "networks": "none", "host": host}})
    assert r.status_code == 403 and "requested_destination" in r.json()["forbidden"]["message"]
    assert query(compute_service, "SELECT count(*) FROM instances") == before
    r = b.get("/compute/v2.1/servers", params={"sort_key": "host"})
    assert r.status_code == 403 and r.json()["forbidden"]["message"] == "Only administrators can sort servers by host"
    r = b.get("/compute/v2.1/servers/detail", params={"status": "DELETED"})
    assert r.status_code == 403
    shown = b.get(f"/compute/v2.1/servers/{b_server}").json()["server"]
    assert not [k for k in shown if k.startswith("OS-EXT-SRV-ATTR:")] and "host_status" not in shown


def test_admin_sees_and_acts_on_any_project(users: dict[str, httpx.Client], b_server: str) -> None:
    admin = users["admin"]
    shown = admin.get(f"/compute/v2.1/servers/{b_server}").json()["server"]
    assert "OS-EXT-SRV-ATTR:instance_name" in shown
    assert admin.get(f"/compute/v2.1/servers/{b_server}/metadata").json() == {"metadata": {"owner": "b"}}
    listed = admin.get("/compute/v2.1/servers", params={"all_tenants": "1", "project_id": shown["tenant_id"]})
    assert [s["id"] for s in listed.json()["servers"]] == [b_server]
