"""Refreshing the hosts' networks and DHCP leases in the store.

``refresh_leases(store)`` is ONE executor job: kvmfleet.compute.network_info on every UP host (or the
named ones) in parallel, each host's answer recorded as ``Host.facts["networks"]`` (the same field
``kvmfleet host refresh`` fills from host_facts). It runs:

- with ``kvmfleet host refresh`` (host_facts carries the networks and leases),
- inside ``kvmfleet serve`` (``periodic_refresh``, registered with kvmfleet.service): every UP host each
  LEASE_REFRESH_S, and, a few seconds after a build, the hosts of servers just built (by the API or the
  CLI: the store says which) that have no address yet. A CLI without a running service gets addresses
  with its next `kvmfleet host refresh`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet import executor
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Host, Instance, utcnow
from kvmfleet.store.states import HostState

log = logging.getLogger("kvmfleet.network")
LEASE_REFRESH_S = 60  # every UP host's leases, in the service
TICK_S = 4  # how often the service looks for new servers still waiting for an address
AFTER_BUILD_WINDOW_S = 180  # how long after its launch a server's missing lease is chased


@dataclass
class LeaseReport:
    job_id: str | None
    refreshed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "refreshed": self.refreshed, "failed": self.failed}


def refresh_leases(store: Any, names: Iterable[str] | None = None, timeout: int = 120) -> LeaseReport:
    """Read networks and leases from the hosts (every UP host, or ``names``) in one job and record them."""
    from kvmfleet.compute.hosts import inventory

    wanted = sorted(set(names or []))

    def find(session: Session) -> tuple[list[str], dict[str, Any]] | None:
        query = select(Host).order_by(Host.name)
        query = query.where(Host.name.in_(wanted)) if wanted else query.where(Host.state == HostState.UP)
        hosts = session.scalars(query).all()
        missing = sorted(set(wanted) - {h.name for h in hosts})
        if missing:
            raise NotFound(f"host {', '.join(missing)} not found", host=missing)
        if not hosts:
            return None
        return [h.name for h in hosts], inventory(hosts)

    found = store.run_in_transaction(find)
    if found is None:
        return LeaseReport(job_id=None)
    hosts, inv = found
    result = executor.run(executor.Job(playbook="network_leases.yml", inventory=inv,
                                       forks=min(50, max(5, len(hosts))), timeout=timeout))
    now = utcnow().isoformat()

    def record(session: Session) -> LeaseReport:
        report = LeaseReport(job_id=result.id)
        # row locks: a host refresh committing meanwhile is waited for, and its facts kept
        for host in session.scalars(select(Host).where(Host.name.in_(hosts)).with_for_update()).all():
            hr = result.host(host.name)
            res = hr.result_of("network_info") if hr.ok else None
            if not res or not isinstance(res.get("networks"), list):
                report.failed[host.name] = result.error_for(host.name) or "no network_info result"
                continue
            facts = dict(host.facts or {})
            facts["networks"] = res["networks"]
            facts["networks_refreshed_at"] = now
            host.facts = facts
            report.refreshed.append(host.name)
        return report

    return store.run_in_transaction(record)


def _unleased(session: Session, hosts: list[str], launched_since: dt.datetime | None = None) -> list[str]:
    """The hosts among ``hosts`` with a running instance's NIC that has no lease yet."""
    from kvmfleet.network.model import ports_for

    query = select(Instance).where(Instance.host.in_(hosts), Instance.deleted_at.is_(None),
                                   Instance.task_state.is_(None))
    if launched_since is not None:
        query = query.where(Instance.launched_at >= launched_since)
    instances = session.scalars(query).all()
    waiting = set()
    for ports in ports_for(session, instances).values():
        for port in ports:
            if port.ip is None and port.status == "ACTIVE" and port.host:
                waiting.add(port.host)
    return sorted(waiting)


class PeriodicLeaseRefresh:
    """The service's periodic job (every TICK_S): every UP host's leases each LEASE_REFRESH_S, and in
    between, the hosts of instances launched in the last AFTER_BUILD_WINDOW_S whose running NICs have
    no lease yet (a guest asks for its address a few seconds after it starts). The in-between check is
    a store query; a host job runs only when something waits for an address."""

    def __init__(self) -> None:
        self.last_full = 0.0
        self.backoff: dict[str, tuple[float, float]] = {}  # host -> (next try, wait after it)

    def __call__(self, store: Any) -> None:
        now = time.monotonic()
        if now - self.last_full >= LEASE_REFRESH_S:
            self.last_full = now
            report = refresh_leases(store)
        else:
            waiting = store.run_in_transaction(_recently_built_unleased)
            self.backoff = {h: b for h, b in self.backoff.items() if h in waiting}
            due = [h for h in waiting if self.backoff.get(h, (0.0, 0.0))[0] <= now]
            if not due:
                return
            for host in due:  # 4, 8, 16... s between tries for a guest that does not ask for an address
                wait = min(2 * self.backoff.get(host, (0.0, TICK_S / 2))[1], LEASE_REFRESH_S)
                self.backoff[host] = (now + wait, wait)
            report = refresh_leases(store, due)
        if report.failed:
            log.warning("lease refresh: %s", "; ".join(f"{h}: {e}" for h, e in report.failed.items()))


def _recently_built_unleased(session: Session) -> list[str]:
    since = utcnow() - dt.timedelta(seconds=AFTER_BUILD_WINDOW_S)
    hosts = session.scalars(select(Instance.host).where(Instance.launched_at >= since, Instance.host.is_not(None),
                                                        Instance.deleted_at.is_(None)).distinct()).all()
    if not hosts:
        return []
    up = set(session.scalars(select(Host.name).where(Host.name.in_(hosts), Host.state == HostState.UP)).all())
    return [h for h in _unleased(session, sorted(up), since) if h in up]


periodic_refresh = PeriodicLeaseRefresh()


def _register() -> None:
    from kvmfleet import service

    service.register_periodic("network-leases", TICK_S, periodic_refresh)


_register()
