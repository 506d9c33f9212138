"""Evacuate (Nova's evacuate: the conductor's rebuild_instance on another host), and the clean-up of the
copies evacuated servers left on their source (Nova's ``_destroy_evacuated_instances``).

Evacuate is for a server whose host is gone: it is refused while the host is up (Nova's "Compute service
of H is still in use"); down (no heartbeat for service_down_time) or forced down by an operator, its
servers may be rebuilt elsewhere. Each is recorded at once (task_state rebuilding, an evacuate action, a
migration row of type evacuation, ``accepted``); the task then has the scheduler pick a destination (the
server's flavor, group policy, disabled and down hosts refused; a host the operator named is checked by
the same filters) and takes a move claim there, and one job rebuilds the domain on the destination from
the server's image with the same uuid, name, MACs, metadata and user data. A server that was stopped is
defined and left stopped; an active (or ERROR) one is started. Afterwards the server points at the
destination, the source's hold is released and the migration is ``done``; a failure removes what the
destination holds, keeps the server on its source as it was and records the migration ``failed``.

The source may come back with the old copies still defined (or running). Until every copy of a server
evacuated from it is removed it stays DOWN (kvmfleet.compute.hosts.refresh: its facts are recorded, the
scheduler still skips it); the copies are removed by the reaper, which never touches a domain the store
places on that host, and then the migrations are ``completed`` and the host is up again.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from kvmfleet.compute import migrations, nics, services
from kvmfleet.compute.common import (
    REBUILD_TASK,
    Begun,
    begin_in,
    domain_spec,
    finish,
    hosts_inventory,
    item_outcome,
    new_job,
    run_job,
    status_of,
)
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.network.reconcile import ConvergeFailed
from kvmfleet.scheduler import NoValidHost
from kvmfleet.scheduler.claims import ClaimConflict, Resources, allocations_for, confirm_move, revert_move
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Host, Image, Instance, Migration
from kvmfleet.store.states import AllocationKind, PowerState, TaskState, VmState

log = logging.getLogger("kvmfleet.evacuate")

# Migration statuses of an evacuation whose source may still hold a copy.
PENDING = ("accepted", "pre-migrating", "done")


def evacuate(store: Any, key: str, host: str | None = None, project: str | None = None) -> str:
    """`kvmfleet server evacuate S [--host H]`: run as a task owned by this process. Returns the status;
    raises OperationFailed when the server was not rebuilt elsewhere."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "evacuate", key, project=project, host=host)


def check_source_down(session: Any, inst: Instance) -> None:
    """Nova's ComputeServiceInUse: evacuate only from a host that is down or forced down."""
    row = session.scalars(select(Host).where(Host.name == inst.host)).first() if inst.host else None
    if row is not None and services.is_up(row):
        raise InvalidRequest(f"Compute service of {inst.host} is still in use.", host=inst.host)


def prepare(session: Any, inst: Instance, *, host: str | None, request_id: str | None = None,
            user_id: str | None = None) -> tuple[Begun, int]:
    """Inside the caller's transaction: check and record the evacuation. Returns (begun, migration id)."""
    from kvmfleet.compute.live_migration import check_target_host

    check_target_host(session, inst, host, "evacuate")
    check_source_down(session, inst)
    b = begin_in(session, inst, "evacuate", "compute_rebuild_instance", request_id=request_id, user_id=user_id)
    row = migrations.record(session, inst, migrations.EVACUATION, "accepted", dest=host, user_id=user_id)
    return b, row.id


def _forget_earlier_attempt(store: Any, b: Begun, migration_id: int) -> None:
    """A retry after the owner died: the destination an earlier attempt claimed (and may have built on)
    is given back, so this attempt starts as the first did."""
    with store.transaction() as session:
        row = session.get(Migration, migration_id)
        dest = row.dest_compute if row is not None and row.status == "pre-migrating" else None
        held = {a.kind for a in allocations_for(session, b.uuid)} if dest else set()
    if not dest:
        return
    if AllocationKind.MIGRATION in held:
        revert_move(store.session_factory, b.uuid)
    _remove_copy_quietly(store, b.uuid, dest)


def _remove_copy_quietly(store: Any, uuid: str, host: str) -> None:
    from kvmfleet.compute.live_migration import _remove_copy

    try:
        _remove_copy(store, uuid, host)
    except Exception:
        log.warning("could not remove what %s holds of server %s", host, uuid, exc_info=True)


def run(store: Any, b: Begun, migration_id: int, requested: str | None) -> str:
    """The recorded evacuation: destination, claim, rebuild there, outcome."""
    from kvmfleet.compute.live_migration import _flavor_fields, describe_target
    from kvmfleet.compute.moves import _claim_resize_dest, _resize_candidates

    _forget_earlier_attempt(store, b, migration_id)
    migrations.update(store, migration_id, status="pre-migrating")
    with store.transaction() as session:
        fields = _flavor_fields(session.get(Instance, b.uuid))
    source = b.host
    try:
        candidates = _resize_candidates(store, b, fields, force_hosts=[requested] if requested else None)
        dest = _claim_resize_dest(store, b, candidates, Resources.from_flavor(fields), [], what="evacuation")
    except (ClaimConflict, NoValidHost) as exc:
        message = f"evacuation of server {b.name} from {source}{describe_target(store, requested)}: {exc.msg}"
        migrations.update(store, migration_id, status="error", error=message[:2000])
        finish(store, b, False, {}, error=message)
        raise OperationFailed(message, instance=b.uuid) from exc
    stopped = b.vm_state is VmState.STOPPED
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        dest_row = session.scalars(select(Host).where(Host.name == dest)).one()
        spec = domain_spec(session, inst, session.get(Image, inst.image_id))
        spec["state"] = "stopped" if stopped else "running"
        user_data = {b.uuid: inst.config["user_data"]} if inst.config.get("user_data") is not None else {}
        inv = hosts_inventory(session, [dest])
    migrations.update(store, migration_id, dest_compute=dest, dest_node=dest, dest_host=dest_row.address or dest)
    try:
        nics.prepare_hosts(store, b.uuid, [dest])
    except ConvergeFailed as exc:
        message = f"evacuation of server {b.name} from {source} to {dest} failed: its networks there: {exc}"
        revert_move(store.session_factory, b.uuid)
        migrations.update(store, migration_id, status="failed", error=message[:2000])
        finish(store, b, False, {}, None, message)
        nics.settle_hosts(store, b.uuid, [dest])
        raise OperationFailed(message + f"; it stays on {source}", instance=b.uuid) from None
    result = run_job(new_job("instance_rebuild.yml", inv, {"kvmfleet_instances": {dest: [spec]},
                                                           "kvmfleet_user_data": user_data},
                             secret_vars=("kvmfleet_user_data",)))
    ok, error, _domain = item_outcome(result, dest, b.uuid, REBUILD_TASK)
    if not ok:
        message = f"evacuation of server {b.name} from {source} to {dest} failed: {error or 'failed'}"
        revert_move(store.session_factory, b.uuid)
        _remove_copy_quietly(store, b.uuid, dest)
        migrations.update(store, migration_id, status="failed", error=message[:2000])
        finish(store, b, False, {}, result.id, message)
        raise OperationFailed(message + f"; it stays on {source}", instance=b.uuid)

    def moved(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"host": dest, "node": dest}, expected_task_state=TaskState.REBUILDING)

    store.run_in_transaction(moved)
    confirm_move(store.session_factory, b.uuid)  # the source's hold: the copy there is removed when it returns
    migrations.update(store, migration_id, status="done")
    b.host = dest
    finish(store, b, True, {"vm_state": VmState.STOPPED if stopped else VmState.ACTIVE,
                            "power_state": PowerState.SHUTDOWN if stopped else PowerState.RUNNING}, result.id)
    log.info("server %s evacuated from %s to %s", b.name, source, dest)
    return status_of(store, b.uuid)


# -- the source comes back ------------------------------------------------------------------------


def pending_on(session: Any, host: str) -> list[Migration]:
    """The evacuations from `host` whose copies there are not known to be gone yet."""
    return list(session.scalars(select(Migration).where(
        Migration.migration_type == migrations.EVACUATION, Migration.source_compute == host,
        Migration.status.in_(PENDING))).all())


def settle(session: Any, host: Host, domains_left: set[str]) -> tuple[list[str], bool]:
    """Inside the refresh's transaction, after the reaper ran: the evacuations from `host` whose copy is gone
    from it (not among `domains_left`, the kvmfleet domains it still holds of servers placed elsewhere) are
    ``completed``. Returns (servers cleaned, whether the host may be up: nothing evacuated is left there and
    no evacuation from it is still running)."""
    cleaned, clear = [], True
    for row in pending_on(session, host.name):
        if row.status != "done":
            clear = False  # still rebuilding elsewhere: the copy here is judged once that ends
            continue
        if f"kvmfleet-{row.instance_uuid}" in domains_left:
            clear = False
            continue
        row.status = "completed"
        cleaned.append(row.instance_uuid)
    return cleaned, clear
