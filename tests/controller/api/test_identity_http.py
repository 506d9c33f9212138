"""Identity by plain HTTP against a real `kvmfleet serve`: Keystone's documents, token bodies and rules,
expiry, revocation, restarts, policy, and bad input."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

import httpx
import pytest
from kvmfleet.store import open_store
from kvmfleet.store.models import Token, User
from sqlalchemy import select, update

KEYSTONE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
AUTH_REQUIRED = {"error": {"code": 401, "title": "Unauthorized",
                           "message": "The request you have made requires authentication."}}


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def password_auth(user: str, password: str, scope: Any = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def project_scope(name: str) -> dict[str, Any]:
    return {"project": {"name": name, "domain": {"name": "Default"}}}


def issue(svc, body: dict[str, Any], query: str = "") -> httpx.Response:
    return httpx.post(f"{svc.url}/identity/v3/auth/tokens{query}", json=body, timeout=30)


def keystone_time(value: str) -> dt.datetime:
    assert KEYSTONE_TIME.match(value), value
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def store_of(svc):
    return open_store(f"sqlite:///{svc.state / 'kvmfleet.db'}")


def test_version_documents(service):
    r = httpx.get(f"{service.url}/identity", timeout=30)
    assert r.status_code == 300 and r.headers["location"] == f"{service.url}/identity/v3/"
    assert r.headers["x-openstack-request-id"].startswith("req-")
    (v3,) = r.json()["versions"]["values"]
    assert v3["id"] == "v3.14" and v3["status"] == "stable"
    assert v3["links"] == [{"rel": "self", "href": f"{service.url}/identity/v3/"}]
    assert v3["media-types"] == [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    for path in ("/identity/v3", "/identity/v3/"):
        r = httpx.get(service.url + path, timeout=30)
        assert r.status_code == 200 and r.json() == {"version": v3}


def test_project_token_body(service):
    r = issue(service, password_auth("admin", service.admin_password, project_scope("admin")))
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    body = r.json()["token"]
    assert token not in r.text
    assert set(body) == {"methods", "user", "audit_ids", "expires_at", "issued_at", "project", "is_domain", "roles",
                         "catalog"}
    assert body["methods"] == ["password"] and body["is_domain"] is False and len(body["audit_ids"]) == 1
    assert body["user"]["name"] == "admin" and body["user"]["domain"] == {"id": "default", "name": "Default"}
    assert body["user"]["password_expires_at"] is None
    assert body["project"]["name"] == "admin" and body["project"]["domain"] == {"id": "default", "name": "Default"}
    assert [x["name"] for x in body["roles"]] == ["admin", "manager", "member", "reader"]  # implied, as Keystone
    assert keystone_time(body["expires_at"]) - keystone_time(body["issued_at"]) == dt.timedelta(seconds=3600)
    services = {c["type"]: c for c in body["catalog"]}
    assert set(services) == {"identity", "compute", "image", "network", "block-storage", "volumev3"}
    for entry in services["compute"]["endpoints"]:
        assert set(entry) == {"id", "interface", "region", "region_id", "url"}
        assert entry["url"] == f"{service.url}/compute/v2.1" and entry["region_id"] == "RegionOne"
    r = issue(service, password_auth("admin", service.admin_password, project_scope("admin")), "?nocatalog")
    assert r.status_code == 201 and "catalog" not in r.json()["token"]


def test_validate_check_and_revoke_subject_tokens(service):
    member = service.user(unique("idt-val"), unique("idt-valp"), "member")
    admin_token = service.token()
    own = service.token(member.name, project=member.project)
    other = service.token(member.name, project=member.project)
    with service.http(admin_token) as http:
        r = http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": own})
        assert r.status_code == 200 and r.headers["X-Subject-Token"] == own
        assert r.json()["token"]["user"]["name"] == member.name
        assert r.json()["token"]["roles"] == [{"id": r.json()["token"]["roles"][0]["id"], "name": "member"},
                                              {"id": r.json()["token"]["roles"][1]["id"], "name": "reader"}]
        assert http.head("/identity/v3/auth/tokens", headers={"X-Subject-Token": own}).status_code == 200
        missing = http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": "not-a-token"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == 404
        assert "not-a-token" not in missing.text
    with service.http(own) as http:
        assert http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": other}).status_code == 200
        refused = http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": admin_token})
        assert refused.status_code == 403 and refused.json()["error"]["title"] == "Forbidden"
        assert http.delete("/identity/v3/auth/tokens", headers={"X-Subject-Token": other}).status_code == 204
    with service.http(other) as http:
        r = http.get("/identity/v3/auth/projects")
    assert r.status_code == 401 and r.json() == AUTH_REQUIRED
    assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")
    with service.http(admin_token) as http:
        assert http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": other}).status_code == 404
        assert http.delete("/identity/v3/auth/tokens", headers={"X-Subject-Token": other}).status_code == 404
    svc_user = service.user(unique("idt-svc"), unique("idt-svcp"), "service")
    with service.http(service.token(svc_user.name, project=svc_user.project)) as http:  # Nova, Glance... validate
        assert http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": own}).status_code == 200


def test_expired_token_is_401(service):
    token = service.token()
    with service.http(token) as http:
        assert http.get("/identity/v3/auth/projects").status_code == 200
    store = store_of(service)
    try:
        from kvmfleet.identity.tokens import token_hash

        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        store.run_in_transaction(lambda s: s.execute(
            update(Token).where(Token.id_hash == token_hash(token)).values(expires_at=past)))
    finally:
        store.dispose()
    with service.http(token) as http:
        r = http.get("/identity/v3/auth/projects")
    assert r.status_code == 401 and r.json() == AUTH_REQUIRED
    with service.http(token) as http:
        assert http.get("/compute/v2.1/servers").status_code == 401


def test_unscoped_token_and_rescoping(service):
    member = service.user(unique("idt-scope"), unique("idt-scopep"), "reader")
    r = issue(service, password_auth(member.name, member.password, "unscoped"))
    assert r.status_code == 201
    unscoped, body = r.headers["X-Subject-Token"], r.json()["token"]
    assert {"project", "roles", "catalog", "domain"}.isdisjoint(body)
    with service.http(unscoped) as http:
        projects = http.get("/identity/v3/auth/projects").json()["projects"]
        assert [p["name"] for p in projects] == [member.project]
        assert http.get("/identity/v3/auth/catalog").status_code == 403
    r = issue(service, {"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
                                 "scope": {"project": {"id": projects[0]["id"]}}}})
    assert r.status_code == 201, r.text
    scoped = r.json()["token"]
    assert scoped["methods"] == ["token", "password"] and scoped["project"]["name"] == member.project
    assert scoped["audit_ids"][1] == body["audit_ids"][0] and scoped["expires_at"] <= body["expires_at"]
    assert [x["name"] for x in scoped["roles"]] == ["reader"]
    with service.http(r.headers["X-Subject-Token"]) as http:
        cat = http.get("/identity/v3/auth/catalog").json()["catalog"]
        assert {c["type"] for c in cat} == {"identity", "compute", "image", "network", "block-storage", "volumev3"}
    # no scope asked: the default project, as Keystone
    r = issue(service, password_auth(member.name, member.password))
    assert r.status_code == 201 and r.json()["token"]["project"]["name"] == member.project
    # a project the user has no role on, an unknown one, a system scope: the one 401
    for scope in (project_scope("admin"), project_scope("no-such-project"), {"system": {"all": True}}):
        r = issue(service, password_auth(member.name, member.password, scope))
        assert r.status_code == 401 and r.json() == AUTH_REQUIRED


def test_wrong_credentials_are_one_401(service):
    for body in (password_auth("admin", "wrong-password"), password_auth("no-such-user", "x"),
                 {"auth": {"identity": {"methods": ["token"], "token": {"id": "forged"}}}},
                 {"auth": {"identity": {"methods": ["totp"], "totp": {}}}}):
        r = issue(service, body)
        assert r.status_code == 401 and r.json() == AUTH_REQUIRED, (body, r.text)


def test_restart_accepts_only_what_it_issued(service_factory):
    svc = service_factory({"api": {"token_expiration": 120}})
    kept = svc.token()
    revoked = svc.token()
    with svc.http(kept) as http:
        body = http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": kept}).json()["token"]
        assert keystone_time(body["expires_at"]) - keystone_time(body["issued_at"]) == dt.timedelta(seconds=120)
        assert http.delete("/identity/v3/auth/tokens", headers={"X-Subject-Token": revoked}).status_code == 204
    svc.restart()
    forged = secrets.token_urlsafe(32)  # the shape of a real one
    with svc.http(kept) as http:
        assert http.get("/identity/v3/auth/projects").status_code == 200
    for token in (forged, revoked):
        with svc.http(token) as http:
            r = http.get("/identity/v3/auth/projects")
        assert r.status_code == 401 and r.json() == AUTH_REQUIRED


def test_member_policy(service):
    member = service.user(unique("idt-pol"), unique("idt-polp"), "member")
    token = service.token(member.name, project=member.project)
    with service.http(service.token()) as http:
        admin_id = http.get("/identity/v3/users", params={"name": "admin"}).json()["users"][0]["id"]
    with service.http(token) as http:
        me = http.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token}).json()["token"]
        uid, pid = me["user"]["id"], me["project"]["id"]
        r = http.post("/identity/v3/users", json={"user": {"name": unique("idt-evil"), "password": "x"}})
        assert r.status_code == 403 and r.json() == {"error": {
            "code": 403, "title": "Forbidden",
            "message": "You are not authorized to perform the requested action: identity:create_user."}}
        assert http.get(f"/identity/v3/users/{uid}").json()["user"]["name"] == member.name
        assert http.get(f"/identity/v3/users/{admin_id}").status_code == 403
        assert [p["id"] for p in http.get(f"/identity/v3/users/{uid}/projects").json()["projects"]] == [pid]
        assert http.get(f"/identity/v3/users/{admin_id}/projects").status_code == 403
        assert http.get(f"/identity/v3/projects/{pid}").json()["project"]["name"] == member.project
        assert http.get("/identity/v3/domains/default").json()["domain"]["name"] == "Default"
        for method, path in (("GET", "/identity/v3/projects"), ("GET", "/identity/v3/role_assignments"),
                             ("GET", "/identity/v3/roles"), ("POST", "/identity/v3/projects"),
                             ("PUT", f"/identity/v3/projects/{pid}/users/{uid}/roles/anything"),
                             ("DELETE", f"/identity/v3/users/{admin_id}"), ("GET", "/identity/v3/endpoints")):
            r = http.request(method, path, json={"project": {"name": "x"}} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert http.get("/identity/v3/regions").status_code == 200


def test_grants_and_role_assignments(service):
    admin = service.token()
    with service.http(admin) as http:
        pid = http.post("/identity/v3/projects", json={"project": {"name": unique("idt-gp")}}).json()["project"]["id"]
        uid = http.post("/identity/v3/users", json={"user": {"name": unique("idt-gu"), "password": "gu-pw"}}
                        ).json()["user"]["id"]
        roles = {r["name"]: r["id"] for r in http.get("/identity/v3/roles").json()["roles"]}
        grant = f"/identity/v3/projects/{pid}/users/{uid}/roles/{roles['member']}"
        assert http.head(grant).status_code == 404
        assert http.put(grant).status_code == 204
        assert http.put(grant).status_code == 204  # again: no-op
        assert http.head(grant).status_code == 204 and http.get(grant).status_code == 204
        listed = http.get(f"/identity/v3/projects/{pid}/users/{uid}/roles").json()["roles"]
        assert [r["name"] for r in listed] == ["member"]
        direct = http.get("/identity/v3/role_assignments", params={"user.id": uid}).json()["role_assignments"]
        assert direct == [{"role": {"id": roles["member"]}, "user": {"id": uid}, "scope": {"project": {"id": pid}},
                           "links": {"assignment": f"{service.url}{grant}"}}]
        eff = http.get(f"/identity/v3/role_assignments?scope.project.id={pid}&effective&include_names=True"
                       ).json()["role_assignments"]
        assert sorted(a["role"]["name"] for a in eff) == ["member", "reader"]
        assert all(a["user"]["domain"] == {"id": "default", "name": "Default"} for a in eff)
        only = http.get("/identity/v3/role_assignments", params={"role.id": roles["reader"], "user.id": uid})
        assert only.json()["role_assignments"] == []
        dom = f"/identity/v3/domains/default/users/{uid}/roles/{roles['reader']}"
        assert http.put(dom).status_code == 204
        scopes = http.get("/identity/v3/role_assignments", params={"user.id": uid}).json()["role_assignments"]
        assert {next(iter(a["scope"])) for a in scopes} == {"project", "domain"}
        assert http.delete(grant).status_code == 204 and http.delete(grant).status_code == 404
        assert http.delete(dom).status_code == 204
        assert http.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/no-such-role").status_code == 404
        assert http.put(f"/identity/v3/projects/no-such/users/{uid}/roles/{roles['member']}").status_code == 404
        assert http.delete(f"/identity/v3/users/{uid}").status_code == 204
        assert http.delete(f"/identity/v3/projects/{pid}").status_code == 204


def test_own_password_change(service):
    admin = service.token()
    name = unique("idt-pw")
    with service.http(admin) as http:
        pid = http.post("/identity/v3/projects", json={"project": {"name": unique("idt-pwp")}}).json()["project"]
        uid = http.post("/identity/v3/users", json={"user": {"name": name, "password": "first-pw",
                                                             "default_project_id": pid["id"]}}).json()["user"]["id"]
        member = http.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
        http.put(f"/identity/v3/projects/{pid['id']}/users/{uid}/roles/{member}")
    old = issue(service, password_auth(name, "first-pw")).headers["X-Subject-Token"]
    wrong = httpx.post(f"{service.url}/identity/v3/users/{uid}/password", timeout=30,
                       json={"user": {"original_password": "nope", "password": "second-pw"}})
    assert wrong.status_code == 401
    ok = httpx.post(f"{service.url}/identity/v3/users/{uid}/password", timeout=30,
                    json={"user": {"original_password": "first-pw", "password": "second-pw"}})
    assert ok.status_code == 204
    with service.http(old) as http:
        assert http.get("/identity/v3/auth/projects").status_code == 401  # revoked with the old password
    assert issue(service, password_auth(name, "first-pw")).status_code == 401
    assert issue(service, password_auth(name, "second-pw")).status_code == 201


def test_domains(service):
    with service.http(service.token()) as http:
        name = unique("IdtDom")
        d = http.post("/identity/v3/domains", json={"domain": {"name": name, "description": "d"}})
        assert d.status_code == 201
        dom = d.json()["domain"]
        assert dom["enabled"] is True and dom["links"]["self"] == f"{service.url}/identity/v3/domains/{dom['id']}"
        assert http.post("/identity/v3/domains", json={"domain": {"name": name.lower()}}).status_code == 409
        assert [x["id"] for x in http.get("/identity/v3/domains", params={"name": name}).json()["domains"]] == [
            dom["id"]]
        refused = http.delete(f"/identity/v3/domains/{dom['id']}")
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Cannot delete a domain that is enabled, please disable it first."
        assert http.delete("/identity/v3/domains/default").status_code == 403
        user = http.post("/identity/v3/users", json={"user": {"name": "u", "domain_id": dom["id"], "password": "p"}})
        assert user.status_code == 201 and user.json()["user"]["domain_id"] == dom["id"]
        assert http.patch(f"/identity/v3/domains/{dom['id']}", json={"domain": {"enabled": False}}
                          ).json()["domain"]["enabled"] is False
        assert http.delete(f"/identity/v3/domains/{dom['id']}").status_code == 204
        assert http.get(f"/identity/v3/domains/{dom['id']}").status_code == 404
        assert http.get(f"/identity/v3/users/{user.json()['user']['id']}").status_code == 404  # went with it


@pytest.mark.parametrize("method,path,body,status", [
    ("POST", "/identity/v3/projects", b"{not json", 400),
    ("POST", "/identity/v3/projects", {"project": {"name": "idt-x", "colour": "red"}}, 400),
    ("POST", "/identity/v3/projects", {"project": {"name": 42}}, 400),
    ("POST", "/identity/v3/projects", {"project": {"description": "no name"}}, 400),
    ("POST", "/identity/v3/projects", {"project": {"name": "idt-x", "enabled": "yes"}}, 400),
    ("POST", "/identity/v3/projects", {"project": {"name": "idt-x", "domain_id": "no-such-domain"}}, 404),
    ("POST", "/identity/v3/projects", {"project": {"name": "admin"}}, 409),
    ("POST", "/identity/v3/projects", {"project": {"name": "idt-x", "parent_id": "elsewhere"}}, 400),
    ("POST", "/identity/v3/users", {"user": {"name": "admin", "password": "x"}}, 409),
    ("POST", "/identity/v3/users", {"user": {"name": "idt-y", "password": ["x"]}}, 400),
    ("POST", "/identity/v3/users", {"user": {"name": "idt-y", "default_project_id": "no-such"}}, 404),
    ("POST", "/identity/v3/users", {"users": {"name": "idt-y"}}, 400),
    ("POST", "/identity/v3/roles", {"role": {"name": "admin"}}, 409),
    ("POST", "/identity/v3/roles", {"role": {}}, 400),
    ("POST", "/identity/v3/domains", {"domain": {"name": "Default"}}, 409),
    ("PATCH", "/identity/v3/projects/no-such", {"project": {"name": "idt-z"}}, 404),
    ("PATCH", "/identity/v3/users/no-such", {"user": {"enabled": False}}, 404),
    ("GET", "/identity/v3/roles/no-such", None, 404),
    ("DELETE", "/identity/v3/domains/no-such", None, 404),
    ("POST", "/identity/v3/auth/tokens", {"auth": {"identity": {"methods": ["password"]}, "extra": 1}}, 400),
    ("POST", "/identity/v3/auth/tokens", {"auth": {"identity": {"methods": "password"}}}, 400),
    ("POST", "/identity/v3/auth/tokens", {}, 400),
])
def test_bad_input(service, method, path, body, status):
    with service.http(service.token()) as http:
        kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = http.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["message"] and set(err) == {"code", "title", "message"}


def test_passwords_are_bcrypt_and_never_logged(service):
    name, password = unique("idt-secret"), "Very-Secret-" + secrets.token_hex(8)
    with service.http(service.token()) as http:
        assert http.post("/identity/v3/users", json={"user": {"name": name, "password": password}}).status_code == 201
        assert http.post("/identity/v3/users", json={"user": {"name": name, "password": password}}).status_code == 409
        bad = http.post("/identity/v3/users", json={"user": {"name": name, "password": password, "x": 1}})
        assert bad.status_code == 400 and password not in bad.text
    assert issue(service, password_auth(name, password + "-wrong")).status_code == 401
    store = store_of(service)
    try:
        with store.transaction() as s:
            stored = s.scalars(select(User.password_hash).where(User.name == name)).one()
            hashes = list(s.scalars(select(User.password_hash)))
    finally:
        store.dispose()
    assert stored.startswith("$2b$12$") and all(h is None or h.startswith("$2b$") for h in hashes)
    assert password not in (service.state / "kvmfleet.db").read_bytes().decode("latin-1")
    logs = "".join(p.read_text(errors="replace") for p in [*service.state.glob("logs/*"),
                                                             service.state / "serve-stdout.log"] if p.is_file())
    assert logs and password not in logs and service.admin_password not in logs
