"""Emptying a host: `kvmfleet host drain H` (maintenance: the host is up) and `kvmfleet host evacuate H`
(failure: the host is down), each a batch of per-server moves run with bounded parallelism.

drain   disables the host (with a reason, as `host disable`, so nothing new lands there), then moves each
        server off: ACTIVE and PAUSED ones by live migration, stopped ones by cold migration confirmed at
        once (a stopped guest has no memory to copy). Servers in other states, or with a task in
        progress, are left and reported. The host stays disabled afterwards: `host enable` when the
        maintenance is over.
evacuate rebuilds every ACTIVE, STOPPED or ERROR server of a down host on other hosts (Nova's
        host-evacuate; kvmfleet.compute.evacuate), refused while the host is up.

Each move is a task of its own (a crash leaves each one to recovery, as any move), `parallel` of them at
a time; the report says for every server where it went or why it did not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from kvmfleet.compute import hosts as hostops
from kvmfleet.compute import services
from kvmfleet.compute.errors import ComputeError, InvalidRequest
from kvmfleet.store.errors import NotFound, StoreError
from kvmfleet.store.models import Host, Instance
from kvmfleet.store.states import VmState

log = logging.getLogger("kvmfleet.drain")

Progress = Callable[[str], None]
LIVE_STATES = (VmState.ACTIVE, VmState.PAUSED)
EVACUABLE = (VmState.ACTIVE, VmState.STOPPED, VmState.ERROR)


@dataclass
class Outcome:
    server: str
    id: str
    vm_state: str
    how: str           # live-migration, migration, evacuate, or "" when left
    ok: bool
    dest: str | None = None
    status: str = ""
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _servers(store: Any, host: str) -> list[tuple[str, str, VmState, Any]]:
    with store.transaction() as session:
        if session.scalars(select(Host).where(Host.name == host)).first() is None:
            raise NotFound(f"host {host} not found", host=host)
        rows = session.scalars(select(Instance).where(Instance.host == host, Instance.deleted_at.is_(None))
                               .order_by(Instance.created_at, Instance.uuid)).all()
        return [(i.uuid, i.name, i.vm_state, i.task_state) for i in rows]


def _where(store: Any, uuid: str) -> tuple[str | None, str]:
    with store.transaction() as session:
        inst = session.get(Instance, uuid)
        return (inst.host, str(inst.vm_state)) if inst is not None else (None, "deleted")


def _move(store: Any, out: Outcome, source: str, target: str | None, progress: Progress) -> Outcome:
    from kvmfleet.compute import tasks

    progress(f"{out.server}: {out.how} from {source}" + (f" to {target}" if target else ""))
    try:
        out.status = tasks.run_inline(store, out.how, out.id, host=target)
        if out.how == "migrate":  # a stopped server's cold migration: nothing to verify, confirm at once
            out.status = tasks.run_inline(store, "confirmResize", out.id)
    except (ComputeError, StoreError) as exc:
        out.error = exc.msg
    dest, state = _where(store, out.id)
    out.ok = not out.error and dest is not None and dest != source
    out.dest = dest if out.ok else None
    out.status = out.status or state
    progress(f"{out.server}: " + (f"on {dest} ({out.status})" if out.ok else f"not moved: {out.error}"))
    return out


def _run(store: Any, source: str, plan: list[Outcome], target: str | None, parallel: int,
         progress: Progress) -> list[Outcome]:
    todo = [o for o in plan if o.how]
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(todo) or 1)),
                            thread_name_prefix="kvmfleet-drain") as pool:
        list(pool.map(lambda o: _move(store, o, source, target, progress), todo))
    return plan


def drain(store: Any, host: str, *, reason: str | None = None, target: str | None = None, parallel: int = 2,
          progress: Progress | None = None) -> list[Outcome]:
    """Disable `host` and move every server off it (see the module). Returns one outcome per server."""
    progress = progress or (lambda _msg: None)
    servers = _servers(store, host)
    with store.transaction() as session:
        hostops.set_enabled(session, host, False, reason or "drained for maintenance")
    plan = []
    for uuid, name, vm, task in servers:
        how, error = "", ""
        if task is not None:
            error = f"task {task} in progress"
        elif vm in LIVE_STATES:
            how = "live-migration"
        elif vm is VmState.STOPPED:
            how = "migrate"
        else:
            error = f"vm_state {vm}: only active, paused and stopped servers are moved"
        plan.append(Outcome(name, uuid, str(vm), how, False, error=error))
    return _run(store, host, plan, target, parallel, progress)


def evacuate_host(store: Any, host: str, *, target: str | None = None, parallel: int = 2,
                  progress: Progress | None = None) -> list[Outcome]:
    """Rebuild every server of the down `host` elsewhere. Returns one outcome per server."""
    progress = progress or (lambda _msg: None)
    servers = _servers(store, host)
    with store.transaction() as session:
        row = session.scalars(select(Host).where(Host.name == host)).one()
        if services.is_up(row):
            raise InvalidRequest(f"Compute service of {host} is still in use.", host=host)
    if target == host:
        raise InvalidRequest(f"cannot evacuate host {host} onto itself")
    plan = []
    for uuid, name, vm, task in servers:
        error = ""
        if task is not None:
            error = f"task {task} in progress"
        elif vm not in EVACUABLE:
            error = f"vm_state {vm}: only active, stopped and error servers are evacuated"
        plan.append(Outcome(name, uuid, str(vm), "" if error else "evacuate", False, error=error))
    return _run(store, host, plan, target, parallel, progress)
