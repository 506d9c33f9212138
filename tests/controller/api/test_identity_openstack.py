"""Identity through the unmodified python-openstackclient against a real `kvmfleet serve`."""

from __future__ import annotations

import secrets

import httpx


def unique(prefix: str) -> str:
    """Names that never collide with other tests sharing the session's service."""
    return f"{prefix}-{secrets.token_hex(3)}"


def test_token_issue_and_revoke(service):
    token = service.openstack("token", "issue", as_json=True)
    assert set(token) >= {"id", "expires", "project_id", "user_id"}
    with service.http(token["id"]) as http:
        assert http.get("/identity/v3/auth/projects").status_code == 200
    service.openstack("token", "revoke", token["id"])
    with service.http(token["id"]) as http:
        r = http.get("/identity/v3/auth/projects")
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "title": "Unauthorized",
                                  "message": "The request you have made requires authentication."}}


def test_catalog_and_endpoint_list(service):
    catalog = {c["Type"]: c for c in service.openstack("catalog", "list", as_json=True)}
    assert {t: catalog[t]["Name"] for t in catalog} == {"identity": "keystone", "compute": "nova", "image": "glance",
                                                        "network": "neutron", "block-storage": "cinder",
                                                        "volumev3": "cinderv3"}
    compute = {e["interface"]: e for e in catalog["compute"]["Endpoints"]}
    assert set(compute) == {"public", "internal", "admin"}
    assert compute["public"]["url"] == f"{service.url}/compute/v2.1" and compute["public"]["region"] == "RegionOne"
    endpoints = service.openstack("endpoint", "list", as_json=True)
    assert len(endpoints) == 18
    by = {(e["Service Type"], e["Interface"]): e["URL"] for e in endpoints}
    assert by[("identity", "public")] == f"{service.url}/identity"
    assert by[("image", "admin")] == f"{service.url}/image"
    assert by[("network", "internal")] == f"{service.url}/network"
    assert by[("block-storage", "public")] == by[("volumev3", "public")] == f"{service.url}/volume/v3"
    assert {s["Type"] for s in service.openstack("service", "list", as_json=True)} == set(catalog)
    assert [r["Region"] for r in service.openstack("region", "list", as_json=True)] == ["RegionOne"]


def test_domain_and_role_list(service):
    domains = service.openstack("domain", "list", as_json=True)
    assert {"ID": "default", "Name": "Default", "Enabled": True, "Description": "The default domain"} in domains
    assert {r["Name"] for r in service.openstack("role", "list", as_json=True)} >= {
        "admin", "member", "reader", "manager", "service"}


def test_project_user_role_lifecycle(service):
    project, user = unique("idt-proj"), unique("idt-user")
    created = service.openstack("project", "create", project, "--description", "made by osc", as_json=True)
    assert created["name"] == project and created["domain_id"] == "default" and created["enabled"] is True
    assert project in {p["Name"] for p in service.openstack("project", "list", as_json=True)}
    shown = service.openstack("project", "show", project, as_json=True)
    assert shown["id"] == created["id"] and shown["description"] == "made by osc"
    dup = service.openstack("project", "create", project, check=False)
    assert dup.returncode != 0 and "409" in dup.stderr

    password = secrets.token_urlsafe(12)
    made = service.openstack("user", "create", user, "--project", project, f"--password={password}", as_json=True)
    assert made["name"] == user and made["default_project_id"] == created["id"]
    assert user in {u["Name"] for u in service.openstack("user", "list", as_json=True)}
    assert service.openstack("user", "show", user, as_json=True)["id"] == made["id"]

    service.openstack("role", "add", "--user", user, "--project", project, "member")
    rows = service.openstack("role", "assignment", "list", "--names", "--project", project, as_json=True)
    assert [(r["Role"], r["User"], r["Project"]) for r in rows] == [("member", f"{user}@Default",
                                                                    f"{project}@Default")]
    service.register_user(user, password, project)
    token = service.openstack("token", "issue", cloud=user, as_json=True)
    assert token["project_id"] == created["id"] and token["user_id"] == made["id"]

    service.openstack("role", "remove", "--user", user, "--project", project, "member")
    assert service.openstack("role", "assignment", "list", "--project", project, as_json=True) == []
    service.openstack("user", "delete", user)
    service.forget_user(user)
    assert user not in {u["Name"] for u in service.openstack("user", "list", as_json=True)}
    missing = service.openstack("user", "show", user, check=False)
    assert missing.returncode != 0 and "No User found" in missing.stderr
    service.openstack("project", "delete", project)
    with service.http(service.token()) as http:
        assert http.get(f"/identity/v3/projects/{created['id']}").status_code == 404


def test_member_is_refused_admin_apis(service):
    member = service.user(unique("idt-member"), unique("idt-mproj"), "member")
    refused = service.openstack("user", "create", unique("idt-x"), "--password", "x", cloud=member.name, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
    # GET /v3/projects is refused (403); openstack then lists the user's own projects, which a member may
    listed = service.openstack("project", "list", cloud=member.name, as_json=True)
    assert [p["Name"] for p in listed] == [member.project]
    mine = service.openstack("project", "list", "--my-projects", cloud=member.name, as_json=True)
    assert [p["Name"] for p in mine] == [member.project]
    r = httpx.get(f"{service.url}/identity/v3/users", headers={"X-Auth-Token": service.token(member.name,
                                                                                             project=member.project)})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "You are not authorized to perform the requested action: identity:list_users."
