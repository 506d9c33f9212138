"""Live migration (Nova's live_migrate: conductor's LiveMigrationTask, then the source compute's
live_migration and the destination's pre/post steps), without shared storage.

The request is checked and recorded at once (task_state migrating, a live-migration action, a migration
row ``queued``); the task then picks the destination with the scheduler (the instance's flavor; a host
the operator named is checked by the same filters, as Nova 2.68+; disabled and down hosts, hosts without
room and hosts that break the server group's policy are refused) and takes a move claim there (the
source's allocation held as a migration allocation). One job (instance_live_migrate.yml) prepares the
destination, migrates peer to peer and, on failure, removes what it prepared. Afterwards:

- the domain runs on the destination: the instance points there, the source hold goes, the migration is
  ``completed`` with libvirt's figures (bytes, downtime);
- it still runs on the source: the destination claim goes, the instance is ACTIVE (or PAUSED) there as
  before, the migration ``failed`` (``cancelled`` after an abort, ``error`` when no destination took it)
  and the action's event says why.

When the job's outcome is not clear (a host unreachable mid-way), both hosts are asked where the domain
runs and that decides, as recovery does for a migration whose owner died.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sql_update

from kvmfleet import executor
from kvmfleet.compute import actions, migrations, nics, volume_ops
from kvmfleet.compute.common import (
    Begun,
    begin_in,
    domain_spec,
    finish,
    hosts_inventory,
    new_job,
    run_job,
    status_of,
)
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.network.reconcile import ConvergeFailed
from kvmfleet.scheduler import NoValidHost
from kvmfleet.scheduler.claims import ClaimConflict, Resources, confirm_move, revert_move
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Host, Image, Instance, Migration, Task, utcnow
from kvmfleet.store.states import TaskState, VmState

log = logging.getLogger("kvmfleet.live_migration")

MIGRATE_TASK = "Live-migrate to the destination"
INFO_TASK = "List kvmfleet domains"
ACTIVE_STATES = ("running", "paused", "blocked")
ABORT_WAIT = 60.0  # seconds an abort keeps asking the source until the migration job shows up or ends


def live_migrate(store: Any, key: str, host: str | None = None, project: str | None = None) -> str:
    """`kvmfleet server migrate --live [--host H]`: run as a task owned by this process. Returns the
    status; raises OperationFailed when the instance did not move (it runs on its source as before)."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "live-migration", key, project=project, host=host)


def _flavor_fields(inst: Instance) -> dict[str, Any]:
    return {"flavor_name": inst.flavor_name, "vcpus": inst.vcpus, "memory_mb": inst.memory_mb,
            "root_gb": inst.root_gb, "ephemeral_gb": inst.ephemeral_gb, "swap": inst.swap,
            "flavor_extra_specs": dict(inst.flavor_extra_specs or {})}


def check_target_host(session: Any, inst: Instance, host: str | None, what: str) -> None:
    """A host the operator named must exist and not be the instance's own (Nova: ComputeHostNotFound,
    and 'cannot migrate to the same host')."""
    if inst.host is None:
        raise InvalidRequest(f"cannot {what} server {inst.name}: it has no host (it was never built)")
    if host is None:
        return
    if session.scalars(select(Host).where(Host.name == host)).first() is None:
        raise InvalidRequest(f"Compute host {host} could not be found.")
    if host == inst.host:
        raise InvalidRequest(f"cannot {what} server {inst.name} to host {host}: it is already there")


def describe_target(store: Any, host: str | None) -> str:
    """' to host H (disabled: why; down)' for an error about a destination the operator named."""
    if host is None:
        return ""
    with store.transaction() as session:
        row = session.scalars(select(Host).where(Host.name == host)).first()
        if row is None:
            return f" to host {host}"
        notes = []
        if not row.enabled:
            notes.append(f"disabled: {row.disabled_reason}" if row.disabled_reason else "disabled")
        if row.forced_down:
            notes.append("forced down")
        elif str(row.state) != "up":
            notes.append("down")
    return f" to host {host}" + (f" ({'; '.join(notes)})" if notes else "")


def prepare(session: Any, inst: Instance, *, host: str | None, block_migration: Any = "auto",
            request_id: str | None = None, user_id: str | None = None) -> tuple[Begun, int]:
    """Inside the caller's transaction: check and record the live migration. Returns (begun, migration id).
    block_migration false asks for shared storage, which kvmfleet hosts do not have: refused."""
    if block_migration is False:
        raise InvalidRequest(f"server {inst.name}'s disks are local to its host (no shared storage): a live "
                             "migration copies them, use block_migration true or auto")
    check_target_host(session, inst, host, "live-migrate")
    b = begin_in(session, inst, "live-migration", "conductor_live_migrate_instance", request_id=request_id,
                 user_id=user_id)
    row = migrations.record(session, inst, migrations.LIVE, "queued", dest=host, user_id=user_id)
    return b, row.id


def _set_status(store: Any, migration_id: int, status: str, expected: tuple[str, ...] | None = None,
                **values: Any) -> bool:
    """Compare-and-set the migration's status (an abort may have set `cancelling` meanwhile)."""

    def write(session: Any) -> bool:
        q = sql_update(Migration).where(Migration.id == migration_id)
        if expected is not None:
            q = q.where(Migration.status.in_(expected))
        result = session.execute(q.values(status=status, updated_at=utcnow(), **values)
                                 .execution_options(synchronize_session=False))
        return result.rowcount == 1

    return store.run_in_transaction(write)


def _status(store: Any, migration_id: int) -> str:
    return store.run_in_transaction(lambda session: session.get(Migration, migration_id).status)


def _timeout(settings: Any, inst_fields: dict[str, Any]) -> int:
    """Nova's live_migration_completion_timeout: seconds per GiB of memory and disk copied, 2 GiB at least."""
    gib = inst_fields["memory_mb"] / 1024 + inst_fields["root_gb"] + inst_fields["ephemeral_gb"]
    return math.ceil(settings.live_migration_completion_timeout * max(2.0, gib))


def run(store: Any, b: Begun, migration_id: int, requested: str | None) -> str:
    """The recorded live migration: destination, claim, job, outcome."""
    from kvmfleet.compute.moves import _claim_resize_dest, _resize_candidates

    if not _set_status(store, migration_id, "preparing", ("queued",)):
        return _cancelled(store, b, migration_id, None, "aborted before it started")
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        fields = _flavor_fields(inst)
    source = b.host
    resources = Resources.from_flavor(fields)
    try:
        candidates = _resize_candidates(store, b, fields, force_hosts=[requested] if requested else None)
        dest = _claim_resize_dest(store, b, candidates, resources, [], what="live migration")
    except (ClaimConflict, NoValidHost) as exc:
        message = f"live migration of server {b.name} from {source}{describe_target(store, requested)}: {exc.msg}"
        _set_status(store, migration_id, "error", error=message[:2000])
        finish(store, b, False, {}, error=message)
        raise OperationFailed(message, instance=b.uuid) from exc
    with store.transaction() as session:
        dest_row = session.scalars(select(Host).where(Host.name == dest)).one()
        address = dest_row.address or dest
    if not _set_status(store, migration_id, "running", ("preparing",), dest_compute=dest, dest_node=dest,
                       dest_host=address):
        revert_move(store.session_factory, b.uuid)
        return _cancelled(store, b, migration_id, None, "aborted before it started")
    try:
        nics.prepare_hosts(store, b.uuid, [dest])
    except ConvergeFailed as exc:
        message = f"live migration of server {b.name} from {source} to {dest}: its networks there: {exc}"
        revert_move(store.session_factory, b.uuid)
        _set_status(store, migration_id, "error", error=message[:2000])
        finish(store, b, False, {}, error=message)
        nics.settle_hosts(store, b.uuid, [dest])
        raise OperationFailed(message + f"; it runs on {source} as before", instance=b.uuid) from None
    result = _run_job(store, b, source, dest, address, fields)
    try:
        return _after_job(store, b, migration_id, result, source, dest)
    finally:
        nics.settle_hosts(store, b.uuid, [source, dest])  # the filters and networks the other end no longer needs


def _after_job(store: Any, b: Begun, migration_id: int, result: executor.JobResult, source: str, dest: str) -> str:
    stats = _stats(result, source)
    where = _outcome(store, b, result, source, dest)
    with store.transaction() as session:
        ev = actions.start_event(session, b.action_id, "compute_live_migration", host=source)
    if where == dest:
        _moved(store, b, migration_id, dest, stats, result.id, ev.id)
        volume_ops.moved_with_server(store, b.uuid, source, dest)
        return status_of(store, b.uuid)
    error = result.error_for(source) if not result.host(source).ok else result.error_for(dest)
    error = error or "failed"
    if where is None:
        message = (f"live migration of server {b.name} from {source} to {dest} failed and the domain was found "
                   f"running on neither host: {error}")
        revert_move(store.session_factory, b.uuid)
        _set_status(store, migration_id, "error", error=message[:2000], **stats)
        _finish_event(store, ev.id, False, result.id, message)
        finish(store, b, False, {"vm_state": VmState.ERROR}, result.id, message)
        raise OperationFailed(message, instance=b.uuid)
    revert_move(store.session_factory, b.uuid)
    if _status(store, migration_id) == "cancelling":
        return _cancelled(store, b, migration_id, result, "aborted by request", stats=stats, event_id=ev.id)
    message = f"live migration of server {b.name} from {source} to {dest} failed: {error}"
    _set_status(store, migration_id, "failed", error=message[:2000], **stats)
    _finish_event(store, ev.id, False, result.id, message)
    finish(store, b, False, {}, result.id, message)
    raise OperationFailed(message + f"; it runs on {source} as before", instance=b.uuid)


def _run_job(store: Any, b: Begun, source: str, dest: str, address: str,
             fields: dict[str, Any]) -> executor.JobResult:
    from kvmfleet.config import get_settings

    settings = get_settings()
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        image = session.get(Image, inst.image_id) if inst.image_id else None
        if image is None:
            raise OperationFailed(f"live migration of server {b.name}: its image was deleted, the destination "
                                  "cannot get the base image", instance=b.uuid)
        spec = domain_spec(session, inst, image)
        user_data = {b.uuid: inst.config["user_data"]} if inst.config.get("user_data") is not None else {}
        inv = hosts_inventory(session, [source, dest])
        volumes = volume_ops.migration_volumes(session, b.uuid)
    job = new_job("instance_live_migrate.yml", inv, {
        "kvmfleet_migration": {"source": source, "dest": dest, "dest_address": address,
                               "timeout": _timeout(settings, fields),
                               "bandwidth": settings.live_migration_bandwidth, "instance": spec, **volumes},
        "kvmfleet_user_data": user_data})
    job.secret_vars = ("kvmfleet_user_data",)
    return run_job(job)


def _stats(result: executor.JobResult, source: str) -> dict[str, Any]:
    """libvirt's figures of the job, as the migration row keeps them."""
    tr = result.host(source).task_result(MIGRATE_TASK)
    raw = (tr.result.get("migration") if tr is not None else None) or {}
    out = {column: raw.get(key) for column, key in (
        ("memory_total", "memory_total"), ("memory_processed", "memory_processed"),
        ("memory_remaining", "memory_remaining"), ("disk_total", "disk_total"),
        ("disk_processed", "disk_processed"), ("downtime_ms", "downtime_ms"))}
    if raw.get("disk_total") is not None and raw.get("disk_processed") is not None:
        out["disk_remaining"] = max(int(raw["disk_total"]) - int(raw["disk_processed"]), 0)
    return {k: v for k, v in out.items() if v is not None}


def _outcome(store: Any, b: Begun, result: executor.JobResult, source: str, dest: str) -> str | None:
    """Where the domain runs after the job: dest, source, or None (running nowhere)."""
    tr = result.host(source).task_result(MIGRATE_TASK)
    if (tr is not None and tr.status in (executor.HostStatus.OK, executor.HostStatus.CHANGED)
            and (tr.result.get("domain") or {}).get("host") == "dest"):
        return dest
    if tr is not None and tr.result.get("failed") and tr.result.get("state") in ACTIVE_STATES:
        return source  # the migration failed cleanly: domain_migrate saw it running here afterwards
    return where_running(store, b.uuid, [source, dest], prefer=source)


def where_running(store: Any, uuid: str, hosts: list[str], prefer: str | None = None) -> str | None:
    """Ask the hosts (one domain_info job) which of them runs the instance's domain; a host that does not
    answer counts as running it only when it is `prefer` (the source: never lose track of a guest)."""
    with store.transaction() as session:
        inv = hosts_inventory(session, hosts)
    result = executor.run(executor.Job(playbook="instance_info.yml", inventory=inv, timeout=120))
    answered = []
    for host in hosts:
        tr = result.host(host).task_result(INFO_TASK)
        if tr is None or tr.status not in (executor.HostStatus.OK, executor.HostStatus.CHANGED):
            continue
        answered.append(host)
        for dom in tr.result.get("domains") or []:
            if str(dom.get("uuid") or "").lower() == uuid and dom.get("state") in ACTIVE_STATES:
                return host
    if prefer is not None and prefer not in answered:
        return prefer
    return None


def _finish_event(store: Any, event_id: int, ok: bool, job_id: str | None, error: str | None) -> None:
    store.run_in_transaction(lambda session: actions.finish_event(session, event_id, ok, job_id=job_id, error=error))


def _moved(store: Any, b: Begun, migration_id: int, dest: str, stats: dict[str, Any], job_id: str | None,
           event_id: int) -> None:
    def record(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"host": dest, "node": dest},
                                expected_task_state=TaskState.MIGRATING)

    store.run_in_transaction(record)
    confirm_move(store.session_factory, b.uuid)
    _set_status(store, migration_id, "completed", **stats)
    _finish_event(store, event_id, True, job_id, None)
    b.host = dest
    finish(store, b, True, {}, job_id)


def _cancelled(store: Any, b: Begun, migration_id: int, result: executor.JobResult | None, why: str, *,
               stats: dict[str, Any] | None = None, event_id: int | None = None) -> str:
    """Record the migration cancelled (the server on its source as before) and raise OperationFailed."""
    message = f"live migration of server {b.name} {why}; it runs on {b.host} as before"
    _set_status(store, migration_id, "cancelled", error=message[:2000], **(stats or {}))
    if event_id is not None:
        _finish_event(store, event_id, False, result.id if result else None, message)
    finish(store, b, False, {}, result.id if result else None, message)
    raise OperationFailed(message, instance=b.uuid)


# -- recovery -----------------------------------------------------------------------------------------


def recover(store: Any, b: Begun, migration_id: int) -> str | None:
    """A live migration whose owner died. Returns the host the server is on now (None: running nowhere,
    ERROR)."""
    with store.transaction() as session:
        mig = session.get(Migration, migration_id)
        source, dest, status = mig.source_compute, mig.dest_compute, mig.status
    b.host = source
    with store.transaction() as session:
        ev = actions.start_event(session, b.action_id, "compute_live_migration_recovery", host=source)
    if status in ("queued", "preparing") or dest is None:
        with contextlib.suppress(ClaimConflict):  # a claim taken just before the owner died
            revert_move(store.session_factory, b.uuid)
        message = f"live migration of server {b.name} interrupted before it started; it runs on {source}"
        if dest is not None:
            _remove_copy(store, b.uuid, dest)
        _set_status(store, migration_id, "error", error=message)
        _finish_event(store, ev.id, False, None, message)
        finish(store, b, False, {}, error=message)
        return source
    _abort_once(store, b.uuid, source)
    where = where_running(store, b.uuid, [source, dest], prefer=source)
    if where == dest:
        _moved(store, b, migration_id, dest, {}, None, ev.id)
        return dest
    with contextlib.suppress(ClaimConflict):
        revert_move(store.session_factory, b.uuid)
    if where is None:
        message = f"live migration of server {b.name} interrupted; its domain runs on neither {source} nor {dest}"
        _set_status(store, migration_id, "error", error=message)
        _finish_event(store, ev.id, False, None, message)
        finish(store, b, False, {"vm_state": VmState.ERROR}, error=message)
        return None
    _remove_copy(store, b.uuid, dest)
    message = f"live migration of server {b.name} interrupted; it runs on {source} as before"
    _set_status(store, migration_id, "failed", error=message)
    _finish_event(store, ev.id, False, None, message)
    finish(store, b, False, {}, error=message)
    return source


def _remove_copy(store: Any, uuid: str, host: str) -> None:
    """Remove the instance's domain and disks from a host that does not run it (a destination that was
    prepared for a migration that did not happen)."""
    with store.transaction() as session:
        inv = hosts_inventory(session, [host])
    executor.run(executor.Job(playbook="instance_delete.yml", inventory=inv, timeout=300, extravars={
        "kvmfleet_instances": {host: [{"name": f"kvmfleet-{uuid}", "uuid": uuid}]}}))


def _abort_once(store: Any, uuid: str, host: str) -> bool:
    with store.transaction() as session:
        inv = hosts_inventory(session, [host])
    result = executor.run(executor.Job(playbook="instance_migrate_abort.yml", inventory=inv, timeout=60,
                                       extravars={"kvmfleet_instance": {"name": f"kvmfleet-{uuid}"}}))
    tr = result.host(host).task_result("Abort the outgoing migration")
    return bool(tr is not None and tr.result.get("changed"))


# -- abort --------------------------------------------------------------------------------------------


def abort_job(store: Any, uuid: str, migration_id: int, source: str | None, *, queued: bool) -> threading.Thread:
    """After migrations.abort marked the migration `cancelling`: a task still queued is cancelled here and
    the instance is ACTIVE at once; otherwise the source's libvirt job is aborted (domain_migrate abort),
    asking again until the job shows up or the migration ends, in a thread (returned; the API does not wait
    for it, the CLI does)."""
    if queued and _cancel_queued(store, uuid, migration_id):
        done = threading.Thread(target=lambda: None)
        done.start()
        return done
    thread = threading.Thread(target=_abort_on_host, args=(store, uuid, migration_id, source),
                              name=f"abort-migration-{migration_id}", daemon=True)
    thread.start()
    return thread


def _cancel_queued(store: Any, uuid: str, migration_id: int) -> bool:
    """The migration's task has not started: cancel it, put the instance back. False when it started."""
    from kvmfleet.compute import tasks

    def cancel(session: Any) -> bool:
        row = session.scalars(select(Task).where(
            Task.instance_uuid == uuid, Task.kind == "live-migration", Task.state == tasks.QUEUED)
            .with_for_update()).first()
        if row is None or int((row.params or {}).get("migration_id", -1)) != migration_id:
            return False
        row.state, row.error, row.finished_at = tasks.CANCELLED, "aborted by request", utcnow()
        b = Begun.from_params(uuid, row.params)
        message = f"live migration of server {b.name} aborted before it started; it runs on {b.host} as before"
        store_api.save_instance(session, uuid, {"task_state": None}, expected_task_state=TaskState.MIGRATING)
        actions.finish_event(session, b.event_id, False, error=message)
        actions.finish_action(session, b.action_id, message)
        mig = session.get(Migration, migration_id)
        mig.status, mig.error, mig.updated_at = "cancelled", message, utcnow()
        return True

    return store.run_in_transaction(cancel)


def _abort_on_host(store: Any, uuid: str, migration_id: int, source: str | None) -> None:
    if source is None:
        return
    deadline = time.monotonic() + ABORT_WAIT
    while time.monotonic() < deadline:
        status = _status(store, migration_id)
        if status != "cancelling":
            return  # ended (completed, failed or cancelled) meanwhile
        if _abort_once(store, uuid, source):
            log.info("aborted the live migration %s of %s on %s", migration_id, uuid, source)
            return
        time.sleep(1.0)
    with contextlib.suppress(Exception):
        log.warning("the live migration %s of %s could not be aborted on %s within %ss", migration_id, uuid,
                    source, ABORT_WAIT)
