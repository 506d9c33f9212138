"""Crash recovery: tasks whose owner is gone (a killed `kvmfleet serve`, a killed CLI), decided by Nova's
`_init_instance` rules against what the hosts report (principle 1).

A running task is recoverable when its lease expired, or its owner ran on this machine and that pid is
gone. Whoever recovers first takes it over (compare-and-set on owner and lease), then:

- create: the instance becomes ACTIVE when its host shows its domain running; otherwise ERROR with the
  fault "build interrupted", its claim released, and what any host holds of it removed;
- live migration in progress: the source's libvirt job is aborted, then the host the domain runs on
  decides: the destination (the move is recorded as completed) or the source (claims back, the
  destination's copy removed, the migration failed); running nowhere: ERROR;
- resize or cold migration in progress: rolled back to the source (the destination's copy removed, the old flavor applied
  and the instance started again as it was; claims back on the source);
- delete: resumed; start/stop/reboot/pause/..., confirm/revert, rebuild: retried (requeued for the
  service's workers, or run here) — at most MAX_ATTEMPTS times, then ERROR;
- a queued task of a dead owner needs nothing: any worker runs it.

Every pass also removes the domains hosts keep of instances the store no longer places there (deleted,
or ERROR without a host), so nothing is left on a host without a record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from kvmfleet import executor
from kvmfleet.compute import actions, tasks
from kvmfleet.compute import hosts as hostops
from kvmfleet.compute.common import Begun, open_event
from kvmfleet.scheduler.claims import release_in
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Host, Instance, Task, utcnow
from kvmfleet.store.states import PowerState, TaskState, VmState

log = logging.getLogger("kvmfleet.recovery")

MAX_ATTEMPTS = 3
BUILDING = (TaskState.SCHEDULING, TaskState.SPAWNING)
RESIZING = (TaskState.RESIZE_PREP, TaskState.RESIZE_MIGRATING, TaskState.RESIZE_MIGRATED, TaskState.RESIZE_FINISH)
INFO_TASK = "List kvmfleet domains"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: gone all the same
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def owner_gone(row: Task, now: dt.datetime | None = None) -> bool:
    """Is the running task's owner gone (lease expired, or a dead pid on this machine)?"""
    now = now or utcnow()
    if row.lease_expires_at is None or row.lease_expires_at <= now:
        return True
    host = (row.owner or "").split(":", 1)[0]
    if host != tasks.hostname() or not row.owner_pid:
        return False
    if row.owner_pid == os.getpid():
        return row.id not in {task_id for task_id, _owner in tasks.keeper.held()}
    return not _pid_alive(row.owner_pid)


@dataclass
class Report:
    taken: list[int] = field(default_factory=list)
    active: list[str] = field(default_factory=list)          # builds found running: ACTIVE
    error: list[str] = field(default_factory=list)           # builds interrupted: ERROR
    rolled_back: list[str] = field(default_factory=list)     # resizes back on their source
    retried: list[str] = field(default_factory=list)         # requeued or run again
    gave_up: list[str] = field(default_factory=list)
    reaped: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("taken", "active", "error", "rolled_back", "retried", "gave_up",
                                               "reaped")}

    def __bool__(self) -> bool:
        return bool(self.taken or self.reaped)


def _take_over(store: Any, owner: str) -> list[tuple[tasks.TaskRow, str]]:
    """Every recoverable running task, now ours: [(task, the state its instance was in)]."""
    lease = tasks.lease_seconds()

    def take(session: Any) -> list[tuple[tasks.TaskRow, str]]:
        now = utcnow()
        taken = []
        for row in session.scalars(select(Task).where(Task.state == tasks.RUNNING).order_by(Task.id)
                                   .with_for_update(skip_locked=True)).all():
            if not owner_gone(row, now):
                continue
            result = session.execute(
                update(Task).where(Task.id == row.id, Task.state == tasks.RUNNING,
                                   Task.owner.is_not_distinct_from(row.owner),
                                   Task.lease_expires_at.is_not_distinct_from(row.lease_expires_at))
                .values(owner=owner, owner_pid=os.getpid(), lease_expires_at=now + dt.timedelta(seconds=lease),
                        attempts=Task.attempts + 1).execution_options(synchronize_session=False))
            if result.rowcount != 1:
                continue
            inst = session.get(Instance, row.instance_uuid) if row.instance_uuid else None
            state = "gone" if inst is None or inst.deleted_at is not None else str(inst.task_state or "")
            log.warning("recovering task %s (%s of %s, owner %s)", row.id, row.kind, row.instance_uuid, row.owner)
            taken.append((tasks.TaskRow(row.id, row.kind, row.instance_uuid, row.request_id, row.batch,
                                        dict(row.params or {}), row.attempts + 1), state))
        return taken

    return store.run_in_transaction(take)


def recover(store: Any, *, owner: str | None = None, inline: bool = True, reap: bool = True) -> Report:
    """One recovery pass. `inline`: retried operations run here (the CLI); otherwise they go back to the
    queue for the service's workers."""
    owner = owner or tasks.owner_id("recovery")
    report = Report()
    taken = _take_over(store, owner)
    report.taken = [t.id for t, _ in taken]
    builds = [(t, s) for t, s in taken if t.kind == "create"]
    resizes = [(t, s) for t, s in taken if t.kind in ("resize", "migrate")]
    lives = [(t, s) for t, s in taken if t.kind == "live-migration"]
    others = [(t, s) for t, s in taken if t.kind not in ("create", "resize", "migrate", "live-migration")]
    view = _host_view(store) if builds or reap else None
    for task, state in builds:
        _recover_build(store, task, state, owner, view or {}, report)
    for task, state in resizes:
        _recover_resize(store, task, state, owner, report)
    for task, state in lives:
        _recover_live(store, task, state, owner, report)
    for task, state in others:
        _retry(store, task, state, owner, inline, report)
    if reap and view is not None:
        _reap(store, view, report)
    return report


# -- what the hosts report -------------------------------------------------------------------------


def _host_view(store: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """{host: {uuid: domain}} of every host that answered (one domain_info job over all hosts)."""
    inv_hosts = store.run_in_transaction(lambda session: list(session.scalars(select(Host).order_by(Host.name))))
    if not inv_hosts:
        return {}
    inv = store.run_in_transaction(lambda session: hostops.inventory(
        session.scalars(select(Host).order_by(Host.name)).all()))
    result = executor.run(executor.Job(playbook="instance_info.yml", inventory=inv, timeout=120,
                                       forks=min(50, max(5, len(inv_hosts)))))
    view: dict[str, dict[str, dict[str, Any]]] = {}
    for host in inv_hosts:
        tr = result.host(host.name).task_result(INFO_TASK)
        if tr is None or tr.status not in (executor.HostStatus.OK, executor.HostStatus.CHANGED):
            continue
        doms: dict[str, dict[str, Any]] = {}
        for dom in tr.result.get("domains") or []:
            uuid = str(dom.get("uuid") or (dom.get("metadata") or {}).get("uuid") or "")
            if uuid:
                doms[uuid.lower()] = dom
        view[host.name] = doms
    return view


def _remove(store: Any, where: dict[str, list[str]]) -> dict[str, list[str]]:
    """Remove instances' domains (and disks) from hosts: {host: [uuid]}; returns what went."""
    where = {h: sorted(set(us)) for h, us in where.items() if us}
    if not where:
        return {}
    specs = {h: [{"name": f"kvmfleet-{u}", "uuid": u} for u in us] for h, us in where.items()}
    inv = store.run_in_transaction(lambda session: hostops.inventory(
        session.scalars(select(Host).where(Host.name.in_(list(specs)))).all()))
    result = executor.run(executor.Job(playbook="instance_delete.yml", inventory=inv,
                                       extravars={"kvmfleet_instances": specs}, forks=min(50, max(5, len(specs)))))
    return {h: us for h, us in where.items() if result.host(h).ok}


def _reap(store: Any, view: dict[str, dict[str, dict[str, Any]]], report: Report) -> None:
    """Domains of instances the store no longer places on that host (the refresh's rule, hosts._reapable)."""

    def find(session: Any) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for host, doms in view.items():
            for uuid in doms:
                if hostops._reapable(session.get(Instance, uuid), host):
                    out.setdefault(host, []).append(uuid)
        return out

    for host, uuids in _remove(store, store.run_in_transaction(find)).items():
        report.reaped.setdefault(host, []).extend(uuids)


# -- create ------------------------------------------------------------------------------------------


def _recover_build(store: Any, task: tasks.TaskRow, state: str, owner: str,
                   view: dict[str, dict[str, dict[str, Any]]], report: Report) -> None:
    uuid = task.instance_uuid
    if state not in {str(s) for s in BUILDING}:
        tasks.finish_task(store, task.id, owner, tasks.FAILED, "build interrupted; the server moved on (deleted or "
                                                               "reset) meanwhile")
        return

    def decide(session: Any) -> tuple[str, str | None, list[str]]:
        inst = session.get(Instance, uuid)
        host = inst.host
        dom = view.get(host, {}).get(uuid) if host else None
        elsewhere = [h for h, doms in view.items() if uuid in doms and h != host]
        action = tasks.actions_for(session, uuid, "create")
        if dom is not None and str(dom.get("state")) == "running":
            config = dict(inst.config)
            macs = [n.get("mac") for n in dom.get("nics") or [] if n.get("mac")]
            if macs:
                config["macs"] = macs
            store_api.save_instance(session, uuid, {"vm_state": VmState.ACTIVE, "task_state": None,
                                                    "power_state": PowerState.RUNNING, "launched_at": utcnow(),
                                                    "config": config}, expected_task_state=inst.task_state)
            message = f"build interrupted; its domain was running on {host}: recovered as ACTIVE"
            if action is not None:
                ev = open_event(session, action.id, "compute__do_build_and_run_instance")
                actions.finish_event(session, ev, True, host=host, details={"recovered": True})
                actions.finish_action(session, action.id, message)
            return "active", None, elsewhere
        reason = "build interrupted"
        if host and host not in view:
            reason += f" (host {host} did not answer; host refresh removes what it holds once it does)"
        release_in(session, uuid)
        store_api.save_instance(session, uuid, {"vm_state": VmState.ERROR, "task_state": None, "host": None,
                                                "node": None, "power_state": PowerState.NOSTATE},
                                expected_task_state=inst.task_state)
        store_api.set_fault(session, uuid, reason)
        if action is not None:
            for name in ("schedule_instances", "compute__do_build_and_run_instance"):
                ev = _open_event_or_none(session, action.id, name)
                if ev is not None:
                    actions.finish_event(session, ev, False, error=reason)
            actions.finish_action(session, action.id, reason)
        # Its host may still be finishing the interrupted module: clean it whether or not it shows the domain.
        left = elsewhere + ([host] if host in view else [])
        return "error", reason, left

    try:
        outcome, reason, remnants = store.run_in_transaction(decide)
    except (Conflict, NotFound):
        tasks.finish_task(store, task.id, owner, tasks.FAILED, "build interrupted; the server moved on meanwhile")
        return
    _remove(store, {h: [uuid] for h in remnants})
    if outcome == "active":
        report.active.append(uuid)
        tasks.finish_task(store, task.id, owner, tasks.DONE, "recovered: the domain was running")
    else:
        report.error.append(uuid)
        tasks.finish_task(store, task.id, owner, tasks.FAILED, reason)


def _open_event_or_none(session: Any, action_id: int, name: str) -> int | None:
    from kvmfleet.store.models import InstanceActionEvent

    row = session.scalars(select(InstanceActionEvent).where(
        InstanceActionEvent.action_id == action_id, InstanceActionEvent.event == name,
        InstanceActionEvent.finish_time.is_(None)).order_by(InstanceActionEvent.id.desc())).first()
    return row.id if row is not None else None


# -- resize, and the operations that are simply run again --------------------------------------------


def _recover_resize(store: Any, task: tasks.TaskRow, state: str, owner: str, report: Report) -> None:
    from kvmfleet.compute import moves

    if state not in {str(s) for s in RESIZING}:
        tasks.finish_task(store, task.id, owner, tasks.DONE if state == "" else tasks.FAILED,
                          "resize interrupted after it was recorded as finished" if state == "" else
                          "resize interrupted; the server moved on meanwhile")
        return
    b = Begun.from_params(task.instance_uuid, task.params)
    try:
        with tasks.keeper.holding(store, [task], owner):
            moves.rollback_resize(store, b, "resize interrupted")
    except Exception as exc:  # noqa: BLE001 - the rollback recorded its own fault; the task records why
        tasks.finish_task(store, task.id, owner, tasks.FAILED, f"resize interrupted; rollback failed: {exc}")
        report.error.append(task.instance_uuid)
        return
    tasks.finish_task(store, task.id, owner, tasks.FAILED, "resize interrupted: rolled back to the source")
    report.rolled_back.append(task.instance_uuid)


def _recover_live(store: Any, task: tasks.TaskRow, state: str, owner: str, report: Report) -> None:
    """A live migration whose owner died: its libvirt job (which the source's libvirtd drives on its own)
    is aborted, then where the domain runs decides (kvmfleet.compute.live_migration.recover)."""
    from kvmfleet.compute import live_migration

    if state != str(TaskState.MIGRATING):
        tasks.finish_task(store, task.id, owner, tasks.DONE if state == "" else tasks.FAILED,
                          "live migration interrupted after it was recorded as finished" if state == "" else
                          "live migration interrupted; the server moved on meanwhile")
        return
    b = Begun.from_params(task.instance_uuid, task.params)
    try:
        with tasks.keeper.holding(store, [task], owner):
            where = live_migration.recover(store, b, int(task.params["migration_id"]))
    except Exception as exc:  # noqa: BLE001 - recorded on the task; the instance keeps its fault
        tasks.finish_task(store, task.id, owner, tasks.FAILED, f"live migration interrupted; recovery failed: {exc}")
        report.error.append(task.instance_uuid)
        return
    tasks.finish_task(store, task.id, owner, tasks.FAILED, f"live migration interrupted: the server is on {where}")
    (report.error if where is None else report.rolled_back).append(task.instance_uuid)


def _retry(store: Any, task: tasks.TaskRow, state: str, owner: str, inline: bool, report: Report) -> None:
    if state == "gone" and task.kind != "delete":
        tasks.finish_task(store, task.id, owner, tasks.FAILED, "the server was deleted meanwhile")
        return
    if state == "gone":  # deleted, only the task row was left running
        tasks.finish_task(store, task.id, owner, tasks.DONE, "recovered: the server was already deleted")
        return
    if task.attempts > MAX_ATTEMPTS:
        _give_up(store, task, owner)
        report.gave_up.append(task.instance_uuid)
        return
    report.retried.append(task.instance_uuid)
    if not inline:
        tasks.hand_back(store, task.id, owner, requeue=True)
        tasks._notify()
        return
    with contextlib.suppress(Exception):  # the operation records its own outcome on the instance
        tasks.run_owned(store, [task], owner)


def _give_up(store: Any, task: tasks.TaskRow, owner: str) -> None:
    message = f"{task.kind} interrupted {task.attempts - 1} times; giving up"
    b = Begun.from_params(task.instance_uuid, task.params)

    def record(session: Any) -> None:
        inst = session.get(Instance, b.uuid)
        store_api.save_instance(session, b.uuid, {"vm_state": VmState.ERROR, "task_state": None},
                                expected_task_state=inst.task_state)
        store_api.set_fault(session, b.uuid, message)
        actions.finish_event(session, b.event_id, False, error=message)
        actions.finish_action(session, b.action_id, message)

    with contextlib.suppress(Conflict, NotFound):
        store.run_in_transaction(record)
    tasks.finish_task(store, task.id, owner, tasks.FAILED, message)
