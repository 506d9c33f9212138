"""`kvmfleet serve` as a service on the lab: a kill -9 while it builds a batch of servers submitted over
HTTP, a SIGTERM while it builds (clean shutdown), DELETE of a server still in BUILD, `--check`, and the pid
file. Nothing mocked: a real service process, the real lab hosts (checked over ssh), its SQLite store.

After the crash and a restart, every server must be ACTIVE or ERROR as its host shows it (within the
60 s the issue gives recovery), none duplicated, none left on a host without a record, the claims and the
quota usage exact; and the killed service must have left no ansible-playbook behind.
"""

from __future__ import annotations

import secrets
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import KVMFLEET, REPO, TINY_IMAGE, Service
from conftest_lab import LabHost, lab_hosts
from crash_tools import alive, assert_no_playbook_left, cmdline, domain_states, playbooks_of, process_tree, wait_until

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT = f"crash-{SUFFIX}"
MEMBER = f"crash-{SUFFIX}"
RECOVERY_DEADLINE = 60  # seconds the issue gives recovery after a restart


# -- helpers ------------------------------------------------------------------------------------------


def db(svc: Service, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(svc.state / "kvmfleet.db", timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def servers(client: httpx.Client) -> dict[str, dict[str, Any]]:
    r = client.get("/compute/v2.1/servers/detail")
    assert r.status_code == 200, r.text
    return {s["id"]: s for s in r.json()["servers"]}


def post_server(client: httpx.Client, refs: dict[str, str], name: str, **extra: Any) -> httpx.Response:
    r = client.post("/compute/v2.1/servers", json={"server": {
        "name": name, "imageRef": refs["image"], "flavorRef": refs["flavor"], "networks": "none", **extra}})
    assert r.status_code == 202, r.text
    return r


def assert_consistent(svc: Service, client: httpx.Client, hosts: list[LabHost], uuids: set[str]) -> None:
    """Every server settled and as its host shows it; nothing duplicated or left; claims and quota exact."""
    shown = servers(client)
    assert uuids <= set(shown), f"servers missing from the list: {uuids - set(shown)}"
    doms = domain_states(hosts)
    ours = {row[0] for row in db(svc, "SELECT uuid FROM instances")}
    for uuid in uuids:
        s = shown[uuid]
        assert s["OS-EXT-STS:task_state"] is None, s
        assert s["status"] in ("ACTIVE", "ERROR"), s
        where = doms.get(uuid, {})
        host = db(svc, "SELECT host FROM instances WHERE uuid = ?", uuid)[0][0]
        if s["status"] == "ACTIVE":
            assert where == {host: "running"}, f"ACTIVE server {uuid} on {host}, hosts show {where}"
        else:
            assert where == {}, f"ERROR server {uuid} still has domains: {where}"
            assert host is None
            assert "build interrupted" in (s.get("fault") or {}).get("message", ""), s.get("fault")
        actions = db(svc, "SELECT count(*) FROM instance_actions WHERE instance_uuid = ? AND action = 'create'", uuid)
        assert actions[0][0] == 1, f"{uuid}: {actions[0][0]} create actions"
    live = {row[0] for row in db(svc, "SELECT uuid FROM instances WHERE deleted_at IS NULL")}
    stray = {u: w for u, w in doms.items() if u in ours and u not in live}
    assert not stray, f"domains on hosts without a live record: {stray}"
    # Claims: exactly one allocation per ACTIVE server, sized by its flavor; none for ERROR or deleted ones.
    allocs = db(svc, "SELECT a.instance_uuid, h.name, a.vcpus, a.memory_mb, a.kind FROM allocations a "
                     "JOIN hosts h ON h.id = a.host_id")
    by_uuid: dict[str, list[tuple[Any, ...]]] = {}
    for row in allocs:
        by_uuid.setdefault(row[0], []).append(row)
    for uuid in uuids:
        rows = by_uuid.get(uuid, [])
        if shown[uuid]["status"] == "ACTIVE":
            host, vcpus, ram = db(svc, "SELECT host, vcpus, memory_mb FROM instances WHERE uuid = ?", uuid)[0]
            assert [(r[1], r[2], r[3], r[4]) for r in rows] == [(host, vcpus, ram, "instance")], (uuid, rows)
        else:
            assert rows == [], (uuid, rows)
    assert not [u for u in by_uuid if u not in live], "allocations of deleted instances"
    # Quota usage as the API reports it equals what the project's live servers add up to.
    limits = client.get("/compute/v2.1/limits").json()["limits"]["absolute"]
    assert limits["totalInstancesUsed"] == len(shown)
    pid = db(svc, "SELECT id FROM projects WHERE name = ?", PROJECT)[0][0]
    cores, ram = db(svc, "SELECT coalesce(sum(vcpus), 0), coalesce(sum(memory_mb), 0) FROM instances "
                         "WHERE project_id = ? AND deleted_at IS NULL", pid)[0]
    assert (limits["totalCoresUsed"], limits["totalRAMUsed"]) == (cores, ram)


def delete_all(client: httpx.Client, uuids: set[str]) -> None:
    for uuid in uuids:
        r = client.delete(f"/compute/v2.1/servers/{uuid}")
        assert r.status_code in (204, 404), r.text
    wait_until("the servers to be deleted", lambda: not (uuids & set(servers(client))), 300, 2)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def svc(service_factory: Any, lab_inventory: Path) -> Service:
    svc = service_factory()
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "crash.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    svc.cli("project", "create", PROJECT)
    svc.user(MEMBER, PROJECT, "member")
    return svc


@pytest.fixture(scope="module")
def hosts(lab_inventory: Path) -> list[LabHost]:
    return lab_hosts(lab_inventory)


@pytest.fixture
def client(svc: Service) -> Any:
    c = svc.http(svc.token(MEMBER, project=PROJECT), "2.79")
    yield c
    c.close()


@pytest.fixture(scope="module")
def refs(svc: Service) -> dict[str, str]:
    return {"image": db(svc, "SELECT id FROM images WHERE name = 'tiny'")[0][0],
            "flavor": db(svc, "SELECT id FROM flavors WHERE name = 'crash.nano'")[0][0]}


# -- tests --------------------------------------------------------------------------------------------


def test_kill9_while_building_a_batch_then_restart_recovers_every_server(svc: Service, client: httpx.Client,
                                                                       refs: dict[str, str],
                                                                       hosts: list[LabHost]) -> None:
    # One multi-create of 3 and two single requests: built together, one job.
    r = post_server(client, refs, "batch", min_count=3, max_count=3, return_reservation_id=True)
    reservation = r.json()["reservation_id"]
    post_server(client, refs, "single-a")
    post_server(client, refs, "single-b")
    uuids = {s["id"] for s in servers(client).values()}
    assert len(uuids) == 5
    assert {row[0] for row in db(svc, "SELECT reservation_id FROM instances WHERE name LIKE 'batch-%'")} == \
        {reservation}
    # Kill -9 while the build job is under way: its instances are spawning, its playbook is running.
    wait_until("the build job to start", lambda: db(
        svc, "SELECT count(*) FROM instances WHERE task_state = 'spawning'")[0][0] >= 1 and
        playbooks_of(svc.proc.pid), 120, 0.2)
    time.sleep(2)  # let the domain module reach the hosts: some domains are made, some not
    playbooks = playbooks_of(svc.proc.pid)
    assert playbooks
    svc.stop(signal.SIGKILL)
    assert_no_playbook_left(playbooks)
    stuck = db(svc, "SELECT count(*) FROM instances WHERE vm_state = 'building'")[0][0]
    assert stuck >= 1, "the kill came too late: nothing was left mid-build"
    # Restart: recovery decides each interrupted build against what the hosts report.
    svc.start()
    restarted = time.monotonic()

    def settled() -> bool:
        shown = servers(client)
        return all(shown[u]["status"] in ("ACTIVE", "ERROR") and shown[u]["OS-EXT-STS:task_state"] is None
                   for u in uuids)

    wait_until("every server ACTIVE or ERROR after the restart", settled, RECOVERY_DEADLINE, 1)
    assert time.monotonic() - restarted <= RECOVERY_DEADLINE + 1
    # Orphans the interrupted job left are reaped in the same pass; give the reap job its time.
    wait_until("hosts to match the store", lambda: _matches(svc, client, hosts, uuids), 60, 2)
    assert_consistent(svc, client, hosts, uuids)
    tasks = db(svc, "SELECT state, count(*) FROM tasks WHERE kind = 'create' GROUP BY state")
    assert dict(tasks).keys() <= {"done", "failed"}, tasks
    delete_all(client, uuids)
    assert_consistent(svc, client, hosts, set())
    assert not {u for u in domain_states(hosts) if u in uuids}


def _matches(svc: Service, client: httpx.Client, hosts: list[LabHost], uuids: set[str]) -> bool:
    try:
        assert_consistent(svc, client, hosts, uuids)
    except AssertionError:
        return False
    return True


def test_sigterm_lets_the_running_build_finish_and_stops_cleanly(svc: Service, client: httpx.Client,
                                                                refs: dict[str, str], hosts: list[LabHost]) -> None:
    if svc.proc is None:
        svc.start()
    server_id = post_server(client, refs, "term").json()["server"]["id"]
    wait_until("the build job to start", lambda: playbooks_of(svc.proc.pid), 120, 0.2)
    pid = svc.proc.pid
    tree = process_tree(pid)
    rc = svc.stop(signal.SIGTERM, timeout=120)
    assert rc == 0
    assert not svc.pid_file.exists()
    assert not [p for p in tree if alive(p) and "ansible-playbook" in cmdline(p)]
    log = (svc.state / "logs" / "kvmfleet-serve.log").read_text()
    assert "kvmfleet serve stopped" in log
    # The build finished inside the grace period: ACTIVE and running on its host, its task done.
    vm_state, task_state, host = db(svc, "SELECT vm_state, task_state, host FROM instances WHERE uuid = ?",
                                    server_id)[0]
    assert (vm_state, task_state) == ("active", None)
    assert domain_states(hosts).get(server_id) == {host: "running"}
    assert db(svc, "SELECT state FROM tasks WHERE instance_uuid = ?", server_id) == [("done",)]
    svc.start()
    delete_all(client, {server_id})


def test_delete_of_a_server_in_build_removes_whatever_its_host_holds(svc: Service, client: httpx.Client,
                                                                    refs: dict[str, str],
                                                                    hosts: list[LabHost]) -> None:
    if svc.proc is None:
        svc.start()
    early = post_server(client, refs, "del-early").json()["server"]["id"]
    r = client.delete(f"/compute/v2.1/servers/{early}")  # at once: its build task is still queued
    assert r.status_code == 204, r.text
    late = post_server(client, refs, "del-late").json()["server"]["id"]
    wait_until("the build to reach its host", lambda: db(
        svc, "SELECT task_state FROM instances WHERE uuid = ?", late)[0][0] == "spawning", 120, 0.2)
    assert client.get(f"/compute/v2.1/servers/{late}").json()["server"]["status"] == "BUILD"
    r = client.delete(f"/compute/v2.1/servers/{late}")
    assert r.status_code == 204, r.text
    wait_until("both servers to be gone", lambda: not ({early, late} & set(servers(client))), 300, 1)
    for uuid in (early, late):
        assert uuid not in domain_states(hosts)
        assert db(svc, "SELECT count(*) FROM allocations WHERE instance_uuid = ?", uuid) == [(0,)]
        assert db(svc, "SELECT vm_state FROM instances WHERE uuid = ?", uuid) == [("deleted",)]
    kinds = dict(db(svc, "SELECT kind, state FROM tasks WHERE instance_uuid = ? ORDER BY id", early))
    # cancelled while queued, or (when a worker had just taken it) ended by the delete it waited for
    assert kinds["delete"] == "done" and kinds["create"] in ("cancelled", "failed"), kinds
    late_tasks = db(svc, "SELECT kind, state FROM tasks WHERE instance_uuid = ? ORDER BY id", late)
    assert late_tasks[-1] == ("delete", "done") and len(late_tasks) == 2, late_tasks


def test_check_and_pid_file(svc: Service, tmp_path: Path) -> None:
    if svc.proc is None:
        svc.start()
    ok = svc.cli("serve", "--check")
    head = max(p.name[:4] for p in (REPO / "controller/kvmfleet/store/migrations/versions").glob("0*.py"))
    assert ok.stdout.startswith("ok: ") and f"at {head}" in ok.stdout, ok.stdout
    second = svc.cli("serve", "--bind", "127.0.0.1:1", check=False)
    assert second.returncode != 0
    assert f"already running for {svc.state} (pid {svc.proc.pid}" in " ".join(second.stderr.split())
    # A bad configuration, a missing store: non-zero with one clear line.
    bad = tmp_path / "bad"
    bad.mkdir(mode=0o700)
    (bad / "kvmfleet.yml").write_text("api: {workers: many}\n")
    env = {**svc.env, "KVMFLEET_STATE_DIR": str(bad)}
    proc = subprocess.run([str(KVMFLEET), "serve", "--check"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "api.workers" in proc.stderr, proc.stderr
    (bad / "kvmfleet.yml").unlink()
    proc = subprocess.run([str(KVMFLEET), "serve", "--check"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr, proc.stderr
    assert not (bad / "kvmfleet.db").exists()
