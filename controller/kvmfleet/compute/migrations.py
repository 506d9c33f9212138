"""Migration records (Nova's migrations table): one row per move of an instance between hosts.

Written by the moves themselves (live migration, cold migration and resize to another host, evacuation);
read by `kvmfleet server migrations`, `GET /servers/{id}/migrations` (a server's live migrations in
progress) and the admin's `GET /os-migrations`; `abort` stops a live migration (`DELETE
/servers/{id}/migrations/{id}`, `kvmfleet server migration-abort`).

Statuses, as Nova's:
- live-migration: queued -> preparing -> running -> completed | failed | error | cancelled
  (``cancelling`` while an abort asked for is on its way to the source host);
- migration / resize: pre-migrating -> migrating -> finished -> confirmed | reverted | error;
- evacuation: accepted -> done | failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select

from kvmfleet.compute.errors import InvalidInstanceState, InvalidRequest
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Instance, Migration, utcnow
from kvmfleet.store.states import TaskState

LIVE, COLD, RESIZE, EVACUATION = "live-migration", "migration", "resize", "evacuation"
MIGRATION_TYPES = (LIVE, COLD, RESIZE, EVACUATION)
# Nova's migration_get_in_progress_by_instance leaves these out.
FINISHED = frozenset({"confirmed", "reverted", "error", "failed", "completed", "cancelled", "done"})
ABORTABLE = frozenset({"running"})
ABORTABLE_QUEUED = frozenset({"queued", "preparing", "running"})  # microversion 2.65 and later


def record(session: Any, inst: Instance, migration_type: str, status: str, *, dest: str | None = None,
           dest_address: str | None = None, new_flavor_id: str | None = None, user_id: str | None = None) -> Migration:
    """Inside the caller's transaction: a new migration row of the instance from its current host."""
    row = Migration(instance_uuid=inst.uuid, migration_type=migration_type, status=status,
                    source_compute=inst.host, source_node=inst.node or inst.host, dest_compute=dest,
                    dest_node=dest, dest_host=dest_address, old_flavor_id=inst.flavor_id,
                    new_flavor_id=new_flavor_id or inst.flavor_id, project_id=inst.project_id,
                    user_id=user_id or inst.user_id)
    session.add(row)
    session.flush()
    return row


def update(store: Any, migration_id: int, **values: Any) -> None:
    """Set fields of a migration row in a transaction of its own."""

    def write(session: Any) -> None:
        row = session.get(Migration, migration_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    store.run_in_transaction(write)


MAX_ID = 2 ** 31 - 1  # the id column is a 32-bit integer


def get(session: Any, migration_id: int) -> Migration:
    mid = int(migration_id)
    row = session.get(Migration, mid) if 0 <= mid <= MAX_ID else None
    if row is None:
        raise NotFound(f"migration {migration_id} not found", migration=migration_id)
    return row


def in_progress(session: Any, instance_uuid: str, migration_type: str | None = None) -> list[Migration]:
    """The instance's migrations not finished yet (Nova's migration_get_in_progress_by_instance)."""
    query = select(Migration).where(Migration.instance_uuid == instance_uuid, Migration.status.not_in(FINISHED))
    if migration_type is not None:
        query = query.where(Migration.migration_type == migration_type)
    return list(session.scalars(query.order_by(Migration.id)).all())


def get_for_instance(session: Any, instance_uuid: str, migration_id: int | str, *,
                     live_in_progress: bool = True) -> Migration:
    """One migration of the instance (a live one in progress, unless `live_in_progress` is False):
    NotFound naming both otherwise (Nova's MigrationNotFoundForInstance)."""
    try:
        mid = int(migration_id)
    except (TypeError, ValueError):
        mid = -1
    row = session.get(Migration, mid) if 0 <= mid <= MAX_ID else None
    if row is None or row.instance_uuid != instance_uuid or (
            live_in_progress and (row.migration_type != LIVE or row.status in FINISHED)):
        raise NotFound(f"Instance {instance_uuid} is not migrating (migration {migration_id})",
                       migration=migration_id, server=instance_uuid)
    return row


def query(session: Any, *, instance_uuid: str | None = None, project_id: str | None = None,
          host: str | None = None, status: str | None = None, migration_type: str | None = None,
          source_compute: str | None = None, changes_since: dt.datetime | None = None,
          changes_before: dt.datetime | None = None, hidden: Iterable[str] = (), marker: str | None = None,
          limit: int | None = None, newest_first: bool = True) -> list[Migration]:
    """Migrations matching every filter given (Nova's migration_get_all_by_filters): `host` matches
    either end; `changes_since`/`changes_before` compare updated_at (created_at when never updated);
    `marker` is a migration uuid (the page starts after it; NotFound when it is unknown)."""
    q = select(Migration)
    if instance_uuid:
        q = q.where(Migration.instance_uuid == instance_uuid)
    if project_id:
        q = q.where(Migration.project_id == project_id)
    if host:
        q = q.where(or_(Migration.source_compute == host, Migration.dest_compute == host))
    if status:
        q = q.where(Migration.status == status)
    if migration_type:
        q = q.where(Migration.migration_type == migration_type)
    if source_compute:
        q = q.where(Migration.source_compute == source_compute)
    rows = list(session.scalars(q.order_by(Migration.created_at.desc() if newest_first else Migration.created_at,
                                           Migration.id.desc() if newest_first else Migration.id)).all())
    if changes_since is not None:
        rows = [r for r in rows if (r.updated_at or r.created_at) >= changes_since]
    if changes_before is not None:
        rows = [r for r in rows if (r.updated_at or r.created_at) <= changes_before]
    skip = set(hidden)
    rows = [r for r in rows if r.instance_uuid not in skip]
    if marker is not None:
        index = next((i for i, r in enumerate(rows) if r.uuid == marker), None)
        if index is None:
            raise NotFound(f"Marker {marker} could not be found.", marker=marker)
        rows = rows[index + 1:]
    if limit is not None:
        rows = rows[:limit]
    return rows


def abort(store: Any, instance_uuid: str, migration_id: int | str, *, allow_queued: bool = True) -> Any:
    """Abort a live migration of the instance (Nova's live_migrate_abort). The instance must be MIGRATING
    (InvalidInstanceState), the migration one of its live migrations in progress (NotFound) in a state
    that can be aborted (InvalidRequest: `running`, and with `allow_queued` also `queued`/`preparing`).
    A migration not yet running is cancelled in the store before anything moves; a running one is marked
    ``cancelling`` and the source host's libvirt job is aborted; the migration's own task then records
    the migration ``cancelled`` and the instance ACTIVE on its source. Returns the thread sending the
    abort to the host (the API does not wait for it; the CLI joins it)."""
    from kvmfleet.compute import live_migration

    def mark(session: Any) -> tuple[str, str | None]:
        inst = session.get(Instance, instance_uuid)
        if inst is None or inst.deleted_at is not None:
            raise NotFound(f"server {instance_uuid} not found", server=instance_uuid)
        if inst.task_state != TaskState.MIGRATING:
            state = inst.task_state.value if inst.task_state else None
            raise InvalidInstanceState(
                f"cannot abort a live migration of instance {inst.name}: it is not migrating "
                f"(task_state {state})", vm_state=inst.vm_state.value, task_state=state, action="abort")
        row = get_for_instance(session, instance_uuid, migration_id)
        allowed = ABORTABLE_QUEUED if allow_queued else ABORTABLE
        if row.status not in allowed:
            raise InvalidRequest(f"Migration {row.id} state of instance {instance_uuid} is {row.status}. "
                                 f"Cannot abort live migration in {row.status} state. "
                                 f"(allowed: {', '.join(sorted(allowed))})")
        before = row.status
        row.status, row.updated_at = "cancelling", utcnow()
        return before, row.source_compute

    before, source = store.run_in_transaction(mark)
    return live_migration.abort_job(store, instance_uuid, int(migration_id), source, queued=before != "running")


def as_dict(row: Migration) -> dict[str, Any]:
    """For the CLI: the record's fields, byte counters included."""
    return {"id": row.id, "uuid": row.uuid, "server": row.instance_uuid, "type": row.migration_type,
            "status": row.status, "source": row.source_compute, "dest": row.dest_compute,
            "dest_address": row.dest_host, "memory_processed": row.memory_processed,
            "memory_total": row.memory_total, "disk_processed": row.disk_processed, "disk_total": row.disk_total,
            "downtime_ms": row.downtime_ms, "error": row.error,
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "updated_at": row.updated_at.isoformat() if row.updated_at else None}
