"""Bad input to the servers API, against a real `kvmfleet serve` with the lab's hosts: every request gets the
right 4xx with Nova's fault body and a message, and nothing is created — no instance row, no task, no
claim, no quota usage, no domain on any host.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Service, make_service
from conftest_lab import lab_hosts

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
MEMBER = f"bad-{SUFFIX}"


def counts(svc: Service) -> dict[str, int]:
    """What a create could have left behind: rows of every kind it writes."""
    db = sqlite3.connect(svc.state / "kvmfleet.db")
    try:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("instances", "tasks", "allocations", "instance_actions")}
    finally:
        db.close()


def domains_everywhere(svc: Service, inventory: Path) -> set[str]:
    return {d for h in lab_hosts(inventory) for d in h.domains()}


@pytest.fixture(scope="module")
def member(compute_service: Service, domains_before: set[str]) -> httpx.Client:
    compute_service.user(MEMBER, MEMBER, "member")
    client = compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.79")
    yield client
    client.close()


def query(svc: Service, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(svc.state / "kvmfleet.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


@pytest.fixture(scope="module")
def refs(compute_service: Service) -> dict[str, str]:
    """The tiny image and the api.nano flavor the harness registered (read from the store)."""
    image = query(compute_service, "SELECT id FROM images WHERE name = ?", "tiny")[0][0]
    flavor = query(compute_service, "SELECT id FROM flavors WHERE name = ?", "api.nano")[0][0]
    return {"image": image, "flavor": flavor}


@pytest.fixture(scope="module")
def domains_before(compute_service: Service, lab_inventory: Path) -> set[str]:
    return domains_everywhere(compute_service, lab_inventory)


def body(refs: dict[str, str], **server: Any) -> dict[str, Any]:
    return {"server": {"name": f"bad-vm-{SUFFIX}", "imageRef": refs["image"], "flavorRef": refs["flavor"],
                       "networks": "auto", **server}}


def assert_fault(r: httpx.Response, status: int, name: str, contains: str = "") -> str:
    assert r.status_code == status, (r.status_code, r.text)
    fault = r.json()
    assert list(fault) == [name], fault
    assert fault[name]["code"] == status
    message = fault[name]["message"]
    assert isinstance(message, str) and message
    assert contains in message, message
    assert r.headers["x-openstack-request-id"].startswith("req-")
    return message


CASES: list[tuple[str, Any, int, str, str]] = [
    # (case, body or raw bytes, status, fault, message part)
    ("malformed json", b'{"server": {"name": "x",', 400, "badRequest", "not valid JSON"),
    ("not an object", b'[]', 400, "badRequest", ""),
    ("empty body", b"", 400, "badRequest", ""),
    ("unknown top-level key", {"server": {}, "bogus": 1}, 400, "badRequest", "Additional properties"),
]


@pytest.mark.parametrize(("case", "payload", "status", "fault", "part"), CASES, ids=[c[0] for c in CASES])
def test_malformed_bodies(compute_service: Service, member: httpx.Client, case: str, payload: Any, status: int,
                          fault: str, part: str) -> None:
    before = counts(compute_service)
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    r = member.post("/compute/v2.1/servers", content=raw, headers={"Content-Type": "application/json"})
    assert_fault(r, status, fault, part)
    assert counts(compute_service) == before


FIELD_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown server key", {"colour": "blue"}, "Additional properties are not allowed ('colour' was unexpected)"),
    ("name wrong type", {"name": 42}, "Invalid input for field/attribute server/name"),
    ("name empty", {"name": ""}, "server/name"),
    ("name leading space", {"name": " web"}, "Can not start or end with whitespace"),
    ("name too long", {"name": "x" * 256}, "server/name"),
    ("name control character", {"name": "web\u0007"}, "printable characters"),
    ("flavorRef list", {"flavorRef": ["1"]}, "server/flavorRef"),
    ("imageRef not uuid", {"imageRef": "tiny"}, "server/imageRef"),
    ("min_count text", {"min_count": "two"}, "server/min_count"),
    ("min_count zero", {"min_count": 0}, "server/min_count"),
    ("min over max", {"min_count": 3, "max_count": 2}, "min_count must be <= max_count"),
    ("metadata value int", {"metadata": {"k": 1}}, "server/metadata"),
    ("metadata key too long", {"metadata": {"k" * 256: "v"}}, "does not match any of the regexes"),
    ("networks object", {"networks": {"uuid": "x"}}, "server/networks"),
    ("networks bad enum", {"networks": "some"}, "server/networks"),
    ("network uuid not uuid", {"networks": [{"uuid": "default"}]}, "server/networks"),
    ("network item unknown key", {"networks": [{"uuid": str(uuid.uuid4()), "mtu": 1}]}, "Additional properties"),
    ("user_data not base64", {"user_data": "not base64 !!"}, "server/user_data"),
    ("config_drive wrong", {"config_drive": "maybe"}, "server/config_drive"),
    ("description too long", {"description": "d" * 256}, "server/description"),
    ("availability zone empty", {"availability_zone": ""}, "server/availability_zone"),
    ("security group unknown key", {"security_groups": [{"id": "x"}]}, "Additional properties"),
    ("boot from an existing volume", {"block_device_mapping_v2": [{"source_type": "volume", "uuid": str(uuid.uuid4()),
                                                                  "destination_type": "volume", "boot_index": 0}]},
     "or from a new volume made from an image"),
    ("boot volume without a size", {"imageRef": "", "block_device_mapping_v2": [{
        "source_type": "image", "uuid": str(uuid.uuid4()), "destination_type": "volume", "boot_index": 0}]},
     "volume_size is required"),
    ("unknown flavor", {"flavorRef": "no-such-flavor"}, "Flavor no-such-flavor could not be found."),
    ("unknown image", {"imageRef": "6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f"}, "Can not find requested image"),
    ("unknown network", {"networks": [{"uuid": "6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f"}]},
     "Network 6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f could not be found."),
    ("unknown key pair", {"key_name": "no-such-key"}, "Invalid key_name provided."),
    ("unknown port", {"networks": [{"port": "6f1d2a34-7c1b-4f0e-9b9e-3f5a2c1d0e9f"}]}, "could not be found"),
    ("unknown security group", {"security_groups": [{"name": "web"}]}, "Security group web not found."),
    ("unknown availability zone", {"availability_zone": "atlantis"}, "availability zone is not available"),
    ("zone:host for a member", {"availability_zone": "nova:lab-h1"}, ""),
]


@pytest.mark.parametrize(("case", "fields", "part"), FIELD_CASES, ids=[c[0] for c in FIELD_CASES])
def test_bad_fields(compute_service: Service, member: httpx.Client, refs: dict[str, str], case: str,
                    fields: dict[str, Any], part: str) -> None:
    before = counts(compute_service)
    r = member.post("/compute/v2.1/servers", json=body(refs, **fields))
    if case == "zone:host for a member":
        assert_fault(r, 403, "forbidden", "os_compute_api:servers:create:forced_host")
    else:
        assert_fault(r, 400, "badRequest", part)
    assert counts(compute_service) == before


def test_unknown_group_hint(compute_service: Service, member: httpx.Client, refs: dict[str, str]) -> None:
    before = counts(compute_service)
    group = str(uuid.uuid4())
    r = member.post("/compute/v2.1/servers", json={**body(refs), "os:scheduler_hints": {"group": group}})
    assert_fault(r, 400, "badRequest", f"Instance group {group} could not be found.")
    assert counts(compute_service) == before


def test_networks_required_from_2_37(compute_service: Service, refs: dict[str, str]) -> None:
    client = compute_service.http(compute_service.token(MEMBER, project=MEMBER), "2.37")
    payload = body(refs)
    del payload["server"]["networks"]
    r = client.post("/compute/v2.1/servers", json=payload)
    assert_fault(r, 400, "badRequest", "'networks' is a required property")
    client.close()


def test_oversized_user_data_is_refused_and_never_echoed(compute_service: Service, member: httpx.Client,
                                                         refs: dict[str, str]) -> None:
    before = counts(compute_service)
    secret = f"#!/bin/sh\necho sekrit-{SUFFIX}\n"
    text = base64.b64encode((secret * 1800).encode()).decode()  # > 65535 base64 characters, body < 112 KiB
    assert len(text) > 65535
    r = member.post("/compute/v2.1/servers", json=body(refs, user_data=text))
    message = assert_fault(r, 400, "badRequest", "server/user_data")
    assert text[:40] not in message and "sekrit" not in message
    assert counts(compute_service) == before
    assert f"sekrit-{SUFFIX}" not in compute_service.log_text()
    assert text[:40] not in compute_service.log_text()


def test_body_over_the_limit_is_413(compute_service: Service, member: httpx.Client, refs: dict[str, str]) -> None:
    before = counts(compute_service)
    r = member.post("/compute/v2.1/servers", json=body(refs, metadata={f"k{i}": "v" * 255 for i in range(500)}))
    assert_fault(r, 413, "overLimit")
    assert counts(compute_service) == before


def test_reader_cannot_create(compute_service: Service, refs: dict[str, str]) -> None:
    reader = f"bad-reader-{SUFFIX}"
    compute_service.user(reader, MEMBER, "reader")
    client = compute_service.http(compute_service.token(reader, project=MEMBER), "2.79")
    before = counts(compute_service)
    r = client.post("/compute/v2.1/servers", json=body(refs))
    assert_fault(r, 403, "forbidden", "os_compute_api:servers:create")
    assert counts(compute_service) == before
    client.close()


def test_no_token_and_revoked_token(compute_service: Service, refs: dict[str, str]) -> None:
    before = counts(compute_service)
    anonymous = compute_service.http(None, "2.79")
    assert_fault(anonymous.post("/compute/v2.1/servers", json=body(refs)), 401, "unauthorized")
    assert_fault(anonymous.get("/compute/v2.1/servers"), 401, "unauthorized")
    forged = compute_service.http("gAAAAA" + secrets.token_urlsafe(40), "2.79")
    assert_fault(forged.post("/compute/v2.1/servers", json=body(refs)), 401, "unauthorized")
    token = compute_service.token(MEMBER, project=MEMBER)
    r = httpx.delete(f"{compute_service.url}/identity/v3/auth/tokens",
                     headers={"X-Auth-Token": token, "X-Subject-Token": token}, timeout=30)
    assert r.status_code == 204, r.text
    revoked = compute_service.http(token, "2.79")
    assert_fault(revoked.post("/compute/v2.1/servers", json=body(refs)), 401, "unauthorized")
    assert_fault(revoked.get("/compute/v2.1/servers/detail"), 401, "unauthorized")
    assert counts(compute_service) == before
    for c in (anonymous, forged, revoked):
        c.close()


def test_expired_token(tmp_path: Path) -> None:
    """A second service whose tokens last 15 s (the minimum is 10): one issued, used, then refused once expired."""
    svc = make_service(tmp_path)
    (svc.state / "kvmfleet.yml").write_text("api:\n  token_expiration: 15\n")
    svc.start()
    try:
        token = svc.token()
        client = svc.http(token, "2.79")
        assert client.get("/compute/v2.1/servers").status_code == 200
        time.sleep(17)
        before = counts(svc)
        assert_fault(client.get("/compute/v2.1/servers"), 401, "unauthorized")
        assert_fault(client.post("/compute/v2.1/servers", json={"server": {"name": "x", "flavorRef": "1",
                                                                           "imageRef": str(uuid.uuid4())}}),
                     401, "unauthorized")
        assert counts(svc) == before
        client.close()
    finally:
        svc.stop()


def test_nothing_reached_a_host(compute_service: Service, lab_inventory: Path, domains_before: set[str]) -> None:
    """After every refused request of this module, the lab's hosts hold exactly the domains they held before."""
    assert query(compute_service, "SELECT uuid FROM instances WHERE name = ?", f"bad-vm-{SUFFIX}") == []
    assert domains_everywhere(compute_service, lab_inventory) == domains_before
