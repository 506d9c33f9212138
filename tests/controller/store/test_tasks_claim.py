"""The durable task layer on both backends (kvmfleet.compute.tasks, kvmfleet.compute.recovery): each
queued task is taken by exactly one of many claimers in several processes (FOR UPDATE SKIP LOCKED on
PostgreSQL, BEGIN IMMEDIATE on SQLite); recovery takes over exactly the tasks whose owner is gone; a
task taken over has its lease keeper cancel its job; a handed-back task is queued again."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from kvmfleet.compute import recovery, tasks
from kvmfleet.store.models import Task, utcnow

sys.path.insert(0, str(Path(__file__).parent))
import tasks_workers  # the children import it by name

TASKS = 120


def _queue(store, n: int, kind: str = "start") -> list[int]:
    with store.transaction() as s:
        rows = [Task(kind=kind, params={"n": i}) for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _running(store, owner: str, pid: int | None, lease_s: float) -> int:
    with store.transaction() as s:
        row = Task(kind="stop", state=tasks.RUNNING, owner=owner, owner_pid=pid,
                   lease_expires_at=utcnow() + dt.timedelta(seconds=lease_s), attempts=1)
        s.add(row)
        s.flush()
        return row.id


def _state(store, task_id: int) -> tuple[str, str | None]:
    with store.transaction() as s:
        row = s.get(Task, task_id)
        return row.state, row.owner


def test_every_queued_task_is_claimed_by_exactly_one_of_many_claimers(store, db_url):
    ids = _queue(store, TASKS)
    ctx = multiprocessing.get_context("spawn")
    procs_n, threads = 4, 3
    barrier = ctx.Barrier(procs_n)
    results = ctx.Queue()
    procs = [ctx.Process(target=tasks_workers.claim_worker, args=(db_url, f"p{i}", threads, barrier, results))
             for i in range(procs_n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
    errors = [e for _, _, errs in outcomes for e in errs]
    assert not errors, errors
    taken = [t for _, got, _ in outcomes for t in got]
    assert sorted(taken) == sorted(ids), "a task was taken twice or not at all"
    with store.transaction() as s:
        rows = s.query(Task).all()
        assert {r.state for r in rows} == {tasks.RUNNING}
        assert all(r.attempts == 1 and r.lease_expires_at is not None for r in rows)
        owners = {r.owner.split(":")[0] for r in rows}
    assert len(owners) > 1, "one claimer took everything: no race was exercised"


def test_recovery_takes_over_exactly_the_tasks_whose_owner_is_gone(store):
    me = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone_pid = _running(store, f"{me}:{dead.pid}:w0", dead.pid, 300)          # a dead pid on this machine
    expired = _running(store, "elsewhere:123:w0", 123, -5)                     # a lease that ran out
    alive_elsewhere = _running(store, "elsewhere:456:w0", 456, 300)            # another machine, renewing
    alive_here = _running(store, f"{me}:{os.getppid()}:w1", os.getppid(), 300)  # a live process here
    taken = recovery._take_over(store, "recoverer:1:recovery")
    assert sorted(t.id for t, _state in taken) == sorted([gone_pid, expired])
    assert all(t.attempts == 2 for t, _ in taken)
    assert _state(store, alive_elsewhere) == (tasks.RUNNING, "elsewhere:456:w0")
    assert _state(store, alive_here)[1] == f"{me}:{os.getppid()}:w1"
    # Taken over, its lease is fresh: a second recoverer finds nothing to take.
    assert recovery._take_over(store, "recoverer:2:recovery") == []


def test_a_task_taken_over_gets_its_job_cancelled_and_finish_is_refused(store):
    [task_id] = _queue(store, 1)
    owner = tasks.owner_id("w9")
    [row] = tasks.claim(store, owner, ids=[task_id])
    keeper = tasks.LeaseKeeper()
    with keeper.holding(store, [row], owner) as cancelled:
        keeper.renew({task_id: (store, owner, threading.Event())})
        assert not cancelled()
        with store.transaction() as s:  # recovery took it meanwhile
            s.get(Task, task_id).owner = "recoverer:1:recovery"
        flag = threading.Event()
        keeper.renew({task_id: (store, owner, flag)})
        assert flag.is_set()
    assert tasks.finish_task(store, task_id, owner, tasks.DONE) is False
    assert _state(store, task_id) == (tasks.RUNNING, "recoverer:1:recovery")


def test_hand_back_requeues_or_leaves_it_to_recovery(store):
    first, second = _queue(store, 2)
    owner = tasks.owner_id("w1")
    tasks.claim(store, owner, ids=[first, second], limit=2)
    tasks.hand_back(store, first, owner, requeue=True)
    assert _state(store, first) == (tasks.QUEUED, None)
    assert [r.id for r in tasks.claim(store, "other:1:w0", ids=[first])] == [first]
    tasks.hand_back(store, second, owner, requeue=False)
    taken = recovery._take_over(store, "recoverer:1:recovery")
    assert [t.id for t, _ in taken] == [second]
