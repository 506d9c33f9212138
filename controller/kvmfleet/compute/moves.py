"""Cold resize (in place or to another host), confirm and revert."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import select

from kvmfleet import executor, quota
from kvmfleet.compute import actions, migrations, nics, placement
from kvmfleet.compute.common import (
    Begun,
    begin_in,
    domain_spec,
    fail_op,
    finish,
    hosts_inventory,
    new_job,
    run_job,
    run_on_host,
    status_of,
)
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.compute.states import OPERATIONS, Operation
from kvmfleet.network.reconcile import ConvergeFailed
from kvmfleet.scheduler import NoValidHost
from kvmfleet.scheduler.claims import (
    ClaimConflict,
    InsufficientResources,
    Resources,
    move_claim,
    revert_move,
)
from kvmfleet.scheduler.claims import confirm_move as confirm_move_claim
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Allocation, Host, Image, Instance, ServerGroup
from kvmfleet.store.states import AllocationKind, PowerState, TaskState, VmState

# -- resize ---------------------------------------------------------------------------------------


ROOT_DISK_FILE = "disk"  # the domain module's names for an instance's disks in its instance dir
EPHEMERAL_DISK_FILE = "disk.eph0"


def _resize_disks(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The instance's disks a resize carries, each with the size it grows to ({file, size_gb?})."""
    disks: list[dict[str, Any]] = [{"file": ROOT_DISK_FILE}]
    if new["root_gb"] and new["root_gb"] > old["root_gb"]:
        disks[0]["size_gb"] = new["root_gb"]
    if old["ephemeral_gb"]:
        disks.append({"file": EPHEMERAL_DISK_FILE})
        if new["ephemeral_gb"] > old["ephemeral_gb"]:
            disks[1]["size_gb"] = new["ephemeral_gb"]
    return disks


def resize(store: Any, key: str, flavor_key: str, project: str | None = None) -> str:
    """Cold resize (Nova's resize): stop, new flavor, grow the disks, start again (if it was running), then
    VERIFY_RESIZE until confirm or revert. The same host is kept when the new flavor fits there: the disks
    grow in place and each grown disk's original is kept beside it for a revert. Otherwise the scheduler
    picks another host (server group policy honoured) and the instance moves there in one job
    (instance_resize.yml: stop on the source, define on the destination, copy the root and ephemeral disks
    there, start); a destination that fails is cleaned up and the next alternate tried (bounded by the
    scheduler's max_attempts). The old allocation stays held on the source as a migration allocation until
    confirm. Disks never shrink, and a resize does not add an ephemeral disk the server does not have.
    Runs as a task owned by this process (kvmfleet.compute.tasks)."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "resize", key, project=project, flavor=flavor_key)


def prepare_resize(session: Any, inst: Instance, flavor_key: str, *, request_id: str | None = None,
                   user_id: str | None = None) -> Begun:
    """Inside the caller's transaction: check the new flavor, the state and quota, then record the resize
    (old and new flavor on the instance, task_state resize_prep, action and event)."""
    new = store_api.get_flavor(session, flavor_key)
    if new.id == inst.flavor_id:
        raise InvalidRequest(f"server {inst.name} already has flavor {new.name}")
    if new.disabled:
        raise InvalidRequest(f"flavor {new.name} is disabled")
    for what, have, want in (("root", inst.root_gb, new.root_gb),
                             ("ephemeral", inst.ephemeral_gb, new.ephemeral_gb)):
        if want < have:
            raise InvalidRequest(f"flavor {new.name}'s {want} GB {what} disk is smaller than the server's "
                                 f"{have} GB (disks cannot shrink)")
    if new.ephemeral_gb and not inst.ephemeral_gb:
        raise InvalidRequest(f"flavor {new.name} has a {new.ephemeral_gb} GB ephemeral disk and server "
                             f"{inst.name} has none: a resize grows the disks a server has, it adds none")
    OPERATIONS["resize"].check(inst.vm_state, inst.task_state, inst.name)
    deltas = {"cores": max(new.vcpus - inst.vcpus, 0), "ram": max(new.memory_mb - inst.memory_mb, 0)}
    quota.check(session, inst.project_id, deltas)
    old = {"flavor_id": inst.flavor_id, "flavor_name": inst.flavor_name, "vcpus": inst.vcpus,
           "memory_mb": inst.memory_mb, "root_gb": inst.root_gb, "ephemeral_gb": inst.ephemeral_gb,
           "swap": inst.swap, "flavor_extra_specs": dict(inst.flavor_extra_specs or {}),
           "vm_state": str(inst.vm_state), "source_host": inst.host}
    new_fields = new.as_instance_fields()
    grow = [d for d in _resize_disks(old, new_fields) if "size_gb" in d]
    migrations.record(session, inst, migrations.RESIZE, "pre-migrating", new_flavor_id=new.id, user_id=user_id)
    # grown_in_place is read only after an in-place resize: a move leaves the source's disks as they were.
    return begin_in(session, inst, "resize", "compute_resize_instance", request_id=request_id, user_id=user_id,
                    extra={"old_flavor": {**old, "grown_in_place": [d["file"] for d in grow]},
                           "new_flavor": new_fields})


def migrate(store: Any, key: str, host: str | None = None, project: str | None = None) -> str:
    """Cold migration (Nova's migrate): a resize to the same flavor that always moves to another host (the
    scheduler's choice, or `host`, checked by the same filters), then VERIFY_RESIZE until confirm or revert."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "migrate", key, project=project, host=host)


def prepare_migrate(session: Any, inst: Instance, host: str | None, *, request_id: str | None = None,
                    user_id: str | None = None) -> Begun:
    """Inside the caller's transaction: check and record a cold migration (old and new flavor the same)."""
    from kvmfleet.compute.live_migration import check_target_host

    OPERATIONS["migrate"].check(inst.vm_state, inst.task_state, inst.name)
    check_target_host(session, inst, host, "migrate")
    fields = {"flavor_id": inst.flavor_id, "flavor_name": inst.flavor_name, "vcpus": inst.vcpus,
              "memory_mb": inst.memory_mb, "root_gb": inst.root_gb, "ephemeral_gb": inst.ephemeral_gb,
              "swap": inst.swap, "flavor_extra_specs": dict(inst.flavor_extra_specs or {})}
    old = {**fields, "vm_state": str(inst.vm_state), "source_host": inst.host, "grown_in_place": []}
    migrations.record(session, inst, migrations.COLD, "pre-migrating", dest=host, user_id=user_id)
    return begin_in(session, inst, "migrate", "conductor_migrate_server", request_id=request_id, user_id=user_id,
                    extra={"old_flavor": old, "new_flavor": fields})


def _move_status(store: Any, uuid: str, status: str, **values: Any) -> None:
    """Set the status of the instance's resize or cold migration in progress (its migration row)."""

    def write(session: Any) -> None:
        for row in migrations.in_progress(session, uuid):
            if row.migration_type in (migrations.RESIZE, migrations.COLD):
                row.status = status
                for key, value in values.items():
                    setattr(row, key, value)

    store.run_in_transaction(write)


def run_resize(store: Any, b: Begun, *, migrate: bool = False, requested: str | None = None) -> str:
    """The recorded resize: claim (in place or on another host), run the job, VERIFY_RESIZE. `migrate`: a
    cold migration, always to another host (`requested`, when the operator named one)."""
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        old = {k: v for k, v in (inst.old_flavor or {}).items() if k != "grown_in_place"}
        new_fields = dict(inst.new_flavor or {})
    disks = _resize_disks(old, new_fields)
    grow = [d for d in disks if "size_gb" in d]
    source = b.host
    resources = Resources.from_flavor(new_fields)
    alternates: list[str] = []
    try:
        if source is None:
            raise ClaimConflict(f"server {b.name} has no host (it was never built)")
        if migrate:
            alternates = _resize_candidates(store, b, new_fields, force_hosts=[requested] if requested else None)
            dest = _claim_resize_dest(store, b, alternates, resources, [], what="migration")
        else:
            try:
                move_claim(store.session_factory, b.uuid, source, resources)
                dest = source
            except InsufficientResources as exc:
                refused = [f"{source}: {exc.msg}"]
                alternates = _resize_candidates(store, b, new_fields)
                dest = _claim_resize_dest(store, b, alternates, resources, refused)
    except (ClaimConflict, NoValidHost) as exc:
        from kvmfleet.compute.live_migration import describe_target

        message = (f"migration of server {b.name} from {source}{describe_target(store, requested)}: {exc.msg}"
                   if migrate
                   else f"resize of server {b.name} to {new_fields['flavor_name']}: {exc.msg}")
        _move_status(store, b.uuid, "error")
        finish(store, b, False, {"old_flavor": None, "new_flavor": None}, error=message)
        raise OperationFailed(message) from exc
    _move_status(store, b.uuid, "migrating", dest_compute=dest, dest_node=dest)
    with store.transaction() as session:
        store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_MIGRATING},
                                expected_task_state=TaskState.RESIZE_PREP)
    b.op = Operation(b.op.action, None, TaskState.RESIZE_MIGRATING, None, None)
    start = b.vm_state is VmState.ACTIVE
    if dest == source:
        result = run_on_host(store, b, "instance_resize.yml", {
            "kvmfleet_start": start,
            "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid,
                                             "vcpus": new_fields["vcpus"], "memory_mb": new_fields["memory_mb"],
                                             "grow": grow}]}})
        if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            revert_move(store.session_factory, b.uuid)
            _move_status(store, b.uuid, "error")
            try:
                fail_op(store, b, result, "resize")
            finally:
                with store.transaction() as session:
                    store_api.save_instance(session, b.uuid, {"old_flavor": None, "new_flavor": None})
    else:
        failures: list[str] = []  # "<host>: <error>" of each destination that failed, in order
        max_attempts = placement.make_scheduler().config.max_attempts
        while True:
            try:
                result = _migrate(store, b, source, dest, new_fields, disks, start, failures,
                                  final=len(failures) + 1 >= max_attempts or not alternates)
                break
            except _DestinationFailed as exc:
                failures.append(exc.msg)
                dest = _claim_resize_dest(store, b, alternates, resources, list(failures), failed=True,
                                          what="migration" if migrate else "resize")
    power = PowerState.RUNNING if start else PowerState.SHUTDOWN
    _move_status(store, b.uuid, "finished")
    finish(store, b, True, {"vm_state": VmState.RESIZED, "power_state": power, **new_fields}, result.id)
    return status_of(store, b.uuid)


class _DestinationFailed(OperationFailed):
    """A resize move failed on its destination, which cleaned up after itself: another may be tried."""


def _resize_candidates(store: Any, b: Begun, new_fields: dict[str, Any],
                       force_hosts: list[str] | None = None) -> list[str]:
    """The new flavor does not fit on the source: the scheduler's hosts for it, best first (same filters as a
    build, server group policy honoured, the moving instance not counted as a member, the source left out;
    only `force_hosts` when given: a host an operator named is checked all the same). Also the destinations
    of a migration (new_fields: the instance's own flavor). NoValidHost when there is none."""
    scheduler = placement.make_scheduler()
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        image = session.get(Image, inst.image_id) if inst.image_id else None
        group = session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None
        flavor = {"name": new_fields["flavor_name"], "vcpus": new_fields["vcpus"],
                  "memory_mb": new_fields["memory_mb"], "root_gb": new_fields["root_gb"],
                  "ephemeral_gb": new_fields["ephemeral_gb"], "swap": new_fields["swap"],
                  "extra_specs": dict(new_fields.get("flavor_extra_specs") or {})}
        spec = placement.request_spec(session, flavor, image, availability_zone=inst.availability_zone,
                                      project_id=inst.project_id, group=group, exclude_members=[b.uuid],
                                      ignore_hosts=[b.host] if b.host else [], force_hosts=force_hosts)
        states = placement.host_states(session)
    if image is None:
        raise NoValidHost("the instance's image was deleted: it cannot be rebuilt on another host")
    sel = scheduler.select_destinations(spec, states, alternates=scheduler.config.max_attempts - 1)[0]
    return [sel.name] + [a.name for a in sel.alternates]


def _claim_resize_dest(store: Any, b: Begun, candidates: list[str], resources: Resources, refused: list[str],
                       failed: bool = False, what: str = "resize") -> str:
    """Move-claim on the first candidate that takes it (consumed from `candidates`); NoValidHost naming why
    each host was refused when none does. `failed`: a retry after destinations failed (named in `refused`):
    when no candidate is left the instance is ERROR on its source and OperationFailed is raised."""
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        group = session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None
    while candidates:
        host = candidates.pop(0)
        if host == b.host:
            continue
        with store.transaction() as session:
            why = placement.violates_group(session, group, b.uuid, host)
        if why:
            refused.append(f"{host}: {why}")
            continue
        try:
            move_claim(store.session_factory, b.uuid, host, resources)
            return host
        except ClaimConflict as exc:
            refused.append(f"{host}: {exc.msg}")
    if failed:
        message = f"{what} of server {b.name} failed on every destination tried: " + "; ".join(refused)
        _move_status(store, b.uuid, "error")
        finish(store, b, False, {"vm_state": VmState.ERROR, "old_flavor": None, "new_flavor": None},
                error=message)
        raise OperationFailed(message, instance=b.uuid)
    raise NoValidHost(f"No valid host was found for the {what}: " + "; ".join(refused))


def _migrate(store: Any, b: Begun, source: str, dest: str, new_fields: dict[str, Any],
             disks: list[dict[str, Any]], start: bool, failures: list[str], final: bool) -> executor.JobResult:
    """One instance_resize.yml job moving the instance from source to dest with the new flavor. On success
    the instance points at dest (task resize_migrated, then resize_finish). On failure the destination
    claim is dropped; a failure on the destination (which removed what it made) raises _DestinationFailed
    unless `final`; otherwise the instance is ERROR with the fault on its source and OperationFailed is
    raised."""
    import shutil

    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        image = session.get(Image, inst.image_id)
        spec = domain_spec(session, inst, image)
        spec.update({"vcpus": new_fields["vcpus"], "memory_mb": new_fields["memory_mb"],
                     "disks": [{"size_gb": new_fields["ephemeral_gb"]}] if new_fields["ephemeral_gb"] else []})
        spec["metadata"]["flavor"] = new_fields["flavor_name"]
        if new_fields["root_gb"]:
            spec["root_disk"]["size_gb"] = new_fields["root_gb"]
        user_data = {b.uuid: inst.config["user_data"]} if inst.config.get("user_data") is not None else {}
        inv = hosts_inventory(session, [source, dest])
    from kvmfleet.config import get_settings

    job = new_job("instance_resize.yml", inv)
    transfer = executor.jobs_dir() / job.id / "transfer"
    job.extravars.update({
        "kvmfleet_instances": {},
        "kvmfleet_migration": {"source": source, "dest": dest, "transfer_dir": str(transfer), "start": start,
                               "instance": spec, "disks": disks, "transfer": get_settings().resize_transfer},
        "kvmfleet_user_data": user_data})
    job.secret_vars = ("kvmfleet_user_data",)
    try:
        nics.prepare_hosts(store, b.uuid, [dest])
    except ConvergeFailed as exc:
        revert_move(store.session_factory, b.uuid)
        nics.settle_hosts(store, b.uuid, [dest])
        if not final:
            raise _DestinationFailed(f"{dest}: its networks: {exc}", instance=b.uuid) from None
        message = f"resize of server {b.name} from {source} to {dest} failed on {dest}: its networks: {exc}"
        _move_status(store, b.uuid, "error")
        finish(store, b, False, {"vm_state": VmState.ERROR, "old_flavor": None, "new_flavor": None}, None,
               message)
        raise OperationFailed(message, instance=b.uuid) from None
    try:
        result = run_job(job)
    finally:
        shutil.rmtree(transfer, ignore_errors=True)  # copies of the guest's disks: never kept
    failed_on = next((h for h in (source, dest) if not result.host(h).ok), None)
    if failed_on is None and result.status is executor.JobStatus.SUCCESSFUL:
        with store.transaction() as session:
            store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_MIGRATED, "host": dest,
                                                      "node": dest}, expected_task_state=TaskState.RESIZE_MIGRATING)
            store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_FINISH},
                                    expected_task_state=TaskState.RESIZE_MIGRATED)
        b.host = dest
        b.op = Operation(b.op.action, None, TaskState.RESIZE_FINISH, None, None)
        return result
    where = failed_on or dest
    error = result.error_for(where) or "failed"
    message = f"resize of server {b.name} from {source} to {dest} failed on {where}: {error}"
    if failures:
        message += f" (destinations that failed before: {'; '.join(failures)})"
    revert_move(store.session_factory, b.uuid)
    with store.transaction() as session:
        ev = actions.start_event(session, b.action_id, "compute_finish_resize", host=dest)
        actions.finish_event(session, ev.id, False, job_id=result.id, error=message)
    if where == dest and not final:  # an unreachable destination's leftovers are reaped by host refresh
        raise _DestinationFailed(f"{dest}: {error}", instance=b.uuid)
    _move_status(store, b.uuid, "error")
    finish(store, b, False, {"vm_state": VmState.ERROR, "old_flavor": None, "new_flavor": None}, result.id,
            message)
    raise OperationFailed(message, instance=b.uuid)


def confirm_resize(store: Any, key: str, project: str | None = None) -> str:
    """Keep the new flavor: after a move, the source domain and its disks go, then the source hold; after an
    in-place resize, the originals kept for a revert go."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "confirmResize", key, project=project)


def run_confirm(store: Any, b: Begun) -> str:
    with store.transaction() as session:
        old = dict(session.get(Instance, b.uuid).old_flavor or {})
    back = VmState(old.get("vm_state") or "active")
    source = old.get("source_host")
    job_id = None
    if source and source != b.host:
        with store.transaction() as session:
            inv = hosts_inventory(session, [source])
        result = run_job(new_job("instance_delete.yml", inv, {
            "kvmfleet_instances": {source: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid}]}}))
        job_id = result.id
        if not result.host(source).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            message = (f"confirm resize of server {b.name}: removing it from the source host {source} failed: "
                       f"{result.error_for(source) or 'failed'}")
            finish(store, b, False, {}, result.id, message)
            raise OperationFailed(message, instance=b.uuid)
    elif old.get("grown_in_place"):
        result = run_on_host(store, b, "instance_resize_confirm.yml", {
            "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid,
                                             "kept": list(old["grown_in_place"])}]}})
        job_id = result.id
        if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            fail_op(store, b, result, "confirm resize (removing the disks kept for a revert)")
    confirm_move_claim(store.session_factory, b.uuid)
    _move_status(store, b.uuid, "confirmed")
    finish(store, b, True, {"vm_state": back, "old_flavor": None, "new_flavor": None}, job_id)
    if source and source != b.host:
        nics.settle_hosts(store, b.uuid, [source])
    return status_of(store, b.uuid)


def revert_resize(store: Any, key: str, project: str | None = None) -> str:
    """Back to the old flavor: after a move, the destination domain and its disks go first, then the
    instance starts again on its source (whose domain kept the old flavor and disks) and the destination
    claim goes; after an in-place resize, the grown disks are replaced by the originals kept beside them."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "revertResize", key, project=project)


def run_revert(store: Any, b: Begun) -> str:
    with store.transaction() as session:
        source = (session.get(Instance, b.uuid).old_flavor or {}).get("source_host") or b.host
    dest = b.host if source != b.host else None
    try:
        return _revert(store, b, dest)
    finally:
        if dest:
            nics.settle_hosts(store, b.uuid, [dest])


def rollback_resize(store: Any, b: Begun, reason: str) -> str:
    """Recovery of a resize its owner left half-way (Nova's _init_instance: revert to the source): the copy
    on a destination goes, the source gets the old flavor (and the originals of disks grown in place) and
    starts as it was; the claims go back to the source; the fault says why."""
    def mark(session: Any) -> str | None:
        inst = session.get(Instance, b.uuid)
        source = (inst.old_flavor or {}).get("source_host") or inst.host
        dests = {inst.host} | set(session.scalars(
            select(Host.name).join(Allocation, Allocation.host_id == Host.id)
            .where(Allocation.instance_uuid == b.uuid, Allocation.kind == AllocationKind.INSTANCE)).all())
        store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_REVERTING},
                                expected_task_state=inst.task_state)
        b.host = inst.host
        others = sorted(d for d in dests if d and d != source)
        return others[0] if others else None

    dest = store.run_in_transaction(mark)
    b.op = Operation("revertResize", None, TaskState.RESIZE_REVERTING, None, None)
    with store.transaction() as session:
        source = (session.get(Instance, b.uuid).old_flavor or {}).get("source_host") or b.host
    return _revert(store, b, dest, fault=f"{reason}: rolled back to {source}")


def _revert(store: Any, b: Begun, dest: str | None, fault: str | None = None) -> str:
    """Back on the source with the old flavor; `dest` holds a resized copy to remove first."""
    with store.transaction() as session:
        old = dict(session.get(Instance, b.uuid).old_flavor or {})
    back = VmState(old.pop("vm_state", "active"))
    source = old.pop("source_host", None) or b.host
    restore = list(old.pop("grown_in_place", None) or [])
    if dest is not None:
        b.host = dest
        result = run_on_host(store, b, "instance_delete.yml", {
            "kvmfleet_instances": {dest: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid}]}})
        if not result.host(dest).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            fail_op(store, b, result, "revert resize (removing the resized copy)")
        with store.transaction() as session:
            store_api.save_instance(session, b.uuid, {"host": source, "node": source},
                                    expected_task_state=TaskState.RESIZE_REVERTING)
        restore = []  # the source's disks were never changed
    b.host = source
    result = run_on_host(store, b, "instance_resize.yml", {
        "kvmfleet_start": back is VmState.ACTIVE,
        "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid, "vcpus": old["vcpus"],
                                         "memory_mb": old["memory_mb"], "restore": restore}]}})
    if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
        fail_op(store, b, result, "revert resize")
    with contextlib.suppress(ClaimConflict):  # a resize interrupted before its claim holds nothing to revert
        revert_move(store.session_factory, b.uuid)
    power = PowerState.RUNNING if back is VmState.ACTIVE else PowerState.SHUTDOWN
    _move_status(store, b.uuid, "reverted")
    finish(store, b, fault is None, {"vm_state": back, "power_state": power, "old_flavor": None, "new_flavor": None,
                                     **old}, result.id, error=fault)
    return status_of(store, b.uuid)
