"""Two `kvmfleet serve` processes on one PostgreSQL database (a database of this test's own) receive the
same burst of POST /servers, half each: every task runs exactly once (one build event and one task
attempt per server, SELECT ... FOR UPDATE SKIP LOCKED) and no host is double-booked (allocations within
each host's capacity, each server's domain on exactly the host the store names).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import QUIET_CONFIG, REPO, TINY_IMAGE, Service, free_port
from conftest_lab import LabHost, lab_hosts
from crash_tools import domain_states, wait_until
from db_fixtures import fresh_database
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT = f"pg-{SUFFIX}"
MEMBER = f"pg-{SUFFIX}"
BURST = 12


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    yield from fresh_database("postgresql", None, f"kvmfleet_hb_{SUFFIX}")


def _service(tmp: Path, url: str, admin_password: str) -> Service:
    state = tmp / "state"
    state.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVMFLEET_", "OS_"))}
    env.update({"KVMFLEET_STATE_DIR": str(state), "KVMFLEET_DATABASE_URL": url, "KVMFLEET_LAB":
                os.environ.get("KVMFLEET_LAB", ""), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "COLUMNS": "200"})
    (state / "kvmfleet.yml").write_text(yaml.safe_dump(QUIET_CONFIG))  # heartbeats: test_heartbeats.py
    return Service(state=state, port=free_port(), env=env, admin_password=admin_password)


@pytest.fixture(scope="module")
def pair(database: str, tmp_path_factory: pytest.TempPathFactory, lab_inventory: Path) -> Iterator[list[Service]]:
    password = secrets.token_urlsafe(16)
    a = _service(tmp_path_factory.mktemp("pg-a"), database, password)
    b = _service(tmp_path_factory.mktemp("pg-b"), database, password)
    a.cli("db", "upgrade")
    a.cli("identity", "bootstrap", "--admin-password-stdin", input=password + "\n")
    a.cli("host", "import", "--inventory", str(lab_inventory))
    a.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    a.cli("flavor", "create", "pg.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    a.cli("project", "create", PROJECT)
    a.cli("quota", "set", PROJECT, "--instances", "-1", "--cores", "-1", "--ram", "-1")
    a.user(MEMBER, PROJECT, "member")
    b.users = a.users
    a.start()
    b.start()
    yield [a, b]
    for svc in (a, b):
        svc.stop()


@pytest.fixture(scope="module")
def hosts(lab_inventory: Path) -> list[LabHost]:
    return lab_hosts(lab_inventory)


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def test_two_services_share_one_burst_without_running_a_task_twice(pair: list[Service], database: str,
                                                                   hosts: list[LabHost]) -> None:
    token = pair[0].token(MEMBER, project=PROJECT)
    clients = [svc.http(token, "2.79") for svc in pair]
    image = _rows(database, "SELECT id FROM images WHERE name = 'tiny'")[0][0]
    flavor = _rows(database, "SELECT id FROM flavors WHERE name = 'pg.nano'")[0][0]
    created: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        r = clients[i % 2].post("/compute/v2.1/servers", json={"server": {
            "name": f"burst-{i}", "imageRef": image, "flavorRef": flavor, "networks": "none"}})
        with lock:
            if r.status_code == 202:
                created.append(r.json()["server"]["id"])
            else:
                errors.append(f"{r.status_code} {r.text}")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(created) == BURST, errors

    def settled() -> bool:
        rows = _rows(database, "SELECT vm_state, task_state FROM instances WHERE deleted_at IS NULL")
        return len(rows) == BURST and all(vm in ("active", "error") and task is None for vm, task in rows)

    wait_until("the burst to be built", settled, 900, 2)
    states = dict(_rows(database, "SELECT uuid, vm_state FROM instances WHERE deleted_at IS NULL"))
    assert set(states.values()) == {"active"}, states
    # Exactly once: one create task per server, taken once, done, by one of the two services.
    pids = {svc.proc.pid for svc in pair}
    tasks = _rows(database, "SELECT instance_uuid, state, attempts, owner_pid FROM tasks WHERE kind = 'create'")
    assert sorted(t[0] for t in tasks) == sorted(created)
    assert all(t[1] == "done" and t[2] == 1 and t[3] in pids for t in tasks), tasks
    builds = dict(_rows(database, "SELECT a.instance_uuid, count(e.id) FROM instance_actions a "
                                  "JOIN instance_action_events e ON e.action_id = a.id "
                                  "WHERE a.action = 'create' AND e.event = 'compute__do_build_and_run_instance' "
                                  "GROUP BY a.instance_uuid"))
    assert builds == {u: 1 for u in created}, builds
    # No double booking: allocations within capacity; every domain once, on the host the store names.
    for name, vcpus, mem, used_vcpus, used_mem, ratio_c, ratio_r, res_mem, res_cpu in _rows(
            database, "SELECT h.name, h.vcpus, h.memory_mb, coalesce(sum(a.vcpus), 0), coalesce(sum(a.memory_mb), 0), "
                      "h.cpu_allocation_ratio, h.ram_allocation_ratio, h.reserved_host_memory_mb, h.reserved_host_cpus "
                      "FROM hosts h LEFT JOIN allocations a ON a.host_id = h.id GROUP BY h.id"):
        assert used_vcpus <= (vcpus - res_cpu) * ratio_c and used_mem <= (mem - res_mem) * ratio_r, name
    per_instance = _rows(database, "SELECT instance_uuid, count(*) FROM allocations GROUP BY instance_uuid")
    assert sorted(per_instance) == sorted((u, 1) for u in created)
    doms = domain_states(hosts)
    placed = dict(_rows(database, "SELECT uuid, host FROM instances WHERE deleted_at IS NULL"))
    for uuid in created:
        assert doms.get(uuid) == {placed[uuid]: "running"}, (uuid, doms.get(uuid))
    served = {svc.proc.pid: sum(1 for t in tasks if t[3] == svc.proc.pid) for svc in pair}
    print(f"tasks built per service pid: {served}")
    # Both services delete: each delete also runs once.
    for i, uuid in enumerate(created):
        r = clients[i % 2].delete(f"/compute/v2.1/servers/{uuid}")
        assert r.status_code == 204, r.text
    wait_until("the burst to be deleted", lambda: not _rows(
        database, "SELECT uuid FROM instances WHERE deleted_at IS NULL"), 600, 2)
    deletes = _rows(database, "SELECT instance_uuid, state, attempts FROM tasks WHERE kind = 'delete'")
    assert sorted(d[0] for d in deletes) == sorted(created) and all(d[1:] == ("done", 1) for d in deletes)
    assert _rows(database, "SELECT count(*) FROM allocations") == [(0,)]
    assert not set(created) & set(domain_states(hosts))
    for c in clients:
        c.close()


def test_the_token_of_one_service_is_valid_on_the_other(pair: list[Service]) -> None:
    token = pair[1].token(MEMBER, project=PROJECT)
    with httpx.Client(base_url=pair[0].url, headers={"X-Auth-Token": token}, timeout=30) as c:
        assert c.get("/compute/v2.1/servers").status_code == 200
