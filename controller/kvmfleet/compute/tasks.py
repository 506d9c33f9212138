"""Durable tasks (principle 8): every operation is a task row, committed in the same transaction as the
instance's task_state, action and first event, before anything touches a host.

Submitting (the API's handlers; the CLI through run_inline)::

    uuids = submit_create(store, req)                  # POST /servers: instances + one task each (batch =
                                                       # the request id), all in one transaction
    uuid = submit(store, "stop", key, project_id=..., user_id=..., request_id=...)   # server actions
    uuid = submit(store, "resize", key, flavor="m1.small"); submit(store, "rebuild", key, image=..., name=...)
    uuid = submit(store, "delete", key)                # any state: queued tasks of the server are
                                                       # cancelled, a running one is waited for

Both validate synchronously and raise what the lifecycle raises (InvalidInstanceState -> 409,
InvalidRequest -> 400, NotFound -> 404, OverQuota, NoValidHostFound). A queued task is run by a worker
of `kvmfleet serve` (kvmfleet.worker); the CLI submits with itself as the owner and runs the task inline
(run_inline), so a killed CLI leaves a running task whose owner is gone, which recovery finishes or rolls
back (kvmfleet.compute.recovery).

A task row: state queued -> running -> done | failed (| cancelled); owner "<hostname>:<pid>:<worker>",
owner_pid, lease_expires_at renewed while it runs (LeaseKeeper, every third of api.task_lease). A task
whose lease could not be renewed (taken over by recovery, cancelled by a delete) has its executor job
cancelled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from kvmfleet.compute import actions
from kvmfleet.compute.common import Begun, begin_in, current_cancel, find_instance, status_of
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.compute.states import OPERATIONS
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Task, utcnow

log = logging.getLogger("kvmfleet.tasks")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
POWER_OPS = ("start", "stop", "reboot", "reboot_hard", "pause", "unpause", "suspend", "resume")
OPS = (*POWER_OPS, "resize", "migrate", "live-migration", "confirmResize", "revertResize", "rebuild", "evacuate",
       "delete", "reset_state")
BATCHED = ("create", "delete")  # tasks of these kinds that arrive together run as one executor job
EVENTS = {"resize": "compute_resize_instance", "migrate": "conductor_migrate_server",
          "live-migration": "conductor_live_migrate_instance", "confirmResize": "compute_confirm_resize",
          "revertResize": "compute_revert_resize", "rebuild": "compute_rebuild_instance",
          "evacuate": "compute_rebuild_instance",
          "delete": "compute_terminate_instance"}
DELETE_WAIT_SECONDS = 1800  # a delete waits this long at most for the task it interrupts


def hostname() -> str:
    return socket.gethostname()


def owner_id(worker: str) -> str:
    return f"{hostname()}:{os.getpid()}:{worker}"


def lease_seconds() -> int:
    from kvmfleet.config import get_settings

    return int(get_settings().api.task_lease)


@dataclass(frozen=True)
class TaskRow:
    """A task as a worker holds it (a snapshot of the row)."""

    id: int
    kind: str
    instance_uuid: str | None
    request_id: str | None
    batch: str | None
    params: dict[str, Any]
    attempts: int = 0

    @classmethod
    def of(cls, row: Task) -> TaskRow:
        return cls(row.id, row.kind, row.instance_uuid, row.request_id, row.batch, dict(row.params or {}),
                   row.attempts)


# -- wake-ups: a submit in this process wakes its workers at once --------------------------------------

_wake = threading.Event()


def wait_for_work(timeout: float) -> None:
    _wake.wait(timeout)
    _wake.clear()


def _notify() -> None:
    _wake.set()


# -- submitting ------------------------------------------------------------------------------------


def _task(session: Any, kind: str, uuid: str | None, request_id: str, batch: str | None, params: dict[str, Any],
          owner: str | None) -> Task:
    now = utcnow()
    row = Task(kind=kind, instance_uuid=uuid, request_id=request_id, batch=batch, params=params,
               state=RUNNING if owner else QUEUED, owner=owner, owner_pid=os.getpid() if owner else None,
               lease_expires_at=now + dt.timedelta(seconds=lease_seconds()) if owner else None,
               attempts=1 if owner else 0, started_at=now if owner else None)
    session.add(row)
    session.flush()
    return row


def submit_create(store: Any, req: Any, *, owner: str | None = None) -> list[str]:
    """Validate a create request (quota and schedulability as `create`), persist its instances
    BUILDING/scheduling with their create actions AND one task each (batch = the request id), all in one
    transaction. Returns the instance uuids; raises what `create` raises, with nothing stored."""
    return submit_create_owned(store, req, owner)[1]


def submit_create_owned(store: Any, req: Any, owner: str | None) -> tuple[list[int], list[str]]:
    from kvmfleet.compute.create import persist_create

    request_id = req.request_id or actions.new_request_id()

    def persist(session: Any) -> tuple[list[int], list[str]]:
        uuids = persist_create(session, req, request_id)
        ids = [_task(session, "create", u, request_id, request_id, {}, owner).id for u in uuids]
        return ids, uuids

    out = store.run_in_transaction(persist)
    if owner is None:
        _notify()
    return out


def _project_id(session: Any, project: str | None, project_id: str | None) -> str | None:
    if project_id:
        return project_id
    return store_api.get_project(session, project).id if project else None


def _record(session: Any, op: str, key: str, *, project_id: str | None, user_id: str | None,
            request_id: str, batch: str | None, owner: str | None, params: dict[str, Any]) -> tuple[Task, bool]:
    """Inside the caller's transaction: check and record the operation on the instance, plus its task.
    Returns (task, new): a delete already under way is returned as it is (new False)."""
    from kvmfleet.compute import moves, power

    if op not in OPS:
        raise InvalidRequest(f"unknown operation {op!r} (known: {', '.join(OPS)})")
    inst = find_instance(session, key, project_id)
    if op in ("resize", "migrate", "evacuate", "rebuild"):
        from kvmfleet.compute.volume_ops import refuse_with_volumes

        refuse_with_volumes(session, inst, op)
    if op == "reset_state":
        power.reset_state_in(session, inst, bool(params.get("active")), request_id, user_id)
        _cancel_others(session, inst.uuid, "superseded by reset-state")
        row = _task(session, op, inst.uuid, request_id, batch, {"active": bool(params.get("active"))}, None)
        row.state, row.finished_at = DONE, utcnow()
        return row, False
    if op == "delete":
        running = [t for t in _open_tasks(session, inst.uuid) if t.kind == "delete"]
        if running:
            return running[0], False  # already being deleted: one delete is enough (Nova answers 204 again)
        after = _cancel_others(session, inst.uuid, "cancelled by a delete")
        b = begin_in(session, inst, "delete", EVENTS["delete"], request_id=request_id, user_id=user_id, check=False)
        task_params = {**b.to_params(), "after": after}
    elif op == "resize":
        b = moves.prepare_resize(session, inst, str(params["flavor"]), request_id=request_id, user_id=user_id)
        task_params = b.to_params()
    elif op == "migrate":
        b = moves.prepare_migrate(session, inst, params.get("host"), request_id=request_id, user_id=user_id)
        task_params = {**b.to_params(), "requested_host": params.get("host")}
    elif op == "live-migration":
        from kvmfleet.compute import live_migration

        b, migration_id = live_migration.prepare(session, inst, host=params.get("host"),
                                                 block_migration=params.get("block_migration", "auto"),
                                                 request_id=request_id, user_id=user_id)
        task_params = {**b.to_params(), "requested_host": params.get("host"), "migration_id": migration_id}
    elif op == "evacuate":
        from kvmfleet.compute import evacuate

        b, migration_id = evacuate.prepare(session, inst, host=params.get("host"), request_id=request_id,
                                           user_id=user_id)
        task_params = {**b.to_params(), "requested_host": params.get("host"), "migration_id": migration_id}
    elif op == "rebuild":
        image = power.rebuild_image(session, inst, params.get("image"))
        name = params.get("name")
        if name is not None:
            from kvmfleet.compute.common import validate_display_name

            validate_display_name(name)
        b = begin_in(session, inst, "rebuild", EVENTS["rebuild"], request_id=request_id, user_id=user_id,
                     extra={"name": name} if name is not None else None)
        b.name = name if name is not None else b.name
        task_params = {**b.to_params(), "image_id": image.id}
    else:
        event = EVENTS.get(op) or f"compute_{OPERATIONS[op].playbook_action}_instance"
        b = begin_in(session, inst, op, event, request_id=request_id, user_id=user_id)
        task_params = b.to_params()
        if op == "stop" and params.get("stop_timeout") is not None:
            task_params["stop_timeout"] = int(params["stop_timeout"])
    return _task(session, op, inst.uuid, request_id, batch, task_params, owner), True


def submit(store: Any, op: str, key: str, *, project_id: str | None = None, project: str | None = None,
           user_id: str | None = None, request_id: str | None = None, owner: str | None = None,
           **params: Any) -> str:
    """Check the instance's state now (InvalidInstanceState when the operation is not allowed) and record
    task_state + action + event + a task row in one committed transaction. Returns the instance uuid.
    `key` is a uuid or a name, looked up within `project_id` (or the project named `project`) when given.
    params: stop_timeout (stop), flavor (resize), image and name (rebuild), active (reset_state), host
    (migrate, live-migration: a destination the scheduler checks), block_migration (live-migration)."""
    return _submit_many(store, op, [key], project_id=project_id, project=project, user_id=user_id,
                        request_id=request_id, owner=owner, params=params)[0][1]


def _submit_many(store: Any, op: str, keys: list[str], *, project_id: str | None, project: str | None,
                 user_id: str | None, request_id: str | None, owner: str | None,
                 params: dict[str, Any]) -> list[tuple[int, str, bool]]:
    """Record the operation on every key in one transaction; [(task id, uuid, ours)] (ours: a new task)."""
    request_id = request_id or actions.new_request_id()
    batch = request_id if len(keys) > 1 else None

    def record(session: Any) -> list[tuple[int, str, bool]]:
        pid = _project_id(session, project, project_id)
        out = []
        for key in keys:
            row, new = _record(session, op, key, project_id=pid, user_id=user_id, request_id=request_id,
                               batch=batch, owner=owner, params=params)
            out.append((row.id, row.instance_uuid, new))
        return out

    out = store.run_in_transaction(record)
    if owner is None:
        _notify()
    return out


def _open_tasks(session: Any, uuid: str) -> list[Task]:
    return list(session.scalars(select(Task).where(Task.instance_uuid == uuid, Task.state.in_((QUEUED, RUNNING)))
                                .order_by(Task.id)).all())


def _cancel_others(session: Any, uuid: str, why: str) -> list[int]:
    """Queued tasks of the instance are cancelled; returns the ids of the running ones (to wait for)."""
    running = []
    for task in _open_tasks(session, uuid):
        if task.state == QUEUED:
            task.state, task.error, task.finished_at = CANCELLED, why, utcnow()
            if task.kind == "create":
                action = actions_for(session, uuid, "create")
                if action is not None:
                    actions.finish_action(session, action.id, "deleted before it was built")
        else:
            running.append(task.id)
    return running


def actions_for(session: Any, uuid: str, name: str) -> Any:
    from kvmfleet.store.models import InstanceAction

    return session.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == uuid,
                                                        InstanceAction.action == name)
                           .order_by(InstanceAction.id.desc())).first()


# -- claiming ----------------------------------------------------------------------------------------


def claim(store: Any, owner: str, *, kind: str | None = None, limit: int = 1,
          ids: list[int] | None = None) -> list[TaskRow]:
    """Take up to `limit` queued tasks (oldest first; of `kind`, or with these `ids`): state running, owned
    by `owner`, with a lease. SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL, so two services never take
    the same task; SQLite's BEGIN IMMEDIATE serialises the same select-and-update."""
    lease = lease_seconds()

    def take(session: Any) -> list[TaskRow]:
        query = select(Task).where(Task.state == QUEUED)
        if kind is not None:
            query = query.where(Task.kind == kind)
        if ids is not None:
            query = query.where(Task.id.in_(ids))
        rows = session.scalars(query.order_by(Task.created_at, Task.id).limit(limit)
                               .with_for_update(skip_locked=True)).all()
        now = utcnow()
        for row in rows:
            row.state, row.owner, row.owner_pid = RUNNING, owner, os.getpid()
            row.lease_expires_at = now + dt.timedelta(seconds=lease)
            row.started_at, row.attempts = now, (row.attempts or 0) + 1
        session.flush()
        return [TaskRow.of(r) for r in rows]

    return store.run_in_transaction(take)


def queued_count(store: Any, kind: str | None = None) -> int:
    def count(session: Any) -> int:
        query = select(func.count()).select_from(Task).where(Task.state == QUEUED)
        if kind is not None:
            query = query.where(Task.kind == kind)
        return int(session.scalar(query) or 0)

    return store.run_in_transaction(count)


def oldest_queued(store: Any) -> TaskRow | None:
    def peek(session: Any) -> TaskRow | None:
        row = session.scalars(select(Task).where(Task.state == QUEUED).order_by(Task.created_at, Task.id)
                              .limit(1)).first()
        return TaskRow.of(row) if row is not None else None

    return store.run_in_transaction(peek)


def finish_task(store: Any, task_id: int, owner: str, state: str, error: str | None = None) -> bool:
    """Record the outcome, if the task is still ours (False when recovery or a delete took it)."""

    def record(session: Any) -> bool:
        result = session.execute(update(Task).where(Task.id == task_id, Task.owner == owner, Task.state == RUNNING)
                                 .values(state=state, error=(error or None) and error[:2000], finished_at=utcnow(),
                                         lease_expires_at=None).execution_options(synchronize_session=False))
        return result.rowcount == 1

    return store.run_in_transaction(record)


def hand_back(store: Any, task_id: int, owner: str, *, requeue: bool) -> None:
    """Give a task up: back to the queue (nothing touched a host yet), or left running with its lease
    expired now so that recovery applies its rules at once."""
    values: dict[str, Any] = {"lease_expires_at": utcnow()}
    if requeue:
        values.update(state=QUEUED, owner=None, owner_pid=None, lease_expires_at=None, started_at=None)
    store.run_in_transaction(lambda session: session.execute(
        update(Task).where(Task.id == task_id, Task.owner == owner, Task.state == RUNNING).values(**values)
        .execution_options(synchronize_session=False)))


# -- leases ------------------------------------------------------------------------------------------


class LeaseKeeper:
    """Renews the leases of every task this process runs; a task that is no longer ours (taken over,
    cancelled) gets its cancel flag set, which cancels its executor job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Any, str, threading.Event]] = {}
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # set at shutdown past the grace period: every job is cancelled

    @contextlib.contextmanager
    def holding(self, store: Any, rows: list[TaskRow], owner: str) -> Iterator[Callable[[], bool]]:
        flag = threading.Event()
        with self._lock:
            for row in rows:
                self._held[row.id] = (store, owner, flag)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="kvmfleet-lease", daemon=True)
                self._thread.start()
        try:
            yield lambda: flag.is_set() or self.stopping.is_set()
        finally:
            with self._lock:
                for row in rows:
                    self._held.pop(row.id, None)

    def held(self) -> list[tuple[int, str]]:
        with self._lock:
            return [(task_id, owner) for task_id, (_s, owner, _f) in self._held.items()]

    def _run(self) -> None:
        while True:
            time.sleep(max(1.0, lease_seconds() / 3))
            with self._lock:
                held = dict(self._held)
            if not held:
                continue
            try:
                self.renew(held)
            except Exception:
                log.warning("task lease renewal failed; retrying", exc_info=True)

    def renew(self, held: dict[int, tuple[Any, str, threading.Event]]) -> None:
        by_store: dict[int, tuple[Any, list[int]]] = {}
        for task_id, (store, _owner, _flag) in held.items():
            by_store.setdefault(id(store), (store, []))[1].append(task_id)
        until = utcnow() + dt.timedelta(seconds=lease_seconds())
        for store, task_ids in by_store.values():
            def renew(session: Any, task_ids: list[int] = task_ids) -> set[int]:
                kept = set()
                for row in session.scalars(select(Task).where(Task.id.in_(task_ids))).all():
                    if row.state == RUNNING and row.owner == held[row.id][1]:
                        row.lease_expires_at = until
                        kept.add(row.id)
                return kept

            kept = store.run_in_transaction(renew)
            for task_id in task_ids:
                if task_id not in kept:
                    log.warning("task %s is no longer ours (taken over or cancelled): cancelling its job", task_id)
                    held[task_id][2].set()


keeper = LeaseKeeper()


# -- running -----------------------------------------------------------------------------------------


def execute(store: Any, rows: list[TaskRow], progress: Any = None) -> Any:
    """Run claimed tasks of one kind (several only for create and delete). Returns the runner's result:
    {uuid: status} for create, {uuid: error} for delete, the new status otherwise. Raises what the
    operation raises (OperationFailed: the fault is recorded on the instance)."""
    from kvmfleet.compute import build, moves, power

    kind = rows[0].kind
    if kind == "create":
        return build.build(store, [r.instance_uuid for r in rows if r.instance_uuid], progress=progress,
                           cancel=current_cancel.get())
    begun = [Begun.from_params(r.instance_uuid, r.params) for r in rows]
    if kind == "delete":
        _wait_for(store, sorted({i for r in rows for i in r.params.get("after") or []}))
        return power.run_delete(store, begun)
    (row,), (b,) = rows, begun
    if kind in POWER_OPS:
        return power.run_power(store, b, stop_timeout=int(row.params.get("stop_timeout", 60)))
    if kind == "resize":
        return moves.run_resize(store, b)
    if kind == "migrate":
        return moves.run_resize(store, b, migrate=True, requested=row.params.get("requested_host"))
    if kind == "live-migration":
        from kvmfleet.compute import live_migration

        return live_migration.run(store, b, int(row.params["migration_id"]), row.params.get("requested_host"))
    if kind == "confirmResize":
        return moves.run_confirm(store, b)
    if kind == "revertResize":
        return moves.run_revert(store, b)
    if kind == "rebuild":
        return power.run_rebuild(store, b, row.params["image_id"])
    if kind == "evacuate":
        from kvmfleet.compute import evacuate

        return evacuate.run(store, b, int(row.params["migration_id"]), row.params.get("requested_host"))
    raise InvalidRequest(f"task {row.id}: unknown kind {kind!r}")


def _wait_for(store: Any, task_ids: list[int]) -> None:
    """A delete waits for the task it interrupts (a build under way) to end; a task whose owner is gone is
    ended here ("superseded by a delete"), as recovery would."""
    from kvmfleet.compute.recovery import owner_gone

    if not task_ids:
        return
    cancel = current_cancel.get()
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while time.monotonic() < deadline and not (cancel and cancel()):
        def check(session: Any) -> int:
            left = 0
            for row in session.scalars(select(Task).where(Task.id.in_(task_ids), Task.state == RUNNING)).all():
                if owner_gone(row):
                    row.state, row.error, row.finished_at = FAILED, "superseded by a delete", utcnow()
                    row.lease_expires_at = None
                else:
                    left += 1
            return left

        if not store.run_in_transaction(check):
            return
        time.sleep(1.0)


def run_owned(store: Any, rows: list[TaskRow], owner: str, *, progress: Any = None) -> Any:
    """Run tasks this process owns, keep their leases while they run, and record their outcome. An error
    the operation recorded (OperationFailed) fails the task and is raised; anything unexpected leaves the
    task to recovery (lease expired now) and is raised."""
    with keeper.holding(store, rows, owner) as cancel:
        token = current_cancel.set(cancel)
        try:
            result = execute(store, rows, progress)
        except OperationFailed as exc:
            for row in rows:
                finish_task(store, row.id, owner, FAILED, exc.msg)
            raise
        except Exception as exc:
            from kvmfleet.compute.errors import ComputeError
            from kvmfleet.store.errors import StoreError

            for row in rows:
                with contextlib.suppress(Exception):
                    if isinstance(exc, (ComputeError, StoreError)):
                        finish_task(store, row.id, owner, FAILED, str(exc))
                    else:
                        hand_back(store, row.id, owner, requeue=False)
            raise
        finally:
            current_cancel.reset(token)
    for row in rows:
        state, error = _outcome(row, result)
        finish_task(store, row.id, owner, state, error)
    return result


def _outcome(row: TaskRow, result: Any) -> tuple[str, str | None]:
    if row.kind == "create":
        status = (result or {}).get(row.instance_uuid)
        return (DONE, None) if status == "ACTIVE" else (FAILED, f"build ended {status}")
    if row.kind == "delete":
        error = (result or {}).get(row.instance_uuid)
        return (FAILED, error) if error else (DONE, None)
    return DONE, None


def run_inline(store: Any, op: str, key: str, *, project: str | None = None, **params: Any) -> str:
    """The CLI's way: submit with this process as the owner, run it here, return the new status."""
    owner = owner_id("cli")
    [(task_id, uuid, ours)] = _submit_many(store, op, [key], project_id=None, project=project, user_id=None,
                                           request_id=None, owner=owner, params=params)
    if op == "reset_state" or not ours:
        return status_of(store, uuid)
    rows = rows_of(store, [task_id])
    run_owned(store, rows, owner)
    return status_of(store, uuid)


def run_inline_many(store: Any, op: str, keys: list[str], *, project: str | None = None) -> list[str]:
    """Several servers at once (delete): one batch, one executor job. Returns the errors."""
    owner = owner_id("cli")
    submitted = _submit_many(store, op, keys, project_id=None, project=project, user_id=None, request_id=None,
                             owner=owner, params={})
    rows = rows_of(store, [task_id for task_id, _uuid, ours in submitted if ours])
    if not rows:
        return []
    result = run_owned(store, rows, owner)
    return [error for error in (result or {}).values() if error]


def create_inline(store: Any, req: Any, progress: Any = None) -> tuple[list[str], dict[str, str]]:
    """`server create --wait`: submit owned by this process, build here. Returns (uuids, statuses)."""
    owner = owner_id("cli")
    ids, uuids = submit_create_owned(store, req, owner)
    return uuids, run_owned(store, rows_of(store, ids), owner, progress=progress)


def build_queued(store: Any, uuids: list[str]) -> dict[str, str]:
    """`server create` without --wait hands its queued tasks to a detached process: it takes those still
    queued (a service may have taken them already) and builds them."""
    owner = owner_id("cli")

    def ids_of(session: Any) -> list[int]:
        return list(session.scalars(select(Task.id).where(Task.instance_uuid.in_(uuids), Task.kind == "create",
                                                          Task.state == QUEUED)).all())

    rows = claim(store, owner, ids=store.run_in_transaction(ids_of), limit=len(uuids))
    if not rows:
        return {}
    return run_owned(store, rows, owner)


def rows_of(store: Any, ids: list[int]) -> list[TaskRow]:
    def read(session: Any) -> list[TaskRow]:
        return [TaskRow.of(r) for r in session.scalars(select(Task).where(Task.id.in_(ids)).order_by(Task.id)).all()]

    return store.run_in_transaction(read)


def instance_tasks(store: Any, uuid: str) -> list[dict[str, Any]]:
    """The tasks recorded for an instance, oldest first (for tests and `server events`)."""

    def read(session: Any) -> list[dict[str, Any]]:
        return [{"id": t.id, "kind": t.kind, "state": t.state, "owner": t.owner, "attempts": t.attempts,
                 "error": t.error, "batch": t.batch}
                for t in session.scalars(select(Task).where(Task.instance_uuid == uuid).order_by(Task.id)).all()]

    return store.run_in_transaction(read)


__all__ = ["BATCHED", "OPS", "TaskRow", "claim", "create_inline", "execute", "finish_task", "hand_back", "keeper",
           "owner_id", "run_inline", "run_inline_many", "run_owned", "submit", "submit_create"]
