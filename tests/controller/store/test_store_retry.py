"""Store.run_in_transaction: the whole transaction is rerun on SQLite busy/locked (and PostgreSQL
serialization/deadlock) errors, a bounded number of times; other errors are raised at once, never retried.
Real SQLite files and real processes; nothing is mocked."""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from kvmfleet.compute import hosts as hostops
from kvmfleet.store import Host, Project, head_revision, is_retryable, make_engine, open_store, upgrade
from kvmfleet.store.engine import alembic_config
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

PROCESSES = 12
PER_PROCESS = 10


def _sqlite_store(tmp_path, **kw):
    return open_store(f"sqlite:///{tmp_path / 'store.db'}", **kw)


def _run_counter_workers(url, project_id, attempts):
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)  # spawn children inherit sys.path and import the worker module
    import store_retry_workers

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=store_retry_workers.counter_worker,
                         args=(url, project_id, PER_PROCESS, attempts, barrier, results))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=150))
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {PROCESSES} processes reported: {reports}")
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    return reports


def _generation(store, project_id):
    with store.transaction() as s:
        return s.get(Project, project_id).generation


def test_concurrent_writers_on_sqlite_all_succeed_by_retrying(tmp_path):
    """12 processes x 15 short write transactions on one SQLite file, busy timeout 1 ms: every one
    commits, exactly once (the counter is exact), and retries did happen."""
    store = _sqlite_store(tmp_path)
    with store.transaction() as s:
        p = Project(name="counter")
        s.add(p)
        s.flush()
        project_id = p.id
    started = time.monotonic()
    reports = _run_counter_workers(str(store.engine.url), project_id, attempts=None)
    elapsed = time.monotonic() - started
    failures = [r for r in reports if r["failed"]]
    assert failures == [], failures
    assert sum(r["done"] for r in reports) == PROCESSES * PER_PROCESS
    assert _generation(store, project_id) == PROCESSES * PER_PROCESS  # nothing lost, nothing applied twice
    retries = sum(r["calls"] for r in reports) - PROCESSES * PER_PROCESS
    assert retries > 0, "no transaction met a locked database: the test did not exercise the retry"
    print(f"{PROCESSES}x{PER_PROCESS} transactions in {elapsed:.1f}s with {retries} retries")
    store.dispose()


def test_same_load_without_retry_fails_with_database_locked(tmp_path):
    """The control for the test above: one attempt each, the same load meets "database is locked"."""
    store = _sqlite_store(tmp_path)
    with store.transaction() as s:
        p = Project(name="counter")
        s.add(p)
        s.flush()
        project_id = p.id
    reports = _run_counter_workers(str(store.engine.url), project_id, attempts=1)
    failed = sum(r["failed"] for r in reports)
    assert failed > 0
    assert any("database is locked" in e for r in reports for e in r["errors"])
    done = sum(r["done"] for r in reports)
    assert _generation(store, project_id) == done  # failed transactions wrote nothing
    store.dispose()


def test_locked_database_is_retried_a_bounded_number_of_times(tmp_path):
    """Another connection holds the write lock throughout: the transaction runs `attempts` times, then
    the last "database is locked" error is raised."""
    store = _sqlite_store(tmp_path, busy_timeout_ms=1)
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    calls = []

    def write(session):
        calls.append(1)
        session.add(Project(name="blocked"))
        session.flush()

    try:
        with pytest.raises(OperationalError, match="database is locked") as info:
            store.run_in_transaction(write, attempts=3, base=0.001)
        assert is_retryable(info.value)
        # The lock is taken by BEGIN IMMEDIATE before fn runs, so fn may never have been reached.
        assert len(calls) <= 3
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.run_in_transaction(write)  # the lock gone, it goes through
    with store.transaction() as s:
        assert s.scalars(select(Project.name)).all() == ["blocked"]
    store.dispose()


def test_locked_then_released_succeeds_once(tmp_path):
    """The lock is released while the retries back off: the write lands exactly once."""
    import threading

    store = _sqlite_store(tmp_path, busy_timeout_ms=1)
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    release.start()
    calls = []

    def write(session):
        calls.append(1)
        session.add(Project(name="late"))

    try:
        store.run_in_transaction(write, attempts=40, base=0.02, cap=0.05)
    finally:
        release.join()
        holder.close()
    assert len(calls) >= 1
    with store.transaction() as s:
        assert s.scalars(select(Project.name)).all() == ["late"]
    store.dispose()


def test_non_retryable_errors_are_raised_after_one_try(store):
    """A constraint violation (real IntegrityError) and a plain exception each run fn exactly once."""
    with store.transaction() as s:
        s.add(Project(name="taken"))
    calls = []

    def duplicate(session):
        calls.append(1)
        session.execute(insert(Project).values(id="x" * 32, name="taken", description="", enabled=True,
                                               generation=0, created_at=text("CURRENT_TIMESTAMP")))

    with pytest.raises(IntegrityError) as info:
        store.run_in_transaction(duplicate, attempts=5)
    assert not is_retryable(info.value)
    assert calls == [1]

    def boom(session):
        calls.append(2)
        session.add(Project(name="rolled-back"))
        session.flush()
        raise ValueError("not a database error")

    with pytest.raises(ValueError, match="not a database error"):
        store.run_in_transaction(boom, attempts=5)
    assert calls == [1, 2]
    with store.transaction() as s:
        assert s.scalars(select(Project.name)).all() == ["taken"]


def test_host_connection_vars_live_in_the_store(db_url, tmp_path):
    """Two controllers (two Stores, two state dirs) on one database see the same connection vars;
    no file is written; the detail view leaves secrets out."""
    a = open_store(db_url)
    b = open_store(db_url)
    try:
        conn = {"ansible_user": "root", "ansible_ssh_private_key_file": "/keys/id",
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes", "ansible_password": "hunter2"}
        with a.transaction() as s:
            hostops.add_host(s, "h1", "10.0.0.1", conn_vars=conn)
        assert not (tmp_path / "state" / "hosts").exists()
        with b.transaction() as s:
            host = s.scalars(select(Host).where(Host.name == "h1")).one()
            assert hostops.connection_vars(host) == conn
            assert hostops.inventory_host(host).vars == conn
            shown = hostops.host_dict(s, host, detail=True)["connection"]
            assert "ansible_password" not in shown and shown["ansible_user"] == "root"
        with b.transaction() as s:  # the other controller updates them
            hostops.add_host(s, "h1", "10.0.0.2", conn_vars={"ansible_user": "admin"}, update=True)
        with a.transaction() as s:
            host = s.scalars(select(Host).where(Host.name == "h1")).one()
            assert hostops.connection_vars(host) == {"ansible_user": "admin"}
    finally:
        a.dispose()
        b.dispose()


def test_legacy_connection_file_is_adopted_once(db_url, tmp_path):
    """A host added by an older controller (vars in <state>/hosts/<name>.json): the first read copies
    them into the column; after that the file is not needed."""
    store = open_store(db_url)
    try:
        with store.transaction() as s:
            hostops.add_host(s, "old", "10.0.0.9")
        legacy = tmp_path / "state" / "hosts" / "old.json"
        legacy.parent.mkdir(parents=True)
        legacy.write_text('{"ansible_user": "legacy"}', encoding="utf-8")
        with store.transaction() as s:
            host = s.scalars(select(Host).where(Host.name == "old")).one()
            assert hostops.connection_vars(host) == {"ansible_user": "legacy"}
        legacy.unlink()
        with store.transaction() as s:
            host = s.scalars(select(Host).where(Host.name == "old")).one()
            assert host.connection == {"ansible_user": "legacy"}
            assert hostops.connection_vars(host) == {"ansible_user": "legacy"}
    finally:
        store.dispose()


def test_migration_0002_keeps_existing_hosts(db_url):
    """Hosts made at revision 0001 get an empty ``connection`` from 0002; downgrade drops it again."""
    from alembic import command

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO hosts (name, availability_zone, enabled, state, cpu_allocation_ratio, "
                "ram_allocation_ratio, disk_allocation_ratio, reserved_host_memory_mb, reserved_host_disk_gb, "
                "reserved_host_cpus, vcpus, memory_mb, local_gb, virt_types, generation, failed_builds, created_at) "
                "VALUES "
                "('pre', 'nova', true, 'down', 1, 1, 1, 0, 0, 0, 0, 0, 0, '[]', 0, 0, CURRENT_TIMESTAMP)"))
        assert upgrade(engine) == ("0001", head_revision())
        store = open_store(db_url)
        try:
            with store.transaction() as s:
                assert s.scalars(select(Host).where(Host.name == "pre")).one().connection == {}
        finally:
            store.dispose()
        command.downgrade(alembic_config(engine), "0001")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM hosts")).scalar() == 1
    finally:
        engine.dispose()


def test_refresh_uses_stored_connection_vars(tmp_path, monkeypatch):
    """The executor gets the vars from the column: port 1 on loopback is refused, so the host is DOWN
    with ssh's own message (the refresh's recording transaction runs through run_in_transaction)."""
    monkeypatch.setenv("ANSIBLE_CONFIG", str(Path(__file__).resolve().parents[3] / "ansible.cfg"))
    store = _sqlite_store(tmp_path)
    try:
        with store.transaction() as s:
            hostops.add_host(s, "dead", "127.0.0.1", conn_vars={"ansible_port": 1, "ansible_user": "root"})
        report = hostops.refresh(store, timeout=60)
        assert report.up == []
        assert "port 1" in report.down["dead"]
        with store.transaction() as s:
            assert str(s.scalars(select(Host).where(Host.name == "dead")).one().state) == "down"
    finally:
        store.dispose()


def test_transaction_waits_out_a_held_lock_before_its_body_runs(tmp_path):
    """`with store.transaction()` takes the write lock before the body runs, retrying while another
    connection holds it past the busy timeout (the body runs once); the control without the retry, a bare
    session begun on the same locked file, meets "database is locked"."""
    import threading

    store = _sqlite_store(tmp_path, busy_timeout_ms=1)
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"), store.session_factory.begin() as s:
            s.add(Project(name="control"))
            s.flush()
        release = threading.Timer(0.5, lambda: holder.execute("ROLLBACK"))
        release.start()
        runs = []
        with store.transaction() as s:
            runs.append(1)
            s.add(Project(name="waited"))
        release.join()
    finally:
        holder.close()
    assert runs == [1]
    with store.transaction() as s:
        assert s.scalars(select(Project.name)).all() == ["waited"]
    store.dispose()
