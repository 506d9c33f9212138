"""Compute hosts seen the way Nova's admin APIs show them: each host is one ``nova-compute`` service
(os-services), one compute node (os-hypervisors) and a member of one availability zone
(os-availability-zone). A service is up when the host answered its last refresh recently
(kvmfleet.compute.placement.SERVICE_DOWN_SECONDS, the scheduler's rule) and an operator has not forced
it down; disabling it keeps the scheduler away (``Host.enabled``, the ComputeFilter).

Ids: before microversion 2.53 services and hypervisors are the host's integer id; from 2.53 stable
UUIDs derived from the host row (``service_uuid``, ``node_uuid``). All functions run inside the
caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet.compute import hosts as hostops
from kvmfleet.compute.placement import SERVICE_DOWN_SECONDS
from kvmfleet.store.errors import InUse, InvalidInput, NotFound
from kvmfleet.store.models import Host, Instance, utcnow
from kvmfleet.store.states import HostState

BINARY = "nova-compute"
DEFAULT_ZONE = "nova"  # Nova's default_availability_zone
_NAMESPACE = uuidlib.UUID("6c1f1bde-5d4e-4c7a-9a61-4b0f3a2e8d17")  # kvmfleet's, for derived ids


def service_uuid(host: Host) -> str:
    return str(uuidlib.uuid5(_NAMESPACE, f"service:{BINARY}:{host.id}:{host.name}"))


def node_uuid(host: Host) -> str:
    return str(uuidlib.uuid5(_NAMESPACE, f"compute-node:{host.id}:{host.name}"))


def is_up(host: Host, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    fresh = host.last_heartbeat_at is not None and (now - host.last_heartbeat_at) < dt.timedelta(
        seconds=SERVICE_DOWN_SECONDS)
    return host.state == HostState.UP and fresh and not host.forced_down


def host_status(host: Host | None) -> str:
    """Nova's host_status of a server on `host` (microversion 2.16): '' without a host, DOWN when forced
    down, MAINTENANCE when disabled, UP when the host answers its heartbeats, else UNKNOWN."""
    if host is None:
        return ""
    if host.forced_down:
        return "DOWN"
    if not host.enabled:
        return "MAINTENANCE"
    return "UP" if is_up(host) else "UNKNOWN"


def all_hosts(session: Session) -> list[Host]:
    return list(session.scalars(select(Host).order_by(Host.id)).all())


def _find(session: Session, ident: str, key: Any, what: str) -> Host:
    for host in all_hosts(session):
        if key(host) == ident:
            return host
    raise NotFound(f"{what} {ident} could not be found.", id=ident)


def get_by_id(session: Session, ident: str, by_uuid: bool) -> Host:
    """The host of a service id (an integer before 2.53, a service UUID from 2.53)."""
    if by_uuid:
        return _find(session, ident, service_uuid, "Service")
    return _find(session, ident, lambda h: str(h.id), "Service")


def get_node(session: Session, ident: str, by_uuid: bool) -> Host:
    """The host of a hypervisor id (an integer before 2.53, a compute node UUID from 2.53)."""
    found = [h for h in all_hosts(session) if (node_uuid(h) if by_uuid else str(h.id)) == ident]
    if not found:
        raise NotFound(f"Hypervisor with ID '{ident}' could not be found.", id=ident)
    return found[0]


def find_host(session: Session, host_name: str, binary: str) -> Host:
    if binary != BINARY:
        raise InvalidInput(f"Updating a {binary} service is not supported. Only nova-compute services can be "
                           "updated.")
    host = session.scalars(select(Host).where(Host.name == host_name)).first()
    if host is None:
        raise NotFound(f"Could not find binary {binary} on host {host_name}.", host=host_name)
    return host


def list_services(session: Session, host: str | None = None, binary: str | None = None) -> list[Host]:
    """The nova-compute services (hosts), filtered as Nova's os-services list is."""
    if binary and binary != BINARY:
        return []
    return [h for h in all_hosts(session) if not host or h.name == host]


def set_status(session: Session, host: Host, enabled: bool, reason: str | None = None) -> Host:
    """Enable or disable scheduling onto the host (the reason is kept as given, None included)."""
    hostops.set_enabled(session, host.name, enabled, reason)
    host.disabled_reason = None if enabled else reason
    session.flush()
    return host


def set_forced_down(session: Session, host: Host, forced_down: bool) -> Host:
    """Fence the host (it counts as down for the scheduler) or lift the fence."""
    host.forced_down = forced_down
    session.flush()
    return host


def delete_service(session: Session, host: Host) -> None:
    """Nova's service delete: refused while the host has instances; it leaves its aggregates."""
    count = session.scalar(select(func.count()).select_from(Instance).where(
        Instance.host == host.name, Instance.deleted_at.is_(None)))
    if count:
        raise InUse("Unable to delete compute service that is hosting instances. Migrate or delete the "
                    "instances first.", host=host.name)
    host.aggregates.clear()
    hostops.remove_host(session, host.name)


# -- compute nodes (os-hypervisors) ---------------------------------------------------------------


@dataclass
class NodeStats:
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    free_ram_mb: int
    free_disk_gb: int
    current_workload: int
    running_vms: int
    disk_available_least: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def node_stats(session: Session, host: Host) -> NodeStats:
    """Nova's compute node figures: totals from host_facts; used = reserved + allocations (memory, disk)
    and allocations (vcpus), as Nova's resource tracker counts them."""
    used = hostops.usage(session, host)
    running = session.scalars(select(Instance).where(Instance.host == host.name, Instance.deleted_at.is_(None))).all()
    memory_used = host.reserved_host_memory_mb + used["memory_mb"]
    disk_used = host.reserved_host_disk_gb + used["disk_gb"]
    storage = (host.facts or {}).get("storage") or {}
    free = storage.get("free_gb")
    return NodeStats(
        vcpus=host.vcpus, memory_mb=host.memory_mb, local_gb=host.local_gb, vcpus_used=used["vcpus"],
        memory_mb_used=memory_used, local_gb_used=disk_used, free_ram_mb=host.memory_mb - memory_used,
        free_disk_gb=host.local_gb - disk_used, running_vms=len(running),
        current_workload=sum(1 for i in running if i.task_state is not None),
        disk_available_least=int(free) if isinstance(free, (int, float)) else None)


def hypervisor_version(host: Host) -> int:
    """libvirt's number for the hypervisor version (major * 1000000 + minor * 1000 + release)."""
    code = (host.facts or {}).get("hypervisor_version_code")
    if isinstance(code, int):
        return code
    parts = [int(p) for p in re.findall(r"\d+", host.hypervisor_version or "")[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 1000000 + parts[1] * 1000 + parts[2]


def cpu_info(host: Host) -> dict[str, Any]:
    """Nova's libvirt cpu_info: arch, model, vendor, topology, features."""
    facts = host.facts or {}
    topo = facts.get("cpu_topology") or {}
    return {"arch": host.arch or facts.get("arch"), "model": host.cpu_model or facts.get("cpu_model"),
            "vendor": facts.get("cpu_vendor"),
            "topology": {"cells": facts.get("numa_cells", 1), "sockets": topo.get("sockets", 1),
                         "cores": topo.get("cores", 1), "threads": topo.get("threads", 1)},
            "features": list(facts.get("cpu_flags") or [])}


def servers_on(session: Session, host: Host) -> list[Instance]:
    return list(session.scalars(select(Instance).where(Instance.host == host.name, Instance.deleted_at.is_(None))
                                .order_by(Instance.created_at)).all())


def uptime(store: Any, host_name: str, timeout: int = 60) -> str:
    """The host's ``uptime`` line (playbooks/host_uptime.yml, one read-only command), as Nova's libvirt driver
    answers; InvalidInput when the host does not answer (Nova: the compute service is unavailable)."""
    from kvmfleet import executor

    def find(session: Session) -> dict[str, Any]:
        return hostops.inventory(session.scalars(select(Host).where(Host.name == host_name)).all())

    result = executor.run(executor.Job(playbook="host_uptime.yml", inventory=store.run_in_transaction(find),
                                       forks=1, timeout=timeout))
    out = (result.host(host_name).result_of("command") or {}).get("stdout")
    if not result.host(host_name).ok or not isinstance(out, str) or not out.strip():
        raise InvalidInput(f"Compute service of {host_name} is unavailable at this time.", host=host_name)
    return out.strip()


def search_nodes(session: Session, pattern: str) -> list[Host]:
    """Nova's hypervisor_hostname LIKE %pattern%; NotFound when nothing matches."""
    found = [h for h in all_hosts(session) if pattern in h.name]
    if not found:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.", pattern=pattern)
    return found


def page_nodes(session: Session, limit: int | None, marker: str | None, by_uuid: bool) -> list[Host]:
    hosts = all_hosts(session)
    if marker is not None:
        ids = [node_uuid(h) if by_uuid else str(h.id) for h in hosts]
        if marker not in ids:
            raise InvalidInput(f"marker [{marker}] not found", marker=marker)
        hosts = hosts[ids.index(marker) + 1:]
    return hosts if limit is None else hosts[:limit]


def statistics(session: Session) -> dict[str, Any]:
    """Nova's compute_node_statistics: sums over the enabled hosts, and their count."""
    hosts = [h for h in all_hosts(session) if h.enabled]
    total: dict[str, Any] = {"count": len(hosts)}
    for key in ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "free_ram_mb",
                "free_disk_gb", "current_workload", "running_vms", "disk_available_least"):
        total[key] = 0
    for host in hosts:
        for key, value in node_stats(session, host).as_dict().items():
            total[key] += value or 0
    return total


# -- availability zones -----------------------------------------------------------------------------


@dataclass
class Zone:
    name: str
    available: bool
    hosts: list[Host]


def zones(session: Session) -> list[Zone]:
    """Nova's get_availability_zones: a zone with an enabled host is available; a zone whose hosts are all
    disabled is not (and shows no hosts). Available zones first, each sorted by name."""
    by_zone: dict[str, list[Host]] = {}
    for host in all_hosts(session):
        by_zone.setdefault(host.availability_zone or DEFAULT_ZONE, []).append(host)
    available = sorted(z for z, hs in by_zone.items() if any(h.enabled for h in hs))
    unavailable = sorted(z for z in by_zone if z not in available)
    return ([Zone(z, True, [h for h in by_zone[z] if h.enabled]) for z in available]
            + [Zone(z, False, []) for z in unavailable])

