"""The moves API without hosts, against a `kvmfleet serve` of its own whose store is seeded with servers
and migration rows directly: GET/DELETE /servers/{id}/migrations[/{id}] and force_complete (admins only,
404 below their microversions, another project's server 404), GET /os-migrations (each microversion's
keys, filters, paging by marker, the query schemas' errors, deleted servers' migrations hidden), read by
`openstack server migration list/show` and openstacksdk too; and the migrate / os-migrateLive actions'
body schemas per microversion and the refusals made before anything is stored."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid as uuidlib
from typing import Any

import httpx
import openstack
import pytest
from conftest import ADMIN_CLOUD, Service
from conftest_resources import V, call, fault, project_id
from openstack.config import loader

SUFFIX = secrets.token_hex(3)
PA, PB, ALICE = f"mig-pa-{SUFFIX}", f"mig-pb-{SUFFIX}", f"mig-alice-{SUFFIX}"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOWHERE = str(uuidlib.uuid4())  # no such server

SERVER_MIGRATION_223 = {"created_at", "dest_compute", "dest_host", "dest_node", "disk_processed_bytes",
                        "disk_remaining_bytes", "disk_total_bytes", "id", "memory_processed_bytes",
                        "memory_remaining_bytes", "memory_total_bytes", "server_uuid", "source_compute",
                        "source_node", "status", "updated_at"}
MIGRATION_21 = {"created_at", "dest_compute", "dest_host", "dest_node", "id", "instance_uuid", "new_instance_type_id",
                "old_instance_type_id", "source_compute", "source_node", "status", "updated_at"}


def day(n: int, minutes: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=n, minutes=minutes)


def _seed(svc: Service) -> dict[str, Any]:
    """Servers a (project PA, live-migrating), b (PB, active) and d (PA, deleted) and their migrations."""
    from kvmfleet.store import open_store
    from kvmfleet.store.models import Instance, Migration
    from kvmfleet.store.states import PowerState, TaskState, VmState

    pa, pb = project_id(svc, PA), project_id(svc, PB)
    store = open_store(f"sqlite:///{svc.state / 'kvmfleet.db'}")
    try:
        with store.transaction() as s:
            def server(name: str, project: str, host: str, task: TaskState | None, **kw: Any) -> str:
                inst = Instance(name=f"{name}-{SUFFIX}", project_id=project, flavor_name="mig.nano", vcpus=1,
                                memory_mb=128, root_gb=1, vm_state=VmState.ACTIVE, task_state=task,
                                power_state=PowerState.RUNNING, host=host, node=host, **kw)
                s.add(inst)
                s.flush()
                inst.task_state = task  # None given to the constructor is the column's default (scheduling)
                s.flush()
                return inst.uuid

            a = server("a", pa, "src1", TaskState.MIGRATING)
            b = server("b", pb, "src2", None)
            d = server("d", pa, "src1", None, deleted_at=day(6))

            def migration(inst: str, project: str, kind: str, status: str, source: str, dest: str | None,
                          created: dt.datetime, updated: dt.datetime | None, **kw: Any) -> Migration:
                row = Migration(instance_uuid=inst, project_id=project, migration_type=kind, status=status,
                                source_compute=source, source_node=source, dest_compute=dest, dest_node=dest,
                                old_flavor_id=kw.pop("old", "1"), new_flavor_id=kw.pop("new", "1"),
                                created_at=created, updated_at=updated, **kw)
                s.add(row)
                s.flush()
                return row

            rows = {
                "cold": migration(a, pa, "migration", "confirmed", "src1", "dst1", day(0), day(0, 60)),
                "done": migration(a, pa, "live-migration", "completed", "src1", "dst2", day(1), day(1, 60)),
                "resize": migration(b, pb, "resize", "finished", "src2", "dst1", day(2), day(2, 60), new="2"),
                "run": migration(a, pa, "live-migration", "running", "src1", "dst1", day(3), day(3, 5),
                                 dest_host="10.0.0.2", memory_total=4096, memory_processed=1024,
                                 memory_remaining=3072, disk_total=8192, disk_processed=2048, disk_remaining=6144),
                "queued": migration(a, pa, "live-migration", "queued", "src1", None, day(4), None),
                "evac": migration(d, pa, "evacuation", "done", "src1", "src2", day(5), day(5, 1)),
            }
            ids = {k: (r.id, r.uuid) for k, r in rows.items()}
    finally:
        store.dispose()
    return {"a": a, "b": b, "d": d, "ids": {k: v[0] for k, v in ids.items()},
            "uuids": {k: v[1] for k, v in ids.items()}}


@pytest.fixture(scope="module")
def env(service_factory: Any) -> dict[str, Any]:
    svc = service_factory()
    svc.user(ALICE, PA, "member")
    svc.cli("project", "create", PB)
    seeded = _seed(svc)
    return {"svc": svc, "admin": svc.token(), "alice": svc.token(ALICE, project=PA), **seeded}


def get(env: dict[str, Any], path: str, version: str, token: str = "admin", **kw: Any) -> httpx.Response:
    return call(env["svc"], env[token], "GET", f"{V}{path}", version, **kw)


def names(env: dict[str, Any], listed: list[dict[str, Any]]) -> list[str]:
    """The seeded migrations' names in the order listed."""
    by_id = {v: k for k, v in env["ids"].items()}
    return [by_id[m["id"]] for m in listed]


# -- GET /servers/{id}/migrations -----------------------------------------------------------------------


def test_server_migrations_exist_from_2_23(env: dict[str, Any]) -> None:
    a, run = env["a"], env["ids"]["run"]
    assert fault(get(env, f"/servers/{a}/migrations", "2.22"), 404, "itemNotFound") == \
        "The resource could not be found."
    fault(get(env, f"/servers/{a}/migrations/{run}", "2.22"), 404, "itemNotFound")
    fault(call(env["svc"], env["admin"], "DELETE", f"{V}/servers/{a}/migrations/{run}", "2.23"), 404, "itemNotFound")
    fault(call(env["svc"], env["admin"], "POST", f"{V}/servers/{a}/migrations/{run}/action", "2.21",
               json={"force_complete": None}), 404, "itemNotFound")
    assert get(env, f"/servers/{a}/migrations", "2.23").status_code == 200


def test_server_migrations_are_the_live_ones_in_progress(env: dict[str, Any]) -> None:
    a, ids = env["a"], env["ids"]
    listed = get(env, f"/servers/{a}/migrations", "2.23").json()["migrations"]
    assert names(env, listed) == ["run", "queued"]
    assert all(set(m) == SERVER_MIGRATION_223 for m in listed)
    run = listed[0]
    assert run == {
        "created_at": "2026-01-04T00:00:00.000000", "updated_at": "2026-01-04T00:05:00.000000", "id": ids["run"],
        "server_uuid": a, "status": "running", "source_compute": "src1", "source_node": "src1",
        "dest_compute": "dst1", "dest_node": "dst1", "dest_host": "10.0.0.2",
        "memory_total_bytes": 4096, "memory_processed_bytes": 1024, "memory_remaining_bytes": 3072,
        "disk_total_bytes": 8192, "disk_processed_bytes": 2048, "disk_remaining_bytes": 6144}
    assert listed[1]["updated_at"] is None and listed[1]["dest_compute"] is None
    listed = get(env, f"/servers/{a}/migrations", "2.59").json()["migrations"]
    assert all(set(m) == SERVER_MIGRATION_223 | {"uuid"} for m in listed)
    assert listed[0]["uuid"] == env["uuids"]["run"]
    assert get(env, f"/servers/{env['b']}/migrations", "2.79").json() == {"migrations": []}
    fault(get(env, f"/servers/{env['d']}/migrations", "2.79"), 404, "itemNotFound")  # deleted
    fault(get(env, f"/servers/{NOWHERE}/migrations", "2.79"), 404, "itemNotFound")


def test_show_server_migration(env: dict[str, Any]) -> None:
    a, ids = env["a"], env["ids"]
    shown = get(env, f"/servers/{a}/migrations/{ids['run']}", "2.79").json()
    assert set(shown) == {"migration"} and set(shown["migration"]) == SERVER_MIGRATION_223 | {"uuid"}
    assert shown["migration"]["id"] == ids["run"]
    assert set(get(env, f"/servers/{a}/migrations/{ids['queued']}", "2.23").json()["migration"]) == \
        SERVER_MIGRATION_223
    assert fault(get(env, f"/servers/{a}/migrations/{ids['done']}", "2.79"), 404, "itemNotFound") == \
        f"Live migration {ids['done']} for server {a} is not in progress."
    assert fault(get(env, f"/servers/{a}/migrations/{ids['cold']}", "2.79"), 404, "itemNotFound") == \
        f"Migration {ids['cold']} for server {a} is not live-migration."
    for other in (ids["resize"], 999999, "abc", 10**30):  # another server's, none, not an id, no id at all
        assert fault(get(env, f"/servers/{a}/migrations/{other}", "2.79"), 404, "itemNotFound") == \
            f"In-progress live migration {other} is not found for server {a}."


def test_server_migrations_are_for_admins(env: dict[str, Any]) -> None:
    svc, alice, a, b, run = env["svc"], env["alice"], env["a"], env["b"], env["ids"]["run"]
    rule = "os_compute_api:servers:migrations:%s"
    assert fault(get(env, f"/servers/{a}/migrations", "2.79", "alice"), 403, "forbidden") == \
        f"Policy doesn't allow {rule % 'index'} to be performed."
    assert rule % "show" in fault(get(env, f"/servers/{a}/migrations/{run}", "2.79", "alice"), 403, "forbidden")
    assert rule % "delete" in fault(call(svc, alice, "DELETE", f"{V}/servers/{a}/migrations/{run}", "2.79"),
                                    403, "forbidden")
    assert rule % "force_complete" in fault(call(svc, alice, "POST", f"{V}/servers/{a}/migrations/{run}/action",
                                                 "2.79", json={"force_complete": None}), 403, "forbidden")
    # another project's server: not found, whatever the rule
    assert fault(get(env, f"/servers/{b}/migrations", "2.79", "alice"), 404, "itemNotFound") == \
        f"Instance {b} could not be found."
    fault(call(svc, alice, "DELETE", f"{V}/servers/{b}/migrations/{env['ids']['resize']}", "2.79"),
          404, "itemNotFound")


def test_abort_refusals(env: dict[str, Any]) -> None:
    svc, admin, a, b, ids = env["svc"], env["admin"], env["a"], env["b"], env["ids"]
    assert fault(call(svc, admin, "DELETE", f"{V}/servers/{b}/migrations/{ids['resize']}", "2.79"),
                 409, "conflictingRequest") == f"Cannot 'abort live migration' instance {b} while it is in vm_state active"
    assert fault(call(svc, admin, "DELETE", f"{V}/servers/{a}/migrations/{ids['done']}", "2.79"),
                 404, "itemNotFound") == f"Migration {ids['done']} not found for instance {a}."
    for other in (999999, 10**30):
        fault(call(svc, admin, "DELETE", f"{V}/servers/{a}/migrations/{other}", "2.79"), 404, "itemNotFound")
    # before 2.65 a queued live migration cannot be aborted
    message = fault(call(svc, admin, "DELETE", f"{V}/servers/{a}/migrations/{ids['queued']}", "2.64"),
                    400, "badRequest")
    assert "Cannot abort live migration in queued state" in message
    assert get(env, f"/servers/{a}/migrations/{ids['queued']}", "2.79").json()["migration"]["status"] == "queued"


def test_force_complete_is_refused(env: dict[str, Any]) -> None:
    svc, admin, a, ids = env["svc"], env["admin"], env["a"], env["ids"]
    path = f"{V}/servers/{a}/migrations/{ids['run']}/action"
    message = fault(call(svc, admin, "POST", path, "2.22", json={"force_complete": None}), 400, "badRequest")
    assert "not supported by kvmfleet" in message and f"DELETE /servers/{a}/migrations/{ids['run']}" in message
    for body in ({"force_complete": {}}, {"force_complete": None, "x": 1}, {"complete": None}):
        fault(call(svc, admin, "POST", path, "2.79", json=body), 400, "badRequest")
    assert fault(call(svc, admin, "POST", f"{V}/servers/{a}/migrations/{ids['done']}/action", "2.79",
                      json={"force_complete": None}), 400, "badRequest") == \
        f"Migration {ids['done']} not found for instance {a}."
    fault(call(svc, admin, "POST", f"{V}/servers/{a}/migrations/{10**30}/action", "2.79",
               json={"force_complete": None}), 400, "badRequest")
    fault(call(svc, admin, "POST", f"{V}/servers/{NOWHERE}/migrations/1/action", "2.79",
               json={"force_complete": None}), 404, "itemNotFound")
    proc = svc.openstack("--os-compute-api-version", "2.79", "server", "migration", "force", "complete", a,
                         str(ids["run"]), check=False)
    assert proc.returncode != 0 and "not supported by kvmfleet" in proc.stderr, proc.stderr


# -- GET /os-migrations ---------------------------------------------------------------------------------


def test_os_migrations_keys_per_microversion(env: dict[str, Any]) -> None:
    svc, a, ids = env["svc"], env["a"], env["ids"]
    old = get(env, "/os-migrations", "2.1").json()
    assert set(old) == {"migrations"}
    assert names(env, old["migrations"]) == ["queued", "run", "resize", "done", "cold"]  # newest first; no evac
    assert all(set(m) == MIGRATION_21 for m in old["migrations"])
    resize = old["migrations"][2]
    assert (resize["instance_uuid"], resize["old_instance_type_id"], resize["new_instance_type_id"]) == (env["b"], 1, 2)
    assert (resize["created_at"], resize["updated_at"]) == ("2026-01-03T00:00:00.000000", "2026-01-03T01:00:00.000000")

    listed = get(env, "/os-migrations", "2.23").json()["migrations"]
    for m in listed:
        live = names(env, [m])[0] in ("queued", "run")
        assert set(m) == MIGRATION_21 | {"migration_type"} | ({"links"} if live else set()), m
    run = listed[1]
    assert run["migration_type"] == "live-migration" and run["links"] == [
        {"rel": "self", "href": f"{svc.url}/compute/v2.1/servers/{a}/migrations/{ids['run']}"},
        {"rel": "bookmark", "href": f"{svc.url}/compute/servers/{a}/migrations/{ids['run']}"}]
    assert [m["migration_type"] for m in listed] == ["live-migration", "live-migration", "resize",
                                                     "live-migration", "migration"]

    new = get(env, "/os-migrations", "2.59").json()
    assert set(new) == {"migrations"}  # a short page has no next link
    assert [m["uuid"] for m in new["migrations"]] == [env["uuids"][k] for k in
                                                      ("queued", "run", "resize", "done", "cold")]
    assert all(set(m) >= MIGRATION_21 | {"migration_type", "uuid"} for m in new["migrations"])


def test_os_migrations_filters(env: dict[str, Any]) -> None:
    def listed(version: str = "2.23", **params: str) -> list[str]:
        r = get(env, "/os-migrations", version, params=params)
        assert r.status_code == 200, r.text
        return names(env, r.json()["migrations"])

    assert listed(host="dst1") == ["run", "resize", "cold"]  # either end
    assert listed(host="src2") == ["resize"]  # the evacuation to src2 is a deleted server's
    assert listed(source_compute="src1") == ["queued", "run", "done", "cold"]
    assert listed(host="src2", source_compute="src1") == ["resize"]  # host wins, as Nova's
    assert listed(status="running") == ["run"]
    assert listed(instance_uuid=env["b"]) == ["resize"]
    assert listed(instance_uuid=env["d"]) == []
    assert listed(migration_type="live-migration") == ["queued", "run", "done"]
    assert listed(migration_type="live-migration", status="completed") == ["done"]
    assert listed(status="nonesuch") == []
    # before 2.59 the time and paging parameters, and unknown ones, are ignored
    assert listed("2.58", **{"changes-since": "garbage", "limit": "x", "foo": "1"}) == \
        ["queued", "run", "resize", "done", "cold"]
    assert listed("2.59", **{"changes-since": "2026-01-04T00:00:00Z"}) == ["queued", "run"]
    assert listed("2.66", **{"changes-before": "2026-01-02T12:00:00Z"}) == ["done", "cold"]
    assert listed("2.66", **{"changes-since": "2026-01-02T00:00:00Z", "changes-before": "2026-01-03T12:00:00Z"}) == \
        ["resize", "done"]


def test_os_migrations_query_errors(env: dict[str, Any]) -> None:
    def bad(version: str, params: Any) -> str:
        return fault(get(env, "/os-migrations", version, params=params), 400, "badRequest")

    assert "'foo' was unexpected" in bad("2.59", {"foo": "1"})
    assert "'changes-before' was unexpected" in bad("2.59", {"changes-before": "2026-01-01T00:00:00Z"})
    assert "changes-since" in bad("2.59", {"changes-since": "garbage"})
    assert "limit" in bad("2.59", {"limit": "-1"})
    assert "limit" in bad("2.59", {"limit": "x"})
    assert "limit" in bad("2.59", [("limit", "1"), ("limit", "2")])
    assert bad("2.66", {"changes-since": "2026-01-03T00:00:00Z", "changes-before": "2026-01-02T00:00:00Z"}) == \
        "The value of changes-since must be less than or equal to changes-before."
    unknown = str(uuidlib.uuid4())
    assert bad("2.59", {"marker": unknown}) == f"Marker {unknown} could not be found."
    hidden = env["uuids"]["evac"]  # a deleted server's migration is no marker either
    assert bad("2.59", {"marker": hidden}) == f"Marker {hidden} could not be found."
    assert get(env, "/os-migrations", "2.59", params={"limit": "0", "marker": unknown}).json() == {"migrations": []}


def test_os_migrations_paging(env: dict[str, Any]) -> None:
    svc, uuids = env["svc"], env["uuids"]
    page = get(env, "/os-migrations", "2.59", params={"limit": "2"}).json()
    assert names(env, page["migrations"]) == ["queued", "run"]
    assert page["migrations_links"] == [
        {"rel": "next", "href": f"{svc.url}/compute/v2.1/os-migrations?limit=2&marker={uuids['run']}"}]
    seen = names(env, page["migrations"])
    while "migrations_links" in page:
        with svc.http(env["admin"], "2.59") as c:
            r = c.get(page["migrations_links"][0]["href"])
        assert r.status_code == 200, r.text
        page = r.json()
        seen += names(env, page["migrations"])
    assert seen == ["queued", "run", "resize", "done", "cold"]
    page = get(env, "/os-migrations", "2.59", params={"limit": "2", "marker": uuids["resize"]}).json()
    assert names(env, page["migrations"]) == ["done", "cold"]
    assert page["migrations_links"][0]["href"].endswith(f"marker={uuids['cold']}")
    filtered = get(env, "/os-migrations", "2.59", params={"limit": "1", "host": "dst1"}).json()
    assert names(env, filtered["migrations"]) == ["run"]
    assert filtered["migrations_links"][0]["href"] == \
        f"{svc.url}/compute/v2.1/os-migrations?host=dst1&limit=1&marker={uuids['run']}"


def test_os_migrations_are_for_admins(env: dict[str, Any]) -> None:
    assert fault(get(env, "/os-migrations", "2.79", "alice"), 403, "forbidden") == \
        "Policy doesn't allow os_compute_api:os-migrations:index to be performed."
    r = httpx.get(f"{env['svc'].url}{V}/os-migrations", timeout=30)
    assert r.status_code == 401


# -- the real clients -----------------------------------------------------------------------------------


def test_openstack_server_migration_list_and_show(env: dict[str, Any]) -> None:
    svc, a, ids, uuids = env["svc"], env["a"], env["ids"], env["uuids"]
    osc = ("--os-compute-api-version", "2.79", "server", "migration")
    rows = svc.openstack(*osc, "list", as_json=True)
    assert [r["Id"] for r in rows] == [ids[k] for k in ("queued", "run", "resize", "done", "cold")]
    run = rows[1]
    assert (run["UUID"], run["Server UUID"], run["Type"], run["Status"]) == (uuids["run"], a, "live-migration",
                                                                            "running")
    assert (run["Source Compute"], run["Dest Compute"], run["Dest Host"]) == ("src1", "dst1", "10.0.0.2")
    assert [r["Id"] for r in svc.openstack(*osc, "list", "--server", a, "--type", "live-migration",
                                           as_json=True)] == [ids["queued"], ids["run"], ids["done"]]
    assert [r["Id"] for r in svc.openstack(*osc, "list", "--type", "cold-migration", as_json=True)] == [ids["cold"]]
    assert [r["Id"] for r in svc.openstack(*osc, "list", "--host", "dst1", "--limit", "1", as_json=True)] == \
        [ids["run"]]
    # by uuid (OSC lists the server's migrations): OSC 10.5 passes `show SERVER ID` to openstacksdk 4.22's
    # get_server_migration(migration, server) the wrong way round, whatever the cloud
    shown = svc.openstack(*osc, "show", a, uuids["run"], as_json=True)
    assert (shown["ID"], shown["Server UUID"], shown["Status"]) == (ids["run"], a, "running"), shown
    assert (shown["Memory Processed Bytes"], shown["Disk Total Bytes"]) == (1024, 8192), shown
    proc = svc.openstack(*osc, "list", cloud=ALICE, check=False)
    assert proc.returncode != 0 and "os-migrations:index" in proc.stderr, proc.stderr


def _connect(svc: Service, cloud: str) -> openstack.connection.Connection:
    config = loader.OpenStackConfig(config_files=[str(svc.clouds_file)], load_envvars=False)
    return openstack.connection.Connection(config=config.get_one(cloud=cloud))


def test_openstacksdk_reads_the_same_rows(env: dict[str, Any]) -> None:
    svc, a, ids, uuids = env["svc"], env["a"], env["ids"], env["uuids"]
    conn = _connect(svc, ADMIN_CLOUD)
    try:
        every = list(conn.compute.migrations())
        assert [m.uuid for m in every] == [uuids[k] for k in ("queued", "run", "resize", "done", "cold")]
        # one page, as `openstack server migration list --limit` asks (the SDK's own paging would, after
        # the last short page, ask again with the migration's integer id as marker: 400 from Nova too)
        page = list(conn.compute.migrations(limit=2, paginated=False))
        assert [m.uuid for m in page] == [uuids["queued"], uuids["run"]]
        resize = every[2]
        assert (resize.server_id, resize.migration_type, resize.old_flavor_id, resize.new_flavor_id) == \
            (env["b"], "resize", 1, 2)
        assert [m.uuid for m in conn.compute.migrations(server_id=a, status="running")] == [uuids["run"]]
        live = list(conn.compute.server_migrations(a))
        assert [m.uuid for m in live] == [uuids["run"], uuids["queued"]]
        assert live[0].memory_processed_bytes == 1024 and live[0].disk_total_bytes == 8192
        one = conn.compute.get_server_migration(ids["run"], a, ignore_missing=False)
        assert (one.status, one.dest_host, one.server_uuid) == ("running", "10.0.0.2", a)
    finally:
        conn.close()


# -- POST /servers/{id}/action: migrate, os-migrateLive -------------------------------------------------


def _action(env: dict[str, Any], server: str, version: str, body: Any, token: str = "admin") -> httpx.Response:
    return call(env["svc"], env[token], "POST", f"{V}/servers/{server}/action", version, json=body)


@pytest.mark.parametrize(("version", "args"), [
    ("2.1", {"block_migration": "auto", "disk_over_commit": False, "host": None}),  # auto from 2.25
    ("2.1", {"block_migration": False, "host": None}),  # disk_over_commit required
    ("2.24", {"block_migration": True, "disk_over_commit": False}),  # host required (nullable)
    ("2.25", {"block_migration": "auto", "disk_over_commit": False, "host": None}),  # gone in 2.25
    ("2.25", {"block_migration": "auto", "host": None, "force": True}),  # force from 2.30
    ("2.30", {"block_migration": "maybe", "host": None}),
    ("2.30", {"block_migration": "auto", "host": "h1", "force": "sometimes"}),
    ("2.30", {"block_migration": "auto", "host": None, "force": True}),  # force needs a host
    ("2.68", {"block_migration": "auto", "host": None, "force": False}),  # force gone in 2.68
    ("2.79", {"block_migration": "auto", "host": "bad host!"}),
    ("2.79", {"block_migration": "auto", "host": ""}),
    ("2.79", {"host": None}),
    ("2.79", {"block_migration": "auto", "host": None, "extra": 1}),
    ("2.79", None),
])
def test_migrate_live_body_is_checked_first(env: dict[str, Any], version: str, args: Any) -> None:
    fault(_action(env, NOWHERE, version, {"os-migrateLive": args}), 400, "badRequest")


@pytest.mark.parametrize(("version", "args"), [
    ("2.1", {"block_migration": False, "disk_over_commit": "False", "host": None}),
    ("2.24", {"block_migration": "true", "disk_over_commit": True, "host": "h1"}),
    ("2.25", {"block_migration": "auto", "host": None}),
    ("2.30", {"block_migration": True, "host": "h1", "force": True}),
    ("2.67", {"block_migration": "auto", "host": None, "force": "false"}),
    ("2.79", {"block_migration": "auto", "host": None}),
])
def test_migrate_live_good_body_then_the_server(env: dict[str, Any], version: str, args: Any) -> None:
    assert fault(_action(env, NOWHERE, version, {"os-migrateLive": args}), 404, "itemNotFound") == \
        f"Instance {NOWHERE} could not be found."


def test_migrate_body(env: dict[str, Any]) -> None:
    for body in ({"migrate": {"host": "bad host!"}}, {"migrate": {"foo": 1}}, {"migrate": "x"},
                 {"migrate": None, "extra": 1}):
        fault(_action(env, NOWHERE, "2.56", body), 400, "badRequest")
    for version, body in (("2.55", {"migrate": {"foo": 1}}), ("2.1", {"migrate": "anything"}),
                          ("2.56", {"migrate": None}), ("2.56", {"migrate": {"host": "h1"}}),
                          ("2.79", {"migrate": {"host": None}}), ("2.79", {"migrate": {}})):
        fault(_action(env, NOWHERE, version, body), 404, "itemNotFound")


def test_moves_are_for_admins(env: dict[str, Any]) -> None:
    a = env["a"]
    rule = "os_compute_api:os-migrate-server:%s"
    for body, name in (({"os-migrateLive": {"block_migration": "auto", "host": None}}, "migrate_live"),
                       ({"os-migrateLive": {"block_migration": "auto", "host": "h1"}}, "migrate_live:host"),
                       ({"migrate": None}, "migrate"), ({"migrate": {"host": "h1"}}, "migrate:host")):
        assert fault(_action(env, a, "2.79", body, "alice"), 403, "forbidden") == \
            f"Policy doesn't allow {rule % name} to be performed.", body
    fault(_action(env, env["b"], "2.79", {"migrate": None}, "alice"), 404, "itemNotFound")


def test_moves_refused_before_anything_is_stored(env: dict[str, Any]) -> None:
    """What the compute layer refuses at once: a server already moving (409), a host that does not exist
    or is the server's own, shared-storage live migration (400). The store keeps no new migration."""
    svc, a, b = env["svc"], env["a"], env["b"]
    before = get(env, "/os-migrations", "2.79").json()
    live = {"block_migration": "auto", "host": None}
    assert fault(_action(env, a, "2.79", {"os-migrateLive": live}), 409, "conflictingRequest") == \
        f"Cannot 'os-migrateLive' instance {a} while it is in task_state migrating"
    assert fault(_action(env, a, "2.79", {"migrate": None}), 409, "conflictingRequest") == \
        f"Cannot 'migrate' instance {a} while it is in task_state migrating"
    for body in ({"os-migrateLive": {"block_migration": "auto", "host": "nohost"}},
                 {"migrate": {"host": "nohost"}}):
        assert fault(_action(env, b, "2.79", body), 400, "badRequest") == "Compute host nohost could not be found."
    fault(_action(env, b, "2.79", {"os-migrateLive": {"block_migration": False, "host": None}}), 400, "badRequest")
    proc = svc.openstack("--os-compute-api-version", "2.79", "server", "migrate", "--live-migration", "--host",
                         "nohost", b, check=False)
    assert proc.returncode != 0 and "Compute host nohost could not be found." in proc.stderr, proc.stderr
    assert get(env, "/os-migrations", "2.79").json() == before


# -- POST /servers/{id}/action: evacuate ------------------------------------------------------------------


@pytest.mark.parametrize(("version", "args"), [
    ("2.1", {"host": "h1"}),  # onSharedStorage required before 2.14
    ("2.14", {"onSharedStorage": False}),  # gone in 2.14
    ("2.14", {"force": True}),  # force from 2.29
    ("2.29", {"force": True}),  # force needs a host
    ("2.68", {"host": "h1", "force": False}),  # force gone in 2.68
    ("2.79", {"host": "bad host!"}),
    ("2.79", {"host": ""}),
    ("2.79", {"adminPass": 5}),
    ("2.79", {"extra": 1}),
    ("2.79", None),
])
def test_evacuate_body_is_checked_first(env: dict[str, Any], version: str, args: Any) -> None:
    fault(_action(env, NOWHERE, version, {"evacuate": args}), 400, "badRequest")


def test_evacuate_refusals_store_nothing(env: dict[str, Any]) -> None:
    """Admins only (403); a server moving already (409); an unknown destination (404, Nova's message); shared
    storage (400: kvmfleet's disks are local); a host that is up (400, Nova's ComputeServiceInUse). No
    migration is recorded by any of them."""
    from kvmfleet.store import open_store
    from kvmfleet.store.models import Host, Instance, utcnow
    from kvmfleet.store.states import HostState, PowerState, VmState

    svc, a = env["svc"], env["a"]
    before = get(env, "/os-migrations", "2.79").json()
    assert fault(_action(env, a, "2.79", {"evacuate": {}}, "alice"), 403, "forbidden") == \
        "Policy doesn't allow os_compute_api:os-evacuate to be performed."
    assert fault(_action(env, a, "2.79", {"evacuate": {}}), 409, "conflictingRequest") == \
        f"Cannot 'evacuate' instance {a} while it is in task_state migrating"
    assert fault(_action(env, env["b"], "2.79", {"evacuate": {"host": "nohost"}}), 404, "itemNotFound") == \
        "Compute host nohost not found."
    assert "onSharedStorage is not supported" in fault(
        _action(env, env["b"], "2.13", {"evacuate": {"onSharedStorage": True}}), 400, "badRequest")
    store = open_store(f"sqlite:///{svc.state / 'kvmfleet.db'}")
    try:
        with store.transaction() as s:
            s.add(Host(name=f"evup-{SUFFIX}", address="127.0.0.1", state=HostState.UP, last_heartbeat_at=utcnow(),
                       vcpus=4, memory_mb=4096, local_gb=40))
            inst = Instance(name=f"e-{SUFFIX}", project_id=project_id(svc, PB), flavor_name="mig.nano", vcpus=1,
                            memory_mb=128, root_gb=1, vm_state=VmState.ACTIVE, power_state=PowerState.RUNNING,
                            host=f"evup-{SUFFIX}", node=f"evup-{SUFFIX}")
            s.add(inst)
            s.flush()
            inst.task_state = None
            uuid = inst.uuid
        assert fault(_action(env, uuid, "2.79", {"evacuate": {}}), 400, "badRequest") == \
            f"Compute service of evup-{SUFFIX} is still in use."
        proc = svc.openstack("server", "evacuate", uuid, check=False)
        assert proc.returncode != 0 and f"Compute service of evup-{SUFFIX} is still in use." in proc.stderr, proc.stderr
        shown = call(svc, env["admin"], "GET", f"{V}/servers/{uuid}", "2.79").json()["server"]
        assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
    finally:
        with store.transaction() as s:
            row = s.get(Instance, uuid)
            row.deleted_at = utcnow()
        store.dispose()
    assert get(env, "/os-migrations", "2.79").json() == before
