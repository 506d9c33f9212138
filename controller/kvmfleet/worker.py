"""The task workers of `kvmfleet serve`: threads that take queued tasks and run them, a recovery pass at
start and every RECOVERY_INTERVAL seconds, and the periodic jobs other code registers.

Batching: when the oldest queued task is a create (or a delete), the worker waits for the burst to settle
(no new task of that kind for WINDOW seconds, at most MAX_WINDOW), then takes every queued task of that
kind (up to MAX_BATCH): they are built in ONE executor job per attempt, so 30 POST /servers arriving
together pay Ansible's start-up once, not 30 times. One worker gathers at a time; the others meanwhile
run whatever else is queued.

Shutdown (SIGTERM): no new task is taken; running tasks get `grace` seconds to finish; then their jobs are
cancelled and the tasks handed back (lease expired at once, so the next start recovers them by Nova's
rules); queued tasks stay queued for whichever service runs next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvmfleet.compute import tasks

log = logging.getLogger("kvmfleet.worker")

WINDOW = 0.2
MAX_WINDOW = 1.0
MAX_BATCH = 100
POLL = 0.5
RECOVERY_INTERVAL = 30.0
REAP_INTERVAL = 600.0


@dataclass
class Periodic:
    name: str
    interval: float
    fn: Callable[[Any], None]  # called with the store
    next_at: float = 0.0


class WorkerPool:
    def __init__(self, store: Any, workers: int, periodic: list[Periodic] | None = None) -> None:
        self.store = store
        self.workers = max(1, int(workers))
        self.periodic = list(periodic or [])
        self._stop = threading.Event()
        self._gather = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._last_reap = 0.0
        self.started = threading.Event()  # the recovery at start is done and the workers run

    # -- life cycle --------------------------------------------------------------------------------

    def start(self, recover_first: bool = True) -> None:
        """Start in the background (the API answers meanwhile): first a recovery pass, then the workers."""
        self._spawn("kvmfleet-recovery", self._recovery_loop, recover_first)
        for job in self.periodic:
            self._spawn(f"kvmfleet-periodic-{job.name}", self._periodic_loop, job)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, grace: float) -> None:
        """Stop taking tasks; wait up to `grace` s for the running ones; cancel and hand back the rest."""
        self._stop.set()
        tasks._notify()  # wake idle workers so they see the stop
        deadline = time.monotonic() + max(0.0, grace)
        recovery = next((t for t in self._threads if t.name == "kvmfleet-recovery"), None)
        if recovery is not None and not self.started.is_set():
            recovery.join(max(0.0, deadline - time.monotonic()))  # the pass at start may still run
        workers = [t for t in self._threads if t.name.startswith("kvmfleet-worker")]
        for thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in workers):
            log.warning("shutdown: tasks still running after %.0f s: cancelling their jobs and handing them back",
                        grace)
            tasks.keeper.stopping.set()
            for thread in workers:
                thread.join(30)
        for task_id, owner in tasks.keeper.held():
            try:
                tasks.hand_back(self.store, task_id, owner, requeue=False)
            except Exception:  # noqa: BLE001 - the store may be gone; the lease runs out by itself then
                log.warning("shutdown: could not hand task %s back; its lease will expire", task_id)

    @property
    def busy(self) -> int:
        with self._busy_lock:
            return self._busy

    # -- workers -----------------------------------------------------------------------------------

    def _work(self, n: int) -> None:
        owner = tasks.owner_id(f"w{n}")
        while not self._stop.is_set():
            try:
                rows = self._next(owner)
            except Exception:  # the store may be briefly unreachable: keep serving
                log.warning("worker %s: taking a task failed; retrying", n, exc_info=True)
                time.sleep(POLL)
                continue
            if not rows:
                tasks.wait_for_work(POLL)
                continue
            with self._busy_lock:
                self._busy += 1
            try:
                log.info("worker %s: running %d %s task(s) %s", n, len(rows), rows[0].kind, [r.id for r in rows])
                tasks.run_owned(self.store, rows, owner)
            except Exception as exc:  # noqa: BLE001 - the operation recorded its fault; the worker goes on
                log.info("worker %s: %s task(s) %s ended with %s: %s", n, rows[0].kind, [r.id for r in rows],
                         type(exc).__name__, exc)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _next(self, owner: str) -> list[tasks.TaskRow]:
        with self._gather:
            if self._stop.is_set():
                return []
            first = tasks.oldest_queued(self.store)
            if first is None:
                return []
            if first.kind in tasks.BATCHED:
                self._settle(first.kind)
                return tasks.claim(self.store, owner, kind=first.kind, limit=MAX_BATCH)
            return tasks.claim(self.store, owner, ids=[first.id])

    def _settle(self, kind: str) -> None:
        """Wait until no new task of `kind` arrived for WINDOW seconds (at most MAX_WINDOW)."""
        started = time.monotonic()
        seen = tasks.queued_count(self.store, kind)
        while time.monotonic() - started < MAX_WINDOW and not self._stop.is_set():
            time.sleep(WINDOW)
            now = tasks.queued_count(self.store, kind)
            if now == seen:
                return
            seen = now

    # -- recovery and periodic jobs -----------------------------------------------------------------

    def recover(self, reap: bool = False) -> Any:
        from kvmfleet.compute import recovery

        report = recovery.recover(self.store, inline=False, reap=reap)
        if report:
            log.warning("recovery: %s", report.as_dict())
        return report

    def _recovery_loop(self, recover_first: bool) -> None:
        reap_due = False
        if recover_first:
            try:
                self._last_reap = time.monotonic()
                reap_due = bool(self.recover(reap=True).taken)
            except Exception:
                log.warning("recovery at start failed; the next pass is in %.0f s", RECOVERY_INTERVAL,
                            exc_info=True)
        for n in range(self.workers):
            self._spawn(f"kvmfleet-worker-{n}", self._work, n)
        self.started.set()
        # A host may still finish a module the dead owner started after we looked: reap again next round.
        while not self._stop.wait(RECOVERY_INTERVAL):
            try:
                reap = reap_due or time.monotonic() - self._last_reap >= REAP_INTERVAL
                if reap:
                    self._last_reap = time.monotonic()
                report = self.recover(reap=reap)
                reap_due = bool(report.taken)
            except Exception:  # next round
                log.warning("recovery pass failed; next in %.0f s", RECOVERY_INTERVAL, exc_info=True)

    def _periodic_loop(self, job: Periodic) -> None:
        """One thread per periodic job, so a slow one (a heartbeat waiting on a host that does not answer)
        never delays the others."""
        job.next_at = time.monotonic() + job.interval
        while not self._stop.wait(max(0.0, min(1.0, job.next_at - time.monotonic()))):
            if time.monotonic() < job.next_at:
                continue
            job.next_at = time.monotonic() + job.interval
            try:
                job.fn(self.store)
            except Exception:  # a periodic job's failure must not stop it for good
                log.warning("periodic job %s failed", job.name, exc_info=True)
