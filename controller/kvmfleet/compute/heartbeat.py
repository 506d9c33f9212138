"""Heartbeats and down hosts, in `kvmfleet serve` (Nova's servicegroup with the database driver, turned
around: kvmfleet's hosts run no agent, so the controller asks them).

Every ``compute.heartbeat_interval`` seconds (default 10) one executor job gathers host_facts on every
host (kvmfleet.compute.hosts.refresh, as `kvmfleet host refresh`), each host's answer bounded (0.4 x
service_down_time) so one host cut off never holds up the others past their own time. A host counts as
seen the moment its answer arrives (the job's event for it, not the end of the job); recorded, it is UP
with ``last_heartbeat_at`` then, and its capacity and its servers' power states are re-read (the
power-state sync rides on the same facts). A second periodic job
checks every second: a host whose last answer is older than ``compute.service_down_time`` (default 30 s)
is DOWN, whether or not the beat asking it again has ended, so it is reported within service_down_time
plus about a second of its last answer. DOWN, the scheduler skips it, os-services shows it down and its
servers show host_status UNKNOWN. ``forced_down`` (an operator fenced the host) counts as down at once,
whatever the heartbeats say. What a beat finds to do on the hosts (orphan domains to reap, the copies of
evacuated servers on a host that came back, guests of stopped servers to stop) runs in a thread of its
own, never in the way of the next beat.

Without `kvmfleet serve` nobody beats: hosts keep the state of their last `host refresh` (and count as
down a day after it, kvmfleet.compute.placement.SERVICE_DOWN_SECONDS).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

from sqlalchemy import select, update

from kvmfleet.compute import hosts
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Host, utcnow
from kvmfleet.store.states import HostState

log = logging.getLogger("kvmfleet.heartbeat")

TICK = 1.0  # seconds between the checks for hosts whose time ran out


class Heartbeats:
    """The heartbeat periodic job: `tick(store)` every TICK seconds beats when a beat is due, else marks
    down the hosts whose last answer is older than service_down_time."""

    def __init__(self, interval: float, down_after: float) -> None:
        self.interval = float(interval)
        self.down_after = float(down_after)
        self.failing: dict[str, str] = {}  # host -> why its last beat failed
        self.last_report: hosts.RefreshReport | None = None
        self._next_beat = 0.0
        self._tidier: threading.Thread | None = None
        self._answered: dict[str, float] = {}  # host -> monotonic time its facts arrived in the beat under way
        self._lock = threading.Lock()

    @property
    def facts_timeout(self) -> int:
        """How long one host gets to answer a beat. A host is down by the clock (`mark_down`, whatever the
        beat under way), so a slow answer costs no time in reporting a host cut off; what it buys is that
        a host that answers slowly (a loaded controller, a busy host) is not called down. Bounded to 0.4 x
        service_down_time so a beat held up by a host that never answers still asks the others again
        before their time runs out (interval <= 0.4 x service_down_time, config.py)."""
        return max(5, int(self.interval), int(0.4 * self.down_after))

    def tick(self, store: Any) -> None:
        """Beat when a beat is due (the "heartbeat" job; `check` runs beside it, also while a beat waits)."""
        if time.monotonic() >= self._next_beat:
            self._next_beat = time.monotonic() + self.interval
            self.beat(store)

    def check(self, store: Any) -> None:
        """The "heartbeat-check" job: mark down the hosts whose last answer is too old, every TICK."""
        if self.last_report is not None:  # before the first beat, every answer on record predates us
            self.mark_down(store)

    def _answer(self, host: str) -> None:
        with self._lock:
            self._answered[host] = time.monotonic()

    def beat(self, store: Any) -> hosts.RefreshReport | None:
        started = time.monotonic()
        try:
            report = hosts.refresh(store, timeout=max(60, int(6 * self.interval)), recover=False,
                                   mark_down=False, facts_timeout=self.facts_timeout, stop_running=False,
                                   on_answer=self._answer, tidy=False)
        except NotFound:
            return None  # no hosts yet
        took = time.monotonic() - started
        (log.info if took > self.interval else log.debug)(
            "beat: %.1f s, up %s, no answer from %s", took, report.up, list(report.down))
        came_back = sorted(set(self.failing) & set(report.up))
        if came_back:
            log.warning("host(s) %s answer again: up", ", ".join(came_back))
        self.failing = dict(report.down)
        self.last_report = report
        for change in report.power_changes:
            log.info("power state of server %s on %s: %s%s", change["name"], change["host"], change["power_state"],
                     " (stopped by the guest: SHUTOFF)" if change.get("vm_state") else "")
        self.mark_down(store)
        if self._tidier and self._tidier.is_alive():
            return report  # the last beat's tidying still runs: the next beat finds what is left
        # Reaping and stopping guests take jobs of their own: never in the way of the next beat.
        self._tidier = threading.Thread(target=self._tidy, args=(store, report), name="kvmfleet-heartbeat-tidy",
                                        daemon=True)
        self._tidier.start()
        return report

    def _tidy(self, store: Any, report: hosts.RefreshReport) -> None:
        try:
            hosts.tidy_up(store, report)
        except Exception:
            log.warning("tidying up after a heartbeat failed", exc_info=True)
            return
        for host, names in report.reaped.items():
            log.warning("removed from %s the domain(s) of servers no longer there: %s", host, ", ".join(names))
        for host, uuids in report.evacuated_cleaned.items():
            log.warning("removed from %s the old copies of servers evacuated from it: %s", host, ", ".join(uuids))
        for host in report.held_down:
            log.warning("host %s answers but stays down: copies of servers evacuated from it are still there", host)
        for r in report.stopped:
            log.warning("server %s is stopped but its guest ran on %s: %s", r["name"], r["host"],
                        "stopped" if r["ok"] else f"could not stop it: {r.get('error')}")

    def mark_down(self, store: Any) -> list[str]:
        """Mark DOWN the UP hosts whose last answer is older than service_down_time (store only), whether
        or not the beat that asks them again has ended: a host cut off is down on time, not a host
        timeout later. One UPDATE ... WHERE, so an answer recorded meanwhile is never overwritten."""

        with self._lock:  # answered in the beat under way, not recorded yet: not silent
            fresh = [h for h, at in self._answered.items() if time.monotonic() - at < self.down_after]

        def mark(session: Any) -> list[str]:
            cutoff = utcnow() - dt.timedelta(seconds=self.down_after)
            stale = (Host.state == HostState.UP) & (Host.last_heartbeat_at.is_not(None)) & (
                Host.last_heartbeat_at < cutoff) & Host.name.not_in(fresh)
            names = list(session.scalars(select(Host.name).where(stale)).all())
            if not names:
                return []
            session.execute(update(Host).where(stale & Host.name.in_(names)).values(state=HostState.DOWN)
                            .execution_options(synchronize_session=False))
            return list(session.scalars(select(Host.name).where(Host.name.in_(names), Host.state == HostState.DOWN)).all())

        down = store.run_in_transaction(mark)
        for name in down:
            log.warning("host %s is down: no answer for %.0f s (%s)", name, self.down_after,
                        self.failing.get(name, "its last beat has not answered yet"))
        return down


def register(settings: Any) -> Heartbeats | None:
    """Register the heartbeats with the service's periodic jobs (none when heartbeat_interval is 0)."""
    from kvmfleet import service

    if not settings.heartbeat_interval:
        return None
    beats = Heartbeats(settings.heartbeat_interval, settings.service_down_time)
    service.register_periodic("heartbeat", TICK, beats.tick)
    service.register_periodic("heartbeat-check", TICK, beats.check)
    return beats
