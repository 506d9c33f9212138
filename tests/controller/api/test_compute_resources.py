"""The compute API's resources other than servers, against a real `kvmfleet serve`: version documents,
flavors and extra specs, key pairs, server groups, quota sets and limits. Driven by the real `openstack`
client and by plain HTTP for the exact key sets of each microversion (Nova's response schemas); tenancy
(another user's key pair, another project's server group: 404) and policy (admin-only paths: 403);
bad input (400) and duplicates (409)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
from typing import Any

import httpx
import pytest
from conftest import Service
from conftest_resources import V, call, db, fault, make_users, project_id

SUFFIX = secrets.token_hex(3)
PA, PB = f"res-pa-{SUFFIX}", f"res-pb-{SUFFIX}"
ALICE, BOB, READER = f"res-alice-{SUFFIX}", f"res-bob-{SUFFIX}", f"res-reader-{SUFFIX}"


@pytest.fixture(scope="module")
def users(service: Service) -> dict[str, str]:
    return make_users(service, PA, PB, ALICE, BOB, READER)


# -- version documents ----------------------------------------------------------------------------------


def test_version_documents_need_no_token(service: Service) -> None:
    for path in ("/compute", "/compute/"):
        r = httpx.get(service.url + path, timeout=30)
        assert r.status_code == 200, r.text
        versions = {v["id"]: v for v in r.json()["versions"]}
        assert set(versions) == {"v2.0", "v2.1"}
        for v in versions.values():
            assert set(v) == {"id", "status", "version", "min_version", "updated", "links"}
        v21 = versions["v2.1"]
        assert (v21["status"], v21["version"], v21["min_version"]) == ("CURRENT", "2.79", "2.1")
        assert v21["links"] == [{"rel": "self", "href": f"{service.url}/compute/v2.1/"}]
        assert versions["v2.0"]["status"] == "DEPRECATED"
    for path in ("/compute/v2.1", "/compute/v2.1/"):
        r = httpx.get(service.url + path, timeout=30)
        assert r.status_code == 200, r.text
        version = r.json()["version"]
        assert set(version) == {"id", "status", "version", "min_version", "updated", "links", "media-types"}
        assert (version["id"], version["version"], version["min_version"]) == ("v2.1", "2.79", "2.1")
        assert version["links"][0] == {"rel": "self", "href": f"{service.url}/compute/v2.1/"}
        assert version["media-types"] == [{"base": "application/json",
                                           "type": "application/vnd.openstack.compute+json;version=2.1"}]


# -- flavors --------------------------------------------------------------------------------------------

FLAVOR_BASIC = {"id", "name", "links"}
FLAVOR_21 = {"id", "name", "ram", "disk", "swap", "OS-FLV-EXT-DATA:ephemeral", "OS-FLV-DISABLED:disabled", "vcpus",
             "os-flavor-access:is_public", "rxtx_factor", "links"}


def test_flavors_with_the_openstack_client(service: Service, users: dict[str, Any]) -> None:
    name = f"res.f1-{SUFFIX}"
    made = service.openstack("flavor", "create", "--vcpus", "2", "--ram", "256", "--disk", "1", "--swap", "64",
                             "--property", "hw:cpu_policy=shared", "--description", "two cpus", name, as_json=True)
    assert (made["vcpus"], made["ram"], made["disk"], made["swap"]) == (2, 256, 1, 64)
    assert made["properties"] == {"hw:cpu_policy": "shared"} and made["description"] == "two cpus"
    listed = {f["Name"]: f for f in service.openstack("flavor", "list", as_json=True)}
    assert listed[name]["RAM"] == 256 and listed[name]["VCPUs"] == 2
    service.openstack("flavor", "set", "--property", "quota:disk_read_bytes_sec=1000", name)
    shown = service.openstack("flavor", "show", name, as_json=True)
    assert shown["properties"] == {"hw:cpu_policy": "shared", "quota:disk_read_bytes_sec": "1000"}
    service.openstack("flavor", "unset", "--property", "hw:cpu_policy", name)
    assert service.openstack("flavor", "show", made["id"], as_json=True)["properties"] == {
        "quota:disk_read_bytes_sec": "1000"}
    dup = service.openstack("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "0", name, check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    member = service.openstack("flavor", "create", "--vcpus", "1", "--ram", "64", f"res.nope-{SUFFIX}", cloud=ALICE,
                               check=False)
    assert member.returncode != 0 and "403" in member.stderr
    service.openstack("flavor", "delete", name)
    assert name not in {f["Name"] for f in service.openstack("flavor", "list", as_json=True)}
    assert db(service, "SELECT count(*) FROM flavors WHERE name = ?", name) == [(0,)]


def test_flavor_views_per_microversion(service: Service, users: dict[str, Any]) -> None:
    admin = users["admin"]
    r = call(service, admin, "POST", f"{V}/flavors", "2.55", json={"flavor": {
        "name": f"res.f2-{SUFFIX}", "ram": "128", "vcpus": 1, "disk": 1, "id": f"res-f2-{SUFFIX}",
        "description": "tiny one"}})
    assert r.status_code == 200, r.text
    fid = r.json()["flavor"]["id"]
    assert fid == f"res-f2-{SUFFIX}"
    call(service, admin, "POST", f"{V}/flavors/{fid}/os-extra_specs", json={"extra_specs": {"k": "v", "n": 5}})
    expected = {"2.1": FLAVOR_21, "2.55": FLAVOR_21 | {"description"}, "2.61": FLAVOR_21 | {"description", "extra_specs"},
                "2.75": FLAVOR_21 | {"description", "extra_specs"}}
    for version, keys in expected.items():
        shown = call(service, users["alice"], "GET", f"{V}/flavors/{fid}", version).json()["flavor"]
        assert set(shown) == keys, version
        assert shown["swap"] == (0 if version == "2.75" else "")
        assert shown["rxtx_factor"] == 1.0 and shown["OS-FLV-DISABLED:disabled"] is False
        assert shown["links"] == [{"rel": "self", "href": f"{service.url}/compute/v2.1/flavors/{fid}"},
                                  {"rel": "bookmark", "href": f"{service.url}/compute/flavors/{fid}"}]
        if "extra_specs" in keys:
            assert shown["extra_specs"] == {"k": "v", "n": "5"}
        detail = call(service, users["alice"], "GET", f"{V}/flavors/detail", version).json()["flavors"]
        assert all(set(f) == keys for f in detail)
        index = call(service, users["alice"], "GET", f"{V}/flavors", version).json()
        assert set(index) == {"flavors"}
        assert all(set(f) == (FLAVOR_BASIC | ({"description"} if version != "2.1" else set()))
                   for f in index["flavors"])
    # description updates from 2.55 only (admin)
    r = call(service, admin, "PUT", f"{V}/flavors/{fid}", "2.55", json={"flavor": {"description": "renamed"}})
    assert r.status_code == 200 and r.json()["flavor"]["description"] == "renamed"
    fault(call(service, admin, "PUT", f"{V}/flavors/{fid}", "2.54", json={"flavor": {"description": "x"}}),
          404, "itemNotFound")
    fault(call(service, users["alice"], "PUT", f"{V}/flavors/{fid}", "2.55", json={"flavor": {"description": "x"}}),
          403, "forbidden")
    assert call(service, admin, "DELETE", f"{V}/flavors/{fid}").status_code == 202
    fault(call(service, admin, "GET", f"{V}/flavors/{fid}"), 404, "itemNotFound")


def test_flavor_paging_filters_and_visibility(service: Service, users: dict[str, Any]) -> None:
    admin, alice = users["admin"], users["alice"]
    ids = []
    for i, (ram, disk) in enumerate(((64, 0), (96, 2), (160, 5))):
        r = call(service, admin, "POST", f"{V}/flavors", json={"flavor": {
            "name": f"res.p{i}-{SUFFIX}", "ram": ram, "vcpus": 1, "disk": disk, "id": f"res-p{i}-{SUFFIX}"}})
        assert r.status_code == 200, r.text
        ids.append(r.json()["flavor"]["id"])
    private = call(service, admin, "POST", f"{V}/flavors", json={"flavor": {
        "name": f"res.priv-{SUFFIX}", "ram": 64, "vcpus": 1, "disk": 0, "os-flavor-access:is_public": False}})
    assert private.status_code == 200 and private.json()["flavor"]["os-flavor-access:is_public"] is False
    priv_id = private.json()["flavor"]["id"]
    try:
        ours = sorted(ids)
        first = call(service, alice, "GET", f"{V}/flavors", params={"limit": 1, "marker": ours[0]}).json()
        assert len(first["flavors"]) == 1
        nxt = first["flavors_links"][0]
        assert nxt["rel"] == "next" and f"marker={first['flavors'][0]['id']}" in nxt["href"]
        assert "limit=1" in nxt["href"]
        follow = httpx.get(nxt["href"], headers={"X-Auth-Token": alice}, timeout=30).json()
        assert follow["flavors"][0]["id"] > first["flavors"][0]["id"]
        fault(call(service, alice, "GET", f"{V}/flavors", params={"marker": "no-such-flavor"}), 400, "badRequest")
        fault(call(service, alice, "GET", f"{V}/flavors", params={"limit": "-1"}), 400, "badRequest")
        big = {f["id"] for f in call(service, alice, "GET", f"{V}/flavors/detail", params={"minRam": 100}).json()["flavors"]}
        assert ids[2] in big and ids[0] not in big and ids[1] not in big
        disky = {f["id"] for f in call(service, alice, "GET", f"{V}/flavors", params={"minDisk": 2}).json()["flavors"]}
        assert {ids[1], ids[2]} <= disky and ids[0] not in disky
        assert "Invalid minRam filter" in fault(call(service, alice, "GET", f"{V}/flavors", params={"minRam": "x"}),
                                                400, "badRequest")
        by_desc = [f["id"] for f in call(service, alice, "GET", f"{V}/flavors/detail",
                                         params={"sort_key": "memory_mb", "sort_dir": "desc"}).json()["flavors"]]
        assert by_desc.index(ids[2]) < by_desc.index(ids[1]) < by_desc.index(ids[0])
        fault(call(service, alice, "GET", f"{V}/flavors", params={"sort_key": "bogus"}), 400, "badRequest")
        # private flavors: only admins see them, and only when asking (is_public=false or none)
        seen = {f["id"] for f in call(service, alice, "GET", f"{V}/flavors", params={"is_public": "none"}).json()["flavors"]}
        assert priv_id not in seen
        assert priv_id not in {f["id"] for f in call(service, admin, "GET", f"{V}/flavors").json()["flavors"]}
        for value in ("none", "false"):
            listed = call(service, admin, "GET", f"{V}/flavors", params={"is_public": value}).json()["flavors"]
            assert priv_id in {f["id"] for f in listed}
        fault(call(service, admin, "GET", f"{V}/flavors", params={"is_public": "maybe"}), 400, "badRequest")
        # unknown query parameters: ignored before 2.75, refused from 2.75
        assert call(service, alice, "GET", f"{V}/flavors", "2.74", params={"color": "red"}).status_code == 200
        fault(call(service, alice, "GET", f"{V}/flavors", "2.75", params={"color": "red"}), 400, "badRequest")
    finally:
        for fid in [*ids, priv_id]:
            call(service, admin, "DELETE", f"{V}/flavors/{fid}")


def test_flavor_bad_input_and_extra_specs(service: Service, users: dict[str, Any]) -> None:
    admin, alice = users["admin"], users["alice"]
    base = {"name": f"res.bad-{SUFFIX}", "ram": 64, "vcpus": 1, "disk": 0}
    for body in ({"flavor": {**base, "color": "red"}}, {"flavor": {**base, "ram": "lots"}},
                 {"flavor": {**base, "ram": "99999999999"}}, {"flavor": {**base, "vcpus": 0}},
                 {"flavor": {**base, "name": " padded"}}, {"flavor": {**base, "id": "a/b"}},
                 {"flavor": {k: v for k, v in base.items() if k != "disk"}}, {"flavour": base}):
        fault(call(service, admin, "POST", f"{V}/flavors", json=body), 400, "badRequest")
    r = call(service, admin, "POST", f"{V}/flavors", content=b'{"flavor": ', headers={"Content-Type": "application/json"})
    fault(r, 400, "badRequest")
    assert db(service, "SELECT count(*) FROM flavors WHERE name = ?", base["name"]) == [(0,)]
    fid = call(service, admin, "POST", f"{V}/flavors", json={"flavor": base}).json()["flavor"]["id"]
    try:
        dup_id = call(service, admin, "POST", f"{V}/flavors", json={"flavor": {**base, "name": f"o-{SUFFIX}", "id": fid}})
        assert "already exists" in fault(dup_id, 409, "conflictingRequest")
        specs = f"{V}/flavors/{fid}/os-extra_specs"
        r = call(service, admin, "POST", specs, json={"extra_specs": {"hw:mem_page_size": "large", "n": 1}})
        assert r.status_code == 200 and r.json() == {"extra_specs": {"hw:mem_page_size": "large", "n": 1}}
        assert call(service, alice, "GET", specs).json() == {"extra_specs": {"hw:mem_page_size": "large", "n": "1"}}
        assert call(service, alice, "GET", f"{specs}/n").json() == {"n": "1"}
        fault(call(service, alice, "POST", specs, json={"extra_specs": {"a": "b"}}), 403, "forbidden")
        fault(call(service, alice, "DELETE", f"{specs}/n"), 403, "forbidden")
        r = call(service, admin, "PUT", f"{specs}/n", json={"n": "2"})
        assert r.status_code == 200 and r.json() == {"n": "2"}
        assert "mismatch" in fault(call(service, admin, "PUT", f"{specs}/n", json={"m": "2"}), 400, "badRequest")
        fault(call(service, admin, "PUT", f"{specs}/n", json={"n": "2", "m": "3"}), 400, "badRequest")
        fault(call(service, admin, "POST", specs, json={"extra_specs": {"bad/key": "x"}}), 400, "badRequest")
        fault(call(service, admin, "POST", specs, json={"extra_specs": {"k": "x" * 256}}), 400, "badRequest")
        assert call(service, admin, "DELETE", f"{specs}/n").status_code == 200
        fault(call(service, admin, "GET", f"{specs}/n"), 404, "itemNotFound")
        fault(call(service, admin, "DELETE", f"{specs}/n"), 404, "itemNotFound")
        fault(call(service, admin, "GET", f"{V}/flavors/nope/os-extra_specs"), 404, "itemNotFound")
    finally:
        call(service, admin, "DELETE", f"{V}/flavors/{fid}")


# -- key pairs ------------------------------------------------------------------------------------------


def md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def test_keypairs_with_the_openstack_client(service: Service, users: dict[str, Any], tmp_path: Any) -> None:
    made = service.openstack("keypair", "create", f"res-k1-{SUFFIX}", cloud=ALICE)
    assert "PRIVATE KEY-----" in made.stdout  # printed once, by the client
    private = made.stdout.strip()
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = key.with_suffix(".pub")
    imported = service.openstack("keypair", "create", "--public-key", str(pub), f"res-k2-{SUFFIX}", cloud=ALICE,
                                 as_json=True)
    expected = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(pub)], capture_output=True, text=True,
                              check=True).stdout.split()[1].removeprefix("MD5:")
    assert imported["fingerprint"] == expected
    listed = {k["Name"]: k for k in service.openstack("keypair", "list", cloud=ALICE, as_json=True)}
    assert {f"res-k1-{SUFFIX}", f"res-k2-{SUFFIX}"} <= set(listed) and listed[f"res-k2-{SUFFIX}"]["Type"] == "ssh"
    shown = service.openstack("keypair", "show", f"res-k2-{SUFFIX}", cloud=ALICE, as_json=True)
    assert shown["fingerprint"] == expected and not shown.get("private_key")
    # bob sees none of them and cannot read them
    assert not {f"res-k1-{SUFFIX}", f"res-k2-{SUFFIX}"} & {k["Name"] for k in service.openstack(
        "keypair", "list", cloud=BOB, as_json=True)}
    other = service.openstack("keypair", "show", f"res-k2-{SUFFIX}", cloud=BOB, check=False)
    assert other.returncode != 0
    dup = service.openstack("keypair", "create", "--public-key", str(pub), f"res-k2-{SUFFIX}", cloud=ALICE, check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr
    service.openstack("keypair", "delete", f"res-k1-{SUFFIX}", cloud=ALICE)
    service.openstack("keypair", "delete", f"res-k2-{SUFFIX}", cloud=ALICE)
    assert db(service, "SELECT count(*) FROM key_pairs WHERE name LIKE ?", f"res-k_-{SUFFIX}") == [(0,)]
    body = private.splitlines()[1]
    assert body not in service.log_text()


def test_keypair_generation_views_and_tenancy(service: Service, users: dict[str, Any]) -> None:
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    r = call(service, alice, "POST", f"{V}/os-keypairs", "2.1", json={"keypair": {"name": f"res-g1-{SUFFIX}"}})
    assert r.status_code == 200, r.text
    made = r.json()["keypair"]
    assert set(made) == {"name", "public_key", "fingerprint", "user_id", "private_key"}
    assert made["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert made["public_key"].startswith("ssh-rsa ") and made["fingerprint"] == md5_fingerprint(made["public_key"])
    r = call(service, alice, "POST", f"{V}/os-keypairs", "2.2", json={"keypair": {"name": f"res-x1-{SUFFIX}",
                                                                                  "type": "x509"}})
    assert r.status_code == 201, r.text
    x509 = r.json()["keypair"]
    assert x509["type"] == "x509" and x509["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert base64.b64decode(x509["private_key"])  # a PKCS#12 bundle
    # the private keys are in no table and no log
    dump = "\n".join(str(row) for row in db(service, "SELECT * FROM key_pairs"))
    assert made["private_key"].splitlines()[1] not in dump and x509["private_key"][:40] not in dump
    assert made["private_key"].splitlines()[1] not in service.log_text()
    name = f"res-g1-{SUFFIX}"
    show_21 = call(service, alice, "GET", f"{V}/os-keypairs/{name}", "2.1").json()["keypair"]
    base = {"name", "public_key", "fingerprint", "user_id", "created_at", "deleted", "deleted_at", "id", "updated_at"}
    assert set(show_21) == base and show_21["deleted"] is False and show_21["deleted_at"] is None
    assert set(call(service, alice, "GET", f"{V}/os-keypairs/{name}", "2.2").json()["keypair"]) == base | {"type"}
    listed = call(service, alice, "GET", f"{V}/os-keypairs", "2.2").json()
    assert set(listed) == {"keypairs"}
    assert all(set(k["keypair"]) == {"name", "public_key", "fingerprint", "type"} for k in listed["keypairs"])
    assert set(call(service, alice, "GET", f"{V}/os-keypairs", "2.1").json()["keypairs"][0]["keypair"]) == {
        "name", "public_key", "fingerprint"}
    page = call(service, alice, "GET", f"{V}/os-keypairs", "2.35", params={"limit": 1}).json()
    assert len(page["keypairs"]) == 1 and page["keypairs_links"][0]["rel"] == "next"
    rest = call(service, alice, "GET", f"{V}/os-keypairs", "2.35",
                params={"marker": page["keypairs"][0]["keypair"]["name"]}).json()["keypairs"]
    assert [k["keypair"]["name"] for k in rest] == [f"res-x1-{SUFFIX}"]
    # another user's key pair is a 404; naming another user needs admin (2.10)
    fault(call(service, bob, "GET", f"{V}/os-keypairs/{name}"), 404, "itemNotFound")
    fault(call(service, bob, "DELETE", f"{V}/os-keypairs/{name}"), 404, "itemNotFound")
    alice_id = made["user_id"]
    fault(call(service, bob, "GET", f"{V}/os-keypairs", "2.10", params={"user_id": alice_id}), 403, "forbidden")
    fault(call(service, bob, "POST", f"{V}/os-keypairs", "2.10", json={"keypair": {
        "name": "planted", "user_id": alice_id, "public_key": made["public_key"]}}), 403, "forbidden")
    as_admin = call(service, admin, "GET", f"{V}/os-keypairs", "2.10", params={"user_id": alice_id}).json()
    assert {k["keypair"]["name"] for k in as_admin["keypairs"]} == {name, f"res-x1-{SUFFIX}"}
    assert call(service, admin, "GET", f"{V}/os-keypairs/{name}", "2.10", params={"user_id": alice_id}).status_code == 200
    assert call(service, alice, "DELETE", f"{V}/os-keypairs/{name}", "2.1").status_code == 202
    assert call(service, admin, "DELETE", f"{V}/os-keypairs/res-x1-{SUFFIX}", "2.10",
                params={"user_id": alice_id}).status_code == 204
    assert call(service, alice, "GET", f"{V}/os-keypairs").json() == {"keypairs": []}


def test_keypair_bad_input_and_quota(service: Service, users: dict[str, Any]) -> None:
    alice, admin = users["alice"], users["admin"]
    for body in ({"keypair": {"name": "a/b"}}, {"keypair": {"name": " lead"}}, {"keypair": {"name": "k", "x": 1}},
                 {"keypair": {"name": "k", "public_key": "ssh-rsa not-base64!"}},
                 {"keypair": {"name": "k", "public_key": "hello world"}},
                 {"keypair": {"name": "k", "type": "pgp"}}, {"keypairs": {"name": "k"}}):
        fault(call(service, alice, "POST", f"{V}/os-keypairs", "2.10", json=body), 400, "badRequest")
    assert "Keypair data is invalid" in fault(call(service, alice, "POST", f"{V}/os-keypairs", json={
        "keypair": {"name": "k", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== x"}}), 400, "badRequest")
    fault(call(service, alice, "POST", f"{V}/os-keypairs", "2.2", json={
        "keypair": {"name": "k", "type": "x509", "public_key": "-----BEGIN CERTIFICATE-----\nnope"}}), 400, "badRequest")
    assert db(service, "SELECT count(*) FROM key_pairs WHERE name = 'k'") == [(0,)]
    pa = project_id(service, PA)
    r = call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", json={"quota_set": {"key_pairs": 1}})
    assert r.status_code == 200 and r.json()["quota_set"]["key_pairs"] == 1
    try:
        assert call(service, alice, "POST", f"{V}/os-keypairs", json={"keypair": {"name": f"q1-{SUFFIX}"}}).status_code == 200
        over = call(service, alice, "POST", f"{V}/os-keypairs", json={"keypair": {"name": f"q2-{SUFFIX}"}})
        assert "key_pairs" in fault(over, 403, "forbidden")
    finally:
        call(service, admin, "DELETE", f"{V}/os-quota-sets/{pa}")
        call(service, alice, "DELETE", f"{V}/os-keypairs/q1-{SUFFIX}")
    assert db(service, "SELECT count(*) FROM key_pairs WHERE name = ?", f"q2-{SUFFIX}") == [(0,)]
