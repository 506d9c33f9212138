"""From the store to the scheduler and back: host states, request specs, claims over alternates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet.scheduler import Flavor as SpecFlavor
from kvmfleet.scheduler import HostState, RequestSpec, Scheduler, SchedulerConfig
from kvmfleet.scheduler import ImageMeta as SpecImage
from kvmfleet.scheduler import ServerGroup as SpecGroup
from kvmfleet.scheduler.claims import ClaimConflict, Resources, claim_in
from kvmfleet.store.api import save_instance
from kvmfleet.store.engine import run_in_transaction
from kvmfleet.store.models import Allocation, Host, Image, Instance, ServerGroup, utcnow
from kvmfleet.store.states import HostState as HostUpDown
from kvmfleet.store.states import ServerGroupPolicy, TaskState

# A host whose last heartbeat is older than this is treated as down by the scheduler (Nova's
# service_down_time); refresh hosts with `kvmfleet host refresh`.
SERVICE_DOWN_SECONDS = 24 * 3600


def make_scheduler() -> Scheduler:
    from kvmfleet.config import get_settings

    s = get_settings().scheduler
    data: dict[str, Any] = {"max_attempts": s.max_attempts, "multipliers": dict(s.multipliers)}
    if s.enabled_filters is not None:
        data["enabled_filters"] = list(s.enabled_filters)
    if s.weighers is not None:
        data["weighers"] = list(s.weighers)
    return Scheduler(SchedulerConfig.from_dict(data))


def host_states(session: Session, names: Iterable[str] | None = None) -> list[HostState]:
    """Every host (or the named ones) as the scheduler sees it, usage counted from allocations."""
    query = select(Host).order_by(Host.name)
    if names is not None:
        query = query.where(Host.name.in_(list(names)))
    hosts = session.scalars(query).all()
    used = {row[0]: row[1:] for row in session.execute(
        select(Allocation.host_id, func.sum(Allocation.vcpus), func.sum(Allocation.memory_mb),
               func.sum(Allocation.disk_gb)).group_by(Allocation.host_id)).all()}
    counts = dict(session.execute(select(Instance.host, func.count()).where(
        Instance.deleted_at.is_(None), Instance.host.is_not(None)).group_by(Instance.host)).all())
    groups: dict[str, dict[str, int]] = {}
    for host_name, group_id, n in session.execute(
            select(Instance.host, Instance.server_group_id, func.count()).where(
                Instance.deleted_at.is_(None), Instance.host.is_not(None), Instance.server_group_id.is_not(None))
            .group_by(Instance.host, Instance.server_group_id)).all():
        groups.setdefault(host_name, {})[group_id] = n
    now = utcnow()
    states = []
    for h in hosts:
        u = used.get(h.id, (0, 0, 0))
        fresh = h.last_heartbeat_at is not None and (now - h.last_heartbeat_at) < dt.timedelta(
            seconds=SERVICE_DOWN_SECONDS)
        states.append(HostState(
            h.name, address=h.address, arch=h.arch or "x86_64", az=h.availability_zone,
            aggregates=[{"name": a.name, "metadata": dict(a.metadata_ or {})} for a in h.aggregates],
            enabled=h.enabled, up=(h.state == HostUpDown.UP and fresh and not h.forced_down),
            vcpus=max(h.vcpus, 0), memory_mb=max(h.memory_mb, 0), disk_gb=max(h.local_gb, 0),
            cpu_allocation_ratio=h.cpu_allocation_ratio, ram_allocation_ratio=h.ram_allocation_ratio,
            disk_allocation_ratio=h.disk_allocation_ratio, reserved_vcpus=h.reserved_host_cpus,
            reserved_memory_mb=h.reserved_host_memory_mb, reserved_disk_gb=h.reserved_host_disk_gb,
            vcpus_used=int(u[0] or 0), memory_mb_used=int(u[1] or 0), disk_gb_used=int(u[2] or 0),
            num_instances=int(counts.get(h.name, 0)), server_group_instances=groups.get(h.name, {}),
            failed_builds=h.failed_builds, generation=h.generation,
        ))
    return states


def group_spec(session: Session, group: ServerGroup | None, exclude: Iterable[str] = ()) -> SpecGroup | None:
    """The server group with the hosts its members (other than `exclude`) are on, keyed by group id."""
    if group is None:
        return None
    skip = set(exclude)
    hosts: dict[str, int] = {}
    query = select(Instance.uuid, Instance.host).where(
        Instance.server_group_id == group.id, Instance.deleted_at.is_(None), Instance.host.is_not(None))
    for uuid, host in session.execute(query).all():
        if uuid not in skip:
            hosts[host] = hosts.get(host, 0) + 1
    return SpecGroup(name=group.id, policy=str(group.policy), max_server_per_host=group.max_server_per_host,
                     hosts=hosts, label=group.name)


def request_spec(session: Session, flavor: dict[str, Any], image: Image | None, *, availability_zone: str | None,
                 project_id: str | None, group: ServerGroup | None, num_instances: int = 1,
                 ignore_hosts: Iterable[str] = (), exclude_members: Iterable[str] = (),
                 request_id: str | None = None, force_hosts: Iterable[str] | None = None) -> RequestSpec:
    resources = Resources.from_flavor(flavor)
    return RequestSpec(
        flavor=SpecFlavor(name=str(flavor.get("name") or flavor.get("flavor_name") or "?"),
                          vcpus=resources.vcpus, memory_mb=resources.memory_mb, disk_gb=resources.disk_gb,
                          extra_specs=dict(flavor.get("extra_specs") or flavor.get("flavor_extra_specs") or {})),
        image=SpecImage(arch=image.arch if image else None, min_ram=image.min_ram if image else 0,
                        min_disk=image.min_disk if image else 0),
        availability_zone=availability_zone, project=project_id,
        server_group=group_spec(session, group, exclude_members), num_instances=num_instances,
        ignore_hosts=frozenset(ignore_hosts), request_id=request_id,
        force_hosts=frozenset(force_hosts) if force_hosts is not None else None,
    )


def violates_group(session: Session, group: ServerGroup | None, instance_uuid: str, host_name: str) -> str | None:
    """The late server-group check (Nova's _validate_instance_group_policy): why `host_name` breaks the
    group's hard policy given members already placed, or None."""
    if group is None or group.policy not in (ServerGroupPolicy.AFFINITY, ServerGroupPolicy.ANTI_AFFINITY):
        return None
    others = session.scalars(select(Instance.host).where(
        Instance.server_group_id == group.id, Instance.deleted_at.is_(None), Instance.host.is_not(None),
        Instance.uuid != instance_uuid)).all()
    if group.policy == ServerGroupPolicy.AFFINITY:
        if others and any(h != host_name for h in others):
            return f"server group {group.name} (affinity) has members on {min(others)}"
        return None
    limit = group.max_server_per_host or 1
    if sum(1 for h in others if h == host_name) >= limit:
        return f"server group {group.name} (anti-affinity) already has {limit} member(s) on {host_name}"
    return None


def claim_first(session_factory: Any, instance_uuid: str, candidates: Sequence[str], resources: Resources,
                group: ServerGroup | None, skip: Iterable[str] = ()) -> tuple[str | None, list[str], list[str]]:
    """Claim on the first candidate that takes it (compare-and-set; a lost race moves on to the next).

    Returns (host claimed or None, candidates left after it, why each tried host was refused)."""
    refused: list[str] = []
    skipped = set(skip)
    remaining = [c for c in candidates if c not in skipped]
    while remaining:
        host = remaining.pop(0)

        def try_host(session: Session, host: str = host) -> str | None:
            why = violates_group(session, group, instance_uuid, host)
            if why:
                return why
            claim_in(session, instance_uuid, host, resources)
            # The instance points at its host in the same transaction as the claim, while it is still being
            # scheduled (compare-and-set: a delete or reset meanwhile undoes the claim and raises).
            save_instance(session, instance_uuid, {"host": host, "node": host},
                          expected_task_state=TaskState.SCHEDULING)
            return None

        try:
            # A busy store reruns the whole claim (group check included); a lost compare-and-set does not.
            why = run_in_transaction(session_factory, try_host)
        except ClaimConflict as exc:
            refused.append(f"{host}: {exc.msg}")
            continue
        if why:
            refused.append(f"{host}: {why}")
            continue
        return host, remaining, refused
    return None, [], refused
