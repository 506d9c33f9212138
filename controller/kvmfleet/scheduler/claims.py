"""Claims: resources an instance holds on a host, written with compare-and-set on the host's generation.

Every write of a host's allocations happens in one transaction that first runs
``UPDATE hosts SET generation = generation + 1 WHERE name = ? [AND generation = ?]``. That UPDATE takes
the host's row lock on PostgreSQL (SQLite serialises writers with BEGIN IMMEDIATE), so the capacity
re-check that follows — from the allocations table, the host's totals, reserved amounts and allocation
ratios — sees every committed claim and no claim can slip in before this one commits. Two controller
processes on one database therefore never double-book a host. A lost race raises ClaimConflict (or its
subclass InsufficientResources when the host is now too full): the caller moves on to its next candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Allocation, Host, Instance
from kvmfleet.store.states import AllocationKind

SessionFactory = Callable[[], Session]
RESOURCE_NAMES = ("vcpus", "memory_mb", "disk_gb")


@dataclass(frozen=True)
class Resources:
    """What a claim asks for: Nova's VCPU, MEMORY_MB and DISK_GB resource classes."""

    vcpus: int
    memory_mb: int
    disk_gb: int

    def __post_init__(self) -> None:
        for name in RESOURCE_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    @classmethod
    def from_flavor(cls, flavor: Any) -> Resources:
        """From a Flavor, an Instance (its copied flavor) or a dict with vcpus, memory_mb, root_gb,
        ephemeral_gb and swap (MiB, rounded up to GiB as Nova does for DISK_GB)."""
        get = flavor.get if isinstance(flavor, Mapping) else lambda k, d=0: getattr(flavor, k, d)
        swap_gb = math.ceil((get("swap", 0) or 0) / 1024)
        return cls(vcpus=int(get("vcpus")), memory_mb=int(get("memory_mb")),
                   disk_gb=int(get("root_gb", 0) or 0) + int(get("ephemeral_gb", 0) or 0) + swap_gb)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RESOURCE_NAMES}


@dataclass(frozen=True)
class Claim:
    """A committed claim: the allocation now held and the host generation it produced."""

    instance_uuid: str
    host_name: str
    host_id: int
    generation: int
    resources: Resources
    kind: AllocationKind = AllocationKind.INSTANCE


class ClaimConflict(Conflict):
    """The host changed since the caller looked (generation mismatch, a concurrent claim, or the instance
    already holds an allocation). Nothing was written; try the next candidate."""


class InsufficientResources(ClaimConflict):
    """The host has not enough capacity left for this claim. ``details["over"]`` lists each resource
    as {resource, requested, used, capacity}."""


def _is_race(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock detected


@contextmanager
def _transaction(session_factory: SessionFactory, what: str) -> Iterator[Session]:
    try:
        with session_factory() as session, session.begin():
            yield session
    except IntegrityError as exc:
        raise ClaimConflict(f"{what}: lost a race with a concurrent claim ({exc.orig})") from exc
    except OperationalError as exc:
        if _is_race(exc):
            raise ClaimConflict(f"{what}: lost a race with a concurrent claim ({exc.orig})") from exc
        raise


def _bump(session: Session, host_name: str, expected_generation: int | None) -> Host:
    """Compare-and-set the host's generation; the UPDATE also locks the host row until commit."""
    stmt = update(Host).where(Host.name == host_name)
    if expected_generation is not None:
        stmt = stmt.where(Host.generation == expected_generation)
    result = session.execute(stmt.values(generation=Host.generation + 1).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        actual = session.execute(select(Host.generation).where(Host.name == host_name)).scalar_one_or_none()
        if actual is None:
            raise NotFound(f"host {host_name} not found", host=host_name)
        raise ClaimConflict(f"host {host_name}: generation is {actual}, expected {expected_generation} "
                            "(the host changed since it was read)", host=host_name, actual=actual,
                            expected=expected_generation)
    host = session.get(Host, _host_id(session, host_name), populate_existing=True)
    if host is None:
        raise NotFound(f"host {host_name} not found", host=host_name)
    return host


def _host_id(session: Session, host_name: str) -> int:
    return session.execute(select(Host.id).where(Host.name == host_name)).scalar_one()


def _bump_id(session: Session, host_id: int) -> None:
    session.execute(update(Host).where(Host.id == host_id).values(generation=Host.generation + 1)
                    .execution_options(synchronize_session=False))


def host_usage(session: Session, host_id: int, *, exclude_id: int | None = None) -> dict[str, int]:
    """Sum of all allocations (instance and migration holds) on a host."""
    stmt = select(func.coalesce(func.sum(Allocation.vcpus), 0), func.coalesce(func.sum(Allocation.memory_mb), 0),
                  func.coalesce(func.sum(Allocation.disk_gb), 0)).where(Allocation.host_id == host_id)
    if exclude_id is not None:
        stmt = stmt.where(Allocation.id != exclude_id)
    vcpus, memory_mb, disk_gb = session.execute(stmt).one()
    return {"vcpus": int(vcpus), "memory_mb": int(memory_mb), "disk_gb": int(disk_gb)}


def _check_capacity(session: Session, host: Host, resources: Resources, what: str,
                    exclude_id: int | None = None) -> None:
    used = host_usage(session, host.id, exclude_id=exclude_id)
    capacity = host.capacity
    over = []
    for name in RESOURCE_NAMES:
        requested = getattr(resources, name)
        if requested and used[name] + requested > capacity[name]:
            over.append({"resource": name, "requested": requested, "used": used[name],
                         "capacity": capacity[name]})
    if over:
        parts = "; ".join(f"{o['resource']} requested {o['requested']}, used {o['used']}, capacity "
                          f"{o['capacity']:g}" for o in over)
        raise InsufficientResources(f"{what}: host {host.name} has not enough capacity: {parts}",
                                    host=host.name, over=over)


def _live_instance(session: Session, instance_uuid: str) -> Instance:
    instance = session.get(Instance, instance_uuid)
    if instance is None or instance.deleted_at is not None:
        raise NotFound(f"instance {instance_uuid} not found", instance_uuid=instance_uuid)
    return instance


def _allocations(session: Session, instance_uuid: str) -> dict[AllocationKind, Allocation]:
    rows = session.scalars(select(Allocation).where(Allocation.instance_uuid == instance_uuid)).all()
    return {AllocationKind(row.kind): row for row in rows}


def claim_in(session: Session, instance_uuid: str, host_name: str, resources: Resources,
             expected_generation: int | None = None) -> Claim:
    """``claim`` inside the caller's transaction (the caller commits; any exception must roll back)."""
    what = f"claim for instance {instance_uuid} on host {host_name}"
    host = _bump(session, host_name, expected_generation)
    _live_instance(session, instance_uuid)
    held = _allocations(session, instance_uuid)
    if AllocationKind.INSTANCE in held:
        other = session.get(Host, held[AllocationKind.INSTANCE].host_id)
        raise ClaimConflict(f"{what}: instance already holds an allocation on host {other.name if other else '?'}",
                            instance_uuid=instance_uuid)
    _check_capacity(session, host, resources, what)
    session.add(Allocation(instance_uuid=instance_uuid, host_id=host.id, kind=AllocationKind.INSTANCE,
                           **resources.as_dict()))
    session.flush()
    return Claim(instance_uuid, host.name, host.id, host.generation, resources)


def claim(session_factory: SessionFactory, instance_uuid: str, host_name: str, resources: Resources,
          expected_generation: int | None = None) -> Claim:
    """Allocate ``resources`` on ``host_name`` for the instance, in one transaction that bumps the host's
    generation (compare-and-set against ``expected_generation``; None = only lock, no generation check)
    and re-checks capacity. Raises ClaimConflict / InsufficientResources (nothing written) or NotFound."""
    with _transaction(session_factory, f"claim for instance {instance_uuid} on host {host_name}") as session:
        return claim_in(session, instance_uuid, host_name, resources, expected_generation)


def release_in(session: Session, instance_uuid: str, kind: AllocationKind | None = None) -> list[str]:
    """``release`` inside the caller's transaction; returns the names of the hosts released."""
    held = _allocations(session, instance_uuid)
    rows = [row for k, row in held.items() if kind is None or k == kind]
    host_ids = sorted({row.host_id for row in rows})
    for host_id in host_ids:  # same lock order everywhere: by host id
        _bump_id(session, host_id)
    if rows:
        session.execute(delete(Allocation).where(Allocation.id.in_([r.id for r in rows]))
                        .execution_options(synchronize_session=False))
        for row in rows:
            session.expunge(row)
    names = session.scalars(select(Host.name).where(Host.id.in_(host_ids))).all() if host_ids else []
    return sorted(names)


def release(session_factory: SessionFactory, instance_uuid: str, kind: AllocationKind | None = None) -> list[str]:
    """Remove the instance's allocations (all kinds, or one) and bump each affected host's generation.
    Releasing an instance without allocations is a no-op. Returns the host names released."""
    with _transaction(session_factory, f"release of instance {instance_uuid}") as session:
        return release_in(session, instance_uuid, kind)


def move_claim(session_factory: SessionFactory, instance_uuid: str, host_name: str, resources: Resources,
               expected_generation: int | None = None, *, keep_source: bool = True) -> Claim:
    """Claim ``resources`` (e.g. the new flavor of a resize) on ``host_name`` (same or another host).

    keep_source=True (resize / cold migration, Nova-style): the current allocation becomes a ``migration``
    hold on the source until confirm_move() drops it or revert_move() restores it; on the same host both
    count, as in Nova. keep_source=False: the allocation is swapped in place (the old one is not counted).
    """
    what = f"move claim for instance {instance_uuid} to host {host_name}"
    with _transaction(session_factory, what) as session:
        dest_id = session.execute(select(Host.id).where(Host.name == host_name)).scalar_one_or_none()
        if dest_id is None:
            raise NotFound(f"host {host_name} not found", host=host_name)
        _live_instance(session, instance_uuid)
        held = _allocations(session, instance_uuid)
        current = held.get(AllocationKind.INSTANCE)
        if current is None:
            raise ClaimConflict(f"{what}: instance holds no allocation to move", instance_uuid=instance_uuid)
        if AllocationKind.MIGRATION in held:
            raise ClaimConflict(f"{what}: a move is already in progress (confirm or revert it first)",
                                instance_uuid=instance_uuid)
        source_id = current.host_id
        # Lock hosts in id order so two opposite moves cannot deadlock.
        if source_id < dest_id:
            _bump_id(session, source_id)
        dest = _bump(session, host_name, expected_generation)
        if source_id > dest_id:
            _bump_id(session, source_id)
        exclude = current.id if (not keep_source and source_id == dest_id) else None
        _check_capacity(session, dest, resources, what, exclude_id=exclude)
        if keep_source:
            current.kind = AllocationKind.MIGRATION
        else:
            session.delete(current)
        session.flush()
        session.add(Allocation(instance_uuid=instance_uuid, host_id=dest.id, kind=AllocationKind.INSTANCE,
                               **resources.as_dict()))
        session.flush()
        generation = session.execute(select(Host.generation).where(Host.id == dest.id)).scalar_one()
        return Claim(instance_uuid, dest.name, dest.id, generation, resources)


def confirm_move(session_factory: SessionFactory, instance_uuid: str) -> list[str]:
    """Drop the source-side hold of a move (Nova confirmResize). Returns the host names released."""
    return release(session_factory, instance_uuid, AllocationKind.MIGRATION)


def revert_move(session_factory: SessionFactory, instance_uuid: str) -> Claim:
    """Undo a move: drop the new allocation and make the source hold the instance's allocation again
    (Nova revertResize). The source capacity was held all along, so no re-check is needed."""
    what = f"revert of the move of instance {instance_uuid}"
    with _transaction(session_factory, what) as session:
        held = _allocations(session, instance_uuid)
        source = held.get(AllocationKind.MIGRATION)
        if source is None:
            raise ClaimConflict(f"{what}: no move in progress", instance_uuid=instance_uuid)
        new = held.get(AllocationKind.INSTANCE)
        for host_id in sorted({source.host_id} | ({new.host_id} if new else set())):
            _bump_id(session, host_id)
        if new is not None:
            session.delete(new)
            session.flush()
        source.kind = AllocationKind.INSTANCE
        session.flush()
        host = session.get(Host, source.host_id, populate_existing=True)
        return Claim(instance_uuid, host.name, host.id, host.generation,
                     Resources(source.vcpus, source.memory_mb, source.disk_gb))


def allocations_for(session: Session, instance_uuid: str) -> list[Allocation]:
    return list(session.scalars(select(Allocation).where(Allocation.instance_uuid == instance_uuid)
                                .order_by(Allocation.id)).all())


__all__ = [
    "Claim",
    "ClaimConflict",
    "InsufficientResources",
    "Resources",
    "allocations_for",
    "claim",
    "claim_in",
    "confirm_move",
    "host_usage",
    "move_claim",
    "release",
    "release_in",
    "revert_move",
]
