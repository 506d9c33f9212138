"""Server groups, quota sets and limits of the compute API against a real `kvmfleet serve`: the real
`openstack` client, then plain HTTP for each microversion's exact keys; tenancy (another project's group is
a 404 and never listed; a reader cannot create; quotas of another project are refused), admin-only updates,
count-based quotas (server_groups) and bad input."""

from __future__ import annotations

import secrets

import pytest
from conftest import Service
from conftest_resources import V, call, db, fault, make_users, project_id

SUFFIX = secrets.token_hex(3)
PA, PB = f"grp-pa-{SUFFIX}", f"grp-pb-{SUFFIX}"
ALICE, BOB, READER = f"grp-alice-{SUFFIX}", f"grp-bob-{SUFFIX}", f"grp-reader-{SUFFIX}"


@pytest.fixture(scope="module")
def users(service: Service) -> dict[str, str]:
    return make_users(service, PA, PB, ALICE, BOB, READER)


# -- server groups --------------------------------------------------------------------------------------

GROUP_21 = {"id", "name", "policies", "metadata", "members"}


def test_server_groups_with_the_openstack_client(service: Service, users: dict[str, str]) -> None:
    name = f"grp-anti-{SUFFIX}"
    made = service.openstack("server", "group", "create", "--policy", "anti-affinity", name, cloud=ALICE,
                             as_json=True)
    assert made["policy"] == "anti-affinity" and made["members"] == [] and made["name"] == name
    soft = service.openstack("server", "group", "create", "--policy", "anti-affinity", "--rule",
                             "max_server_per_host=2", f"grp-rule-{SUFFIX}", cloud=ALICE, as_json=True)
    assert soft["rules"] == {"max_server_per_host": 2}
    listed = {g["Name"]: g for g in service.openstack("server", "group", "list", cloud=ALICE, as_json=True)}
    assert {name, f"grp-rule-{SUFFIX}"} <= set(listed) and listed[name]["Policy"] == "anti-affinity"
    shown = service.openstack("server", "group", "show", made["id"], cloud=ALICE, as_json=True)
    assert shown["id"] == made["id"] and shown["project_id"] == project_id(service, PA)
    # bob's project sees neither; admin sees them with --all-projects
    assert not {name, f"grp-rule-{SUFFIX}"} & {g["Name"] for g in service.openstack(
        "server", "group", "list", cloud=BOB, as_json=True)}
    assert service.openstack("server", "group", "show", made["id"], cloud=BOB, check=False).returncode != 0
    everyone = {g["ID"] for g in service.openstack("server", "group", "list", "--all-projects", as_json=True)}
    assert {made["id"], soft["id"]} <= everyone
    bad = service.openstack("server", "group", "create", "--policy", "affinity", "--rule", "max_server_per_host=2",
                            f"grp-bad-{SUFFIX}", cloud=ALICE, check=False)
    assert bad.returncode != 0 and "Only anti-affinity policy supports rules" in bad.stderr
    service.openstack("server", "group", "delete", made["id"], soft["id"], cloud=ALICE)
    assert db(service, "SELECT count(*) FROM server_groups WHERE name LIKE ?", f"grp-%-{SUFFIX}") == [(0,)]


def test_server_group_views_per_microversion_and_tenancy(service: Service, users: dict[str, str]) -> None:
    alice, bob, reader, admin = users["alice"], users["bob"], users["reader"], users["admin"]
    r = call(service, alice, "POST", f"{V}/os-server-groups", "2.1", json={"server_group": {
        "name": f"grp-old-{SUFFIX}", "policies": ["affinity"]}})
    assert r.status_code == 200, r.text
    old = r.json()["server_group"]
    assert set(old) == GROUP_21 and old["policies"] == ["affinity"] and old["metadata"] == {}
    gid = old["id"]
    assert set(call(service, alice, "GET", f"{V}/os-server-groups/{gid}", "2.13").json()["server_group"]) == \
        GROUP_21 | {"project_id", "user_id"}
    new = call(service, alice, "GET", f"{V}/os-server-groups/{gid}", "2.64").json()["server_group"]
    assert set(new) == {"id", "name", "policy", "rules", "members", "project_id", "user_id"}
    assert new["policy"] == "affinity" and new["rules"] == {} and new["user_id"] == db(
        service, "SELECT user_id FROM server_groups WHERE id = ?", gid)[0][0]
    # soft policies from 2.15; policy + rules from 2.64 (and policies refused there)
    soft = {"server_group": {"name": f"grp-soft-{SUFFIX}", "policies": ["soft-affinity"]}}
    fault(call(service, alice, "POST", f"{V}/os-server-groups", "2.14", json=soft), 400, "badRequest")
    r = call(service, alice, "POST", f"{V}/os-server-groups", "2.15", json=soft)
    assert r.status_code == 200 and r.json()["server_group"]["policies"] == ["soft-affinity"]
    soft_id = r.json()["server_group"]["id"]
    fault(call(service, alice, "POST", f"{V}/os-server-groups", "2.64", json=soft), 400, "badRequest")
    r = call(service, alice, "POST", f"{V}/os-server-groups", "2.64", json={"server_group": {
        "name": f"grp-rules-{SUFFIX}", "policy": "anti-affinity", "rules": {"max_server_per_host": "3"}}})
    assert r.status_code == 200 and r.json()["server_group"]["rules"] == {"max_server_per_host": 3}
    rules_id = r.json()["server_group"]["id"]
    for bad in ({"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}},
                {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": "99999999999"}},
                {"name": "g", "policy": "anti-affinity", "rules": {"other": 1}},
                {"name": "g", "policy": "clumped"}, {"name": "g", "policy": "affinity", "extra": 1},
                {"name": "", "policy": "affinity"}, {"policy": "affinity"}):
        fault(call(service, alice, "POST", f"{V}/os-server-groups", "2.64", json={"server_group": bad}),
              400, "badRequest")
    dup = call(service, alice, "POST", f"{V}/os-server-groups", "2.64", json={"server_group": {
        "name": f"grp-rules-{SUFFIX}", "policy": "affinity"}})
    fault(dup, 409, "conflictingRequest")
    # a reader reads but cannot create or delete
    assert call(service, reader, "GET", f"{V}/os-server-groups/{gid}").status_code == 200
    fault(call(service, reader, "POST", f"{V}/os-server-groups", json={"server_group": {
        "name": f"grp-r-{SUFFIX}", "policies": ["affinity"]}}), 403, "forbidden")
    fault(call(service, reader, "DELETE", f"{V}/os-server-groups/{gid}"), 403, "forbidden")
    # another project's group: 404 on show and delete, never listed, even with all_projects
    fault(call(service, bob, "GET", f"{V}/os-server-groups/{gid}"), 404, "itemNotFound")
    fault(call(service, bob, "DELETE", f"{V}/os-server-groups/{gid}"), 404, "itemNotFound")
    for params in ({}, {"all_projects": "True"}):
        listed = call(service, bob, "GET", f"{V}/os-server-groups", params=params).json()["server_groups"]
        assert gid not in {g["id"] for g in listed}
    listed = call(service, admin, "GET", f"{V}/os-server-groups", params={"all_projects": "1"}).json()["server_groups"]
    assert {gid, soft_id, rules_id} <= {g["id"] for g in listed}
    mine = call(service, alice, "GET", f"{V}/os-server-groups", params={"limit": 1, "offset": 1}).json()
    assert len(mine["server_groups"]) == 1
    fault(call(service, alice, "GET", f"{V}/os-server-groups", "2.75", params={"sort": "x"}), 400, "badRequest")
    for group in (gid, soft_id, rules_id):
        assert call(service, alice, "DELETE", f"{V}/os-server-groups/{group}").status_code == 204
    fault(call(service, alice, "GET", f"{V}/os-server-groups/{gid}"), 404, "itemNotFound")


# -- quota sets -----------------------------------------------------------------------------------------

QUOTA_21 = {"cores", "fixed_ips", "floating_ips", "injected_file_content_bytes", "injected_file_path_bytes",
            "injected_files", "instances", "key_pairs", "metadata_items", "ram", "security_groups",
            "security_group_rules", "server_groups", "server_group_members"}
QUOTA_236 = QUOTA_21 - {"fixed_ips", "floating_ips", "security_groups", "security_group_rules"}
QUOTA_257 = QUOTA_236 - {"injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}


def test_quota_sets_with_the_openstack_client(service: Service, users: dict[str, str]) -> None:
    shown = service.openstack("quota", "show", "--compute", cloud=ALICE, as_json=True)  # the token's project
    values = {row["Resource"]: row["Limit"] for row in shown} if isinstance(shown, list) else shown
    assert values["instances"] == 10 and values["cores"] == 20 and values["ram"] == 51200
    service.openstack("quota", "set", "--instances", "7", "--cores", "9", "--server-groups", "4", PA)
    try:
        shown = service.openstack("quota", "show", "--compute", PA, as_json=True)
        values = {row["Resource"]: row["Limit"] for row in shown} if isinstance(shown, list) else shown
        assert (values["instances"], values["cores"], values["server-groups"]) == (7, 9, 4)
        refused = service.openstack("quota", "set", "--instances", "3", PA, cloud=ALICE, check=False)
        assert refused.returncode != 0
        assert db(service, "SELECT hard_limit FROM quotas WHERE project_id = ? AND resource = 'instances'",
                  project_id(service, PA)) == [(7,)]
    finally:
        call(service, users["admin"], "DELETE", f"{V}/os-quota-sets/{project_id(service, PA)}")


def test_quota_set_views_and_policy(service: Service, users: dict[str, str]) -> None:
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    pa, pb = project_id(service, PA), project_id(service, PB)
    for version, keys in (("2.1", QUOTA_21), ("2.36", QUOTA_236), ("2.57", QUOTA_257)):
        shown = call(service, alice, "GET", f"{V}/os-quota-sets/{pa}", version).json()["quota_set"]
        assert set(shown) == keys | {"id"} and shown["id"] == pa, version
        defaults = call(service, bob, "GET", f"{V}/os-quota-sets/{pa}/defaults", version).json()["quota_set"]
        assert set(defaults) == keys | {"id"}
        detail = call(service, alice, "GET", f"{V}/os-quota-sets/{pa}/detail", version).json()["quota_set"]
        assert set(detail) == keys | {"id"}
        assert all(set(detail[k]) == {"limit", "in_use", "reserved"} and detail[k]["reserved"] == 0 for k in keys)
    assert call(service, alice, "GET", f"{V}/os-quota-sets/{pa}", "2.1").json()["quota_set"]["fixed_ips"] == -1
    group = call(service, alice, "POST", f"{V}/os-server-groups", json={"server_group": {
        "name": f"grp-count-{SUFFIX}", "policies": ["affinity"]}}).json()["server_group"]["id"]
    try:
        detail = call(service, alice, "GET", f"{V}/os-quota-sets/{pa}/detail").json()["quota_set"]
        assert detail["server_groups"] == {"limit": 10, "in_use": 1, "reserved": 0}
        assert detail["instances"]["in_use"] == 0
        # another project's quotas: 403 for a member; an unknown project: 400
        fault(call(service, bob, "GET", f"{V}/os-quota-sets/{pa}"), 403, "forbidden")
        fault(call(service, bob, "GET", f"{V}/os-quota-sets/{pa}/detail"), 403, "forbidden")
        assert "not a valid project" in fault(call(service, admin, "GET", f"{V}/os-quota-sets/nope"), 400, "badRequest")
        # updates: admin only; the answer has no id; limits below what is used need force
        fault(call(service, alice, "PUT", f"{V}/os-quota-sets/{pa}", json={"quota_set": {"instances": 1}}),
              403, "forbidden")
        r = call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", "2.57", json={"quota_set": {
            "instances": "5", "ram": -1, "server_group_members": 2}})
        assert r.status_code == 200, r.text
        updated = r.json()["quota_set"]
        assert set(updated) == QUOTA_257 and (updated["instances"], updated["ram"]) == (5, -1)
        below = call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", json={"quota_set": {"server_groups": 0}})
        assert "must be greater than or equal to already used" in fault(below, 400, "badRequest")
        forced = call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", json={"quota_set": {
            "server_groups": 0, "force": True}})
        assert forced.status_code == 200 and forced.json()["quota_set"]["server_groups"] == 0
        over = call(service, alice, "POST", f"{V}/os-server-groups", json={"server_group": {
            "name": f"grp-over-{SUFFIX}", "policies": ["affinity"]}})
        assert "server_groups" in fault(over, 403, "forbidden")
        for bad in ({"quota_set": {"instances": -2}}, {"quota_set": {"instances": "many"}},
                    {"quota_set": {"instances": 2 ** 31}}, {"quota_set": {"widgets": 1}}, {"quota": {}}):
            fault(call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", json=bad), 400, "badRequest")
        fault(call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", "2.57", json={"quota_set": {
            "injected_files": 3}}), 400, "badRequest")
        fault(call(service, admin, "PUT", f"{V}/os-quota-sets/{pa}", params={"user_id": "u"},
                   json={"quota_set": {"instances": 3}}), 400, "badRequest")
        # delete reverts to the defaults
        fault(call(service, alice, "DELETE", f"{V}/os-quota-sets/{pa}"), 403, "forbidden")
        assert call(service, admin, "DELETE", f"{V}/os-quota-sets/{pa}").status_code == 202
        back = call(service, alice, "GET", f"{V}/os-quota-sets/{pa}").json()["quota_set"]
        assert (back["instances"], back["ram"], back["server_groups"]) == (10, 51200, 10)
        assert db(service, "SELECT count(*) FROM quotas WHERE project_id = ?", pa) == [(0,)]
        assert pb != pa
    finally:
        call(service, alice, "DELETE", f"{V}/os-server-groups/{group}")


# -- limits ---------------------------------------------------------------------------------------------

LIMITS_21 = {"maxImageMeta", "maxPersonality", "maxPersonalitySize", "maxSecurityGroups", "maxSecurityGroupRules",
             "maxServerMeta", "maxServerGroups", "maxServerGroupMembers", "maxTotalCores", "maxTotalFloatingIps",
             "maxTotalInstances", "maxTotalKeypairs", "maxTotalRAMSize", "totalCoresUsed", "totalFloatingIpsUsed",
             "totalInstancesUsed", "totalRAMUsed", "totalSecurityGroupsUsed", "totalServerGroupsUsed"}
LIMITS_236 = LIMITS_21 - {"maxSecurityGroups", "maxSecurityGroupRules", "maxTotalFloatingIps", "totalFloatingIpsUsed",
                          "totalSecurityGroupsUsed"}
LIMITS_239 = LIMITS_236 - {"maxImageMeta"}
LIMITS_257 = LIMITS_239 - {"maxPersonality", "maxPersonalitySize"}


def test_limits(service: Service, users: dict[str, str]) -> None:
    alice, bob, admin = users["alice"], users["bob"], users["admin"]
    for version, keys in (("2.1", LIMITS_21), ("2.36", LIMITS_236), ("2.39", LIMITS_239), ("2.57", LIMITS_257),
                          ("2.79", LIMITS_257)):
        body = call(service, alice, "GET", f"{V}/limits", version).json()
        assert set(body) == {"limits"} and body["limits"]["rate"] == []
        assert set(body["limits"]["absolute"]) == keys, version
    shown = service.openstack("limits", "show", "--absolute", cloud=ALICE, as_json=True)
    names = {row["Name"]: row["Value"] for row in shown}
    assert names["max_total_instances"] == 10 and names["total_instances_used"] == 0  # the SDK's names
    pb = project_id(service, PB)
    call(service, admin, "PUT", f"{V}/os-quota-sets/{pb}", json={"quota_set": {"cores": 3}})
    try:
        mine = call(service, bob, "GET", f"{V}/limits").json()["limits"]["absolute"]
        assert mine["maxTotalCores"] == 3
        other = call(service, admin, "GET", f"{V}/limits", params={"tenant_id": pb}).json()["limits"]["absolute"]
        assert other["maxTotalCores"] == 3
        fault(call(service, alice, "GET", f"{V}/limits", params={"tenant_id": pb}), 403, "forbidden")
        fault(call(service, alice, "GET", f"{V}/limits", "2.75", params={"reserved": "1"}), 400, "badRequest")
        assert call(service, alice, "GET", f"{V}/limits", "2.57", params={"reserved": "1"}).status_code == 200
    finally:
        call(service, admin, "DELETE", f"{V}/os-quota-sets/{pb}")


def test_resource_paths_need_a_token(service: Service) -> None:
    for path in ("/flavors", "/os-keypairs", "/os-server-groups", "/limits", "/os-hypervisors", "/os-services",
                 "/os-aggregates", "/os-availability-zone"):
        with service.http(None) as c:
            r = c.get(V + path)
        fault(r, 401, "unauthorized")
