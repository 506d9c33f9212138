"""Compute hosts: add, import from an inventory, enable/disable, and refresh from host_facts.

A refresh is ONE executor job: kvmfleet.compute.host_facts on every host in parallel. Each answering
host gets its capacity, heartbeat and state UP; an unreachable host is marked DOWN without failing the
others (the heartbeats of `kvmfleet serve` leave that to kvmfleet.compute.heartbeat, which waits for
service_down_time); each instance's power_state is reconciled with what its host reports (principle 1:
the host is the truth for what exists), by Nova's power-state sync rules: a guest that shut itself down
makes its ACTIVE server SHUTOFF (a `stop` action by the system), a guest running for a SHUTOFF server is
stopped, a server with a task in progress is left to that task.

Connection vars (ssh key path, known_hosts args, user, interpreter...) are kept in the host's
``connection`` column (store revision 0002), so controllers sharing a database share them; the
<state dir>/hosts/<name>.json files older controllers wrote are read once and adopted, never written.
`connection_vars()` is the one place that reads them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet import executor, paths
from kvmfleet.store import api
from kvmfleet.store.errors import AlreadyExists, InvalidInput, NotFound, UnexpectedTaskState
from kvmfleet.store.models import Allocation, Host, Instance, utcnow
from kvmfleet.store.states import HostState, PowerState, VmState

# Inventory vars that describe the host itself rather than how to reach it.
_HOST_FIELD_VARS = {"ansible_host", "kvmfleet_availability_zone"}
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def validate_host_name(name: str) -> str:
    if not name or len(name) > 64 or set(name) - NAME_CHARS or name[0] in "-.":
        raise InvalidInput(f"invalid host name {name!r}: 1-64 characters of [A-Za-z0-9._-], not starting with - or .")
    return name


def _legacy_vars_file(name: str) -> Path:
    """Where controllers before store revision 0002 kept a host's connection vars (read, never written)."""
    return paths.state_dir() / "hosts" / f"{validate_host_name(name)}.json"


def connection_vars(host: Host) -> dict[str, Any]:
    """How Ansible reaches ``host``: its ``connection`` column. A host added before the column existed
    has its vars in a legacy file; they are read once and adopted into the column (committed with the
    caller's transaction), so every controller on the database sees them."""
    if host.connection:
        return dict(host.connection)
    path = _legacy_vars_file(host.name)
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read legacy connection vars of host {host.name} from {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise InvalidInput(f"legacy connection vars of host {host.name} in {path} are not a mapping")
    _save_connection_vars(host, values)
    return dict(values)


def _save_connection_vars(host: Host, values: Mapping[str, Any]) -> None:
    host.connection = dict(values)


def _shown_connection(values: Mapping[str, Any]) -> dict[str, Any]:
    """Connection vars fit to print: anything that looks like a secret is left out."""
    return {k: v for k, v in values.items() if not any(w in k.lower() for w in ("pass", "secret", "token"))}


def inventory_host(host: Host) -> executor.InventoryHost:
    """How the executor reaches `host`: its address plus its connection vars."""
    return executor.InventoryHost(name=host.name, address=host.address or host.name, vars=connection_vars(host))


def inventory(hosts: Iterable[Host]) -> dict[str, Any]:
    return executor.build_inventory(inventory_host(h) for h in hosts)


def ssh_vars(ssh_key: str | None = None, known_hosts: str | None = None, user: str | None = None,
             python: str | None = None) -> dict[str, Any]:
    """Connection vars from CLI options; host key checking stays on (a known_hosts file is strict)."""
    out: dict[str, Any] = {}
    if user:
        out["ansible_user"] = user
    if ssh_key:
        key = Path(ssh_key).expanduser()
        if not key.is_file():
            raise InvalidInput(f"ssh key not found: {key}")
        out["ansible_ssh_private_key_file"] = str(key.resolve())
    if known_hosts:
        kh = Path(known_hosts).expanduser()
        if not kh.is_file():
            raise InvalidInput(f"known_hosts file not found: {kh}")
        out["ansible_ssh_common_args"] = (f"-o UserKnownHostsFile={shlex.quote(str(kh.resolve()))} "
                                          "-o StrictHostKeyChecking=yes")
    if python:
        out["ansible_python_interpreter"] = python
    return out


@dataclass
class HostAddResult:
    host: Host
    created: bool


def add_host(session: Session, name: str, address: str, availability_zone: str | None = None,
             conn_vars: Mapping[str, Any] | None = None, update: bool = False) -> HostAddResult:
    """Add a host (state DOWN, no capacity until its first refresh); with update=True an existing host
    gets the new address, zone and vars instead of an error."""
    validate_host_name(name)
    if not address or any(c.isspace() for c in address):
        raise InvalidInput(f"invalid address {address!r} for host {name}")
    host = session.scalars(select(Host).where(Host.name == name)).first()
    created = host is None
    if host is not None and not update:
        raise AlreadyExists(f"host {name} already exists", host=name)
    if host is None:
        host = Host(name=name, address=address, availability_zone=availability_zone or "nova",
                    state=HostState.DOWN)
        session.add(host)
    else:
        host.address = address
        if availability_zone:
            host.availability_zone = availability_zone
    _save_connection_vars(host, conn_vars or {})
    session.flush()
    return HostAddResult(host=host, created=created)


def import_inventory(session: Session, path: str | os.PathLike[str]) -> list[HostAddResult]:
    """Add (or update) every host of a YAML inventory, keeping its connection vars."""
    found = executor.read_inventory_file(path)
    if not found:
        raise InvalidInput(f"no hosts in inventory {path}")
    results = []
    for ih in found:
        az = ih.vars.get("kvmfleet_availability_zone")
        conn = {k: v for k, v in ih.vars.items() if k not in _HOST_FIELD_VARS}
        results.append(add_host(session, ih.name, ih.address, az, conn, update=True))
    return results


def update_host(session: Session, name: str, address: str | None = None, availability_zone: str | None = None) -> Host:
    """Change where a host is reached or which zone it is in (its facts are refreshed separately)."""
    host = api.get_host(session, name)
    if address is not None:
        if not address or any(c.isspace() for c in address):
            raise InvalidInput(f"invalid address {address!r} for host {name}")
        host.address = address
    if availability_zone is not None:
        host.availability_zone = availability_zone
    return host


def set_enabled(session: Session, name: str, enabled: bool, reason: str | None = None) -> Host:
    host = api.get_host(session, name)
    host.enabled = enabled
    host.disabled_reason = None if enabled else (reason or "disabled by operator")
    return host


def remove_host(session: Session, name: str) -> None:
    host = api.get_host(session, name)
    used = session.scalar(select(func.count()).select_from(Allocation).where(Allocation.host_id == host.id))
    if used:
        raise InvalidInput(f"host {name} still holds {used} allocation(s): delete or move its instances first")
    session.delete(host)
    _legacy_vars_file(name).unlink(missing_ok=True)  # a pre-0002 controller's file must not come back


def usage(session: Session, host: Host) -> dict[str, int]:
    row = session.execute(
        select(func.coalesce(func.sum(Allocation.vcpus), 0), func.coalesce(func.sum(Allocation.memory_mb), 0),
               func.coalesce(func.sum(Allocation.disk_gb), 0), func.count())
        .where(Allocation.host_id == host.id)).one()
    return {"vcpus": int(row[0]), "memory_mb": int(row[1]), "disk_gb": int(row[2]), "allocations": int(row[3])}


def host_dict(session: Session, host: Host, detail: bool = False) -> dict[str, Any]:
    used = usage(session, host)
    cap = host.capacity
    out: dict[str, Any] = {
        "name": host.name, "address": host.address, "availability_zone": host.availability_zone,
        "enabled": host.enabled, "disabled_reason": host.disabled_reason, "state": str(host.state),
        "vcpus": host.vcpus, "memory_mb": host.memory_mb, "local_gb": host.local_gb,
        "vcpus_used": used["vcpus"], "memory_mb_used": used["memory_mb"], "local_gb_used": used["disk_gb"],
        "capacity": {k: round(v, 1) for k, v in cap.items()},
        "instances": session.scalar(select(func.count()).select_from(Instance).where(
            Instance.host == host.name, Instance.deleted_at.is_(None))),
        "last_heartbeat_at": host.last_heartbeat_at.isoformat() if host.last_heartbeat_at else None,
        "failed_builds": host.failed_builds,
    }
    if detail:
        out.update({
            "arch": host.arch, "cpu_model": host.cpu_model, "virt_types": list(host.virt_types or []),
            "hypervisor_type": host.hypervisor_type, "hypervisor_version": host.hypervisor_version,
            "allocation_ratios": {"cpu": host.cpu_allocation_ratio, "ram": host.ram_allocation_ratio,
                                  "disk": host.disk_allocation_ratio},
            "reserved": {"memory_mb": host.reserved_host_memory_mb, "disk_gb": host.reserved_host_disk_gb,
                         "cpus": host.reserved_host_cpus},
            "aggregates": [a.name for a in host.aggregates],
            "connection": _shown_connection(connection_vars(host)),
        })
    return out


@dataclass
class RefreshReport:
    job_id: str
    up: list[str] = field(default_factory=list)
    down: dict[str, str] = field(default_factory=dict)            # host -> why
    power_changes: list[dict[str, Any]] = field(default_factory=list)
    unknown_domains: dict[str, list[str]] = field(default_factory=dict)  # host -> kvmfleet domains not in store
    missing: list[dict[str, Any]] = field(default_factory=list)   # store instances not found on their host
    reaped: dict[str, list[str]] = field(default_factory=dict)  # host -> orphan domains removed
    recovered: dict[str, Any] = field(default_factory=dict)  # what recovery did (kvmfleet.compute.recovery)
    to_stop: list[dict[str, Any]] = field(default_factory=list)  # SHUTOFF servers found running on their host
    stopped: list[dict[str, Any]] = field(default_factory=list)  # ... and stopped again (or why not)
    asked_at: dt.datetime | None = None  # when the hosts were asked: later store changes are not judged
    held_down: list[str] = field(default_factory=list)  # answered, but copies of evacuated servers may be left
    evacuated_cleaned: dict[str, list[str]] = field(default_factory=dict)  # host -> servers whose old copy went

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "up": self.up, "down": self.down, "power_changes": self.power_changes,
                "unknown_domains": self.unknown_domains, "missing": self.missing, "reaped": self.reaped,
                "recovered": self.recovered, "stopped": self.stopped, "held_down": self.held_down,
                "evacuated_cleaned": self.evacuated_cleaned}


def _power(value: Any) -> PowerState:
    text = str(value or "").strip()
    try:
        return PowerState(text.upper())
    except ValueError:
        return PowerState.from_libvirt(text.lower())


def refresh(store: Any, names: Iterable[str] | None = None, timeout: int = 300, recover: bool = True,
            mark_down: bool = True, facts_timeout: int = 0, stop_running: bool = True,
            on_answer: Callable[[str], None] | None = None, tidy: bool = True) -> RefreshReport:
    """Gather host_facts from the hosts (all, or `names`) in one job and record what they report; then
    (`recover`) finish or roll back the tasks a dead owner left (kvmfleet.compute.recovery), so a server a
    killed command left in BUILD is ACTIVE or ERROR as its host shows it. A host that does not answer is
    marked DOWN at once unless `mark_down` is false (the heartbeats: down only after service_down_time);
    `facts_timeout` bounds each host's answer (0: only the job's `timeout`). The guests of SHUTOFF servers
    found running are stopped (stop_running_guests) unless `stop_running` is false; the report's to_stop
    names them either way. `on_answer(host)` is called the moment each host's facts arrive (the heartbeats
    count a host as seen then, not when the slowest host is done). `tidy` false leaves the reaping of
    orphan domains, the hosts held down for evacuated copies and the stopping of running guests to the
    caller (tidy_up(store, report), e.g. in a thread of its own)."""
    with store.transaction() as session:
        query = select(Host).order_by(Host.name)
        wanted = list(names or [])
        if wanted:
            query = query.where(Host.name.in_(wanted))
        hosts = session.scalars(query).all()
        missing = sorted(set(wanted) - {h.name for h in hosts})
        if missing:
            raise NotFound(f"host {', '.join(missing)} not found", host=missing)
        if not hosts:
            raise NotFound("no hosts: add some with `kvmfleet host add` or `kvmfleet host import`")
        inv = inventory(hosts)
    asked_at = utcnow()
    def answered(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        if on_answer is not None and event.get("event") == "runner_on_ok" and \
                str(data.get("task_action", "")).rsplit(".", 1)[-1] == "host_facts":
            on_answer(str(data.get("host") or ""))

    result = executor.run(executor.Job(playbook="host_refresh.yml", inventory=inv,
                                       extravars={"kvmfleet_facts_timeout": int(facts_timeout)},
                                       forks=min(50, max(5, len(hosts))), timeout=timeout,
                                       event_callback=answered if on_answer else None))
    now = utcnow()
    names = [h.name for h in hosts]

    from kvmfleet.compute import evacuate

    def record(session: Session) -> RefreshReport:
        report = RefreshReport(job_id=result.id, asked_at=asked_at)  # afresh if the store runs this again
        for host in session.scalars(select(Host).where(Host.name.in_(names))).all():
            hr = result.host(host.name)
            res = hr.result_of("host_facts")
            facts = (res or {}).get("host_facts") if hr.ok else None
            if not facts:
                if mark_down:
                    host.state = HostState.DOWN
                report.down[host.name] = result.error_for(host.name) or "no host_facts result"
                continue
            # Seen up when its answer came (under load the job's end can be seconds later).
            _apply_facts(host, facts, min(hr.answered_at("host_facts") or now, now))
            report.up.append(host.name)
            if evacuate.pending_on(session, host.name):
                host.state = HostState.DOWN  # not used again before its evacuated copies are gone
                report.held_down.append(host.name)
            _reconcile_instances(session, host, facts, report, asked_at)
        return report

    report = store.run_in_transaction(record)
    if recover:
        from kvmfleet.compute import recovery

        found = recovery.recover(store, inline=True, reap=False)
        report.recovered = found.as_dict() if found else {}
    if tidy:
        tidy_up(store, report, stop_running=stop_running)
    return report


def tidy_up(store: Any, report: RefreshReport, stop_running: bool = True) -> None:
    """What a refresh does after recording the facts: reap orphan domains, let hosts held down for the copies
    of evacuated servers up again once those are gone, stop the running guests of stopped servers."""
    _reap_orphans(store, report)
    if report.held_down:
        _settle_evacuations(store, report)
    if stop_running:
        stop_running_guests(store, report)


def _reapable(inst: Instance | None, host: str, asked_at: dt.datetime | None = None) -> bool:
    """Is a kvmfleet domain on `host` a copy the store no longer places there?"""
    if inst is None or inst.task_state is not None:
        return False  # unknown to this store (only reported), or an operation is still deciding
    if asked_at is not None and inst.updated_at is not None and inst.updated_at >= asked_at:
        return False  # changed since the host was asked: the next refresh judges it
    if inst.deleted_at is not None:
        return True
    if inst.host is None:
        return inst.vm_state is VmState.ERROR  # a build that failed with its host unreachable
    # Built (or resized) elsewhere after this host was cut off mid-way: the retry went to an alternate. A
    # resize waiting for confirm keeps its source copy on purpose.
    return inst.host != host and not (inst.vm_state is VmState.RESIZED
                                      and (inst.old_flavor or {}).get("source_host") == host)


def _settle_evacuations(store: Any, report: RefreshReport) -> None:
    """Hosts held down for the copies of servers evacuated from them: up again once the reaper removed
    every copy (Nova's _destroy_evacuated_instances before the compute service starts)."""
    from kvmfleet.compute import evacuate

    def settle(session: Session) -> list[str]:
        still = []
        for host in session.scalars(select(Host).where(Host.name.in_(report.held_down))).all():
            cleaned, clear = evacuate.settle(session, host, set(report.unknown_domains.get(host.name, [])))
            if cleaned:
                report.evacuated_cleaned[host.name] = cleaned
            if clear:
                host.state = HostState.UP
            else:
                still.append(host.name)
        return still

    report.held_down = store.run_in_transaction(settle)


def _reap_orphans(store: Any, report: RefreshReport) -> None:
    """Remove the domains a host kept of instances the store no longer places there: deleted, a build that
    failed with the host unreachable while its domain module went on running, or such a build retried and
    running on another host now (Nova's reap of running deleted instances and of evacuated copies). Other
    unknown kvmfleet domains are only reported."""

    def find(session: Session) -> dict[str, Any] | None:
        specs: dict[str, list[dict[str, Any]]] = {}
        for host, names in report.unknown_domains.items():
            for name in names:
                uuid = name.removeprefix("kvmfleet-")
                if _reapable(session.get(Instance, uuid), host, report.asked_at):
                    specs.setdefault(host, []).append({"name": name, "uuid": uuid})
        if not specs:
            return None
        return {"specs": specs, "inventory": inventory(session.scalars(select(Host).where(Host.name.in_(specs))))}

    found = store.run_in_transaction(find)
    if not found:
        return
    result = executor.run(executor.Job(playbook="instance_delete.yml", inventory=found["inventory"],
                                       extravars={"kvmfleet_instances": found["specs"]},
                                       forks=min(50, max(5, len(found["specs"])))))
    for host, items in found["specs"].items():
        if not result.host(host).ok:
            continue
        gone = {i["name"] for i in items}
        report.reaped[host] = sorted(gone)
        left = [d for d in report.unknown_domains[host] if d not in gone]
        if left:
            report.unknown_domains[host] = left
        else:
            del report.unknown_domains[host]


def _system_action(session: Session, inst: Instance, action: str, message: str) -> None:
    """An instance action the controller took on its own (no user): Nova's power-state sync records its
    stop the same way."""
    from kvmfleet.compute import actions

    row = actions.start_action(session, inst.uuid, action, actions.new_request_id(), project_id=inst.project_id)
    event = actions.start_event(session, row.id, "compute_sync_power_state", host=inst.host,
                                details={"reason": message})
    actions.finish_event(session, event.id, True)
    actions.finish_action(session, row.id, message)


STOP_TIMEOUT = 20  # seconds a running guest of a stopped server gets to shut down before it is forced off


def stop_running_guests(store: Any, report: RefreshReport) -> None:
    """Stop the guests of servers the store has SHUTOFF that were found running (Nova's sync calls
    force_stop for them, a clean shutdown first): one job, then power_state recorded unless an operation
    took the server meanwhile. Fills report.stopped."""
    if not report.to_stop:
        return
    wanted = {r["instance"]: r for r in report.to_stop}

    def targets(session: Session) -> dict[str, Any] | None:
        by_host: dict[str, list[dict[str, str]]] = {}
        for uuid, r in wanted.items():
            inst = session.get(Instance, uuid)
            if inst is None or inst.deleted_at is not None or inst.task_state is not None \
                    or inst.vm_state is not VmState.STOPPED or inst.host != r["host"]:
                continue
            by_host.setdefault(r["host"], []).append({"name": inst.domain_name, "uuid": uuid})
        if not by_host:
            return None
        return {"instances": by_host,
                "inventory": inventory(session.scalars(select(Host).where(Host.name.in_(by_host))))}

    found = store.run_in_transaction(targets)
    if not found:
        return
    result = executor.run(executor.Job(playbook="instance_action.yml", inventory=found["inventory"],
                                       extravars={"kvmfleet_action": "stop", "kvmfleet_stop_timeout": STOP_TIMEOUT,
                                                  "kvmfleet_instances": found["instances"]},
                                       forks=min(50, max(5, len(found["instances"])))))

    def record(session: Session) -> list[dict[str, Any]]:
        out = []
        for host, items in found["instances"].items():
            ok = result.host(host).ok
            for item in items:
                r = {"instance": item["uuid"], "name": wanted[item["uuid"]]["name"], "host": host, "ok": ok}
                if not ok:
                    r["error"] = result.error_for(host)
                else:
                    try:
                        api.save_instance(session, item["uuid"], {"power_state": PowerState.SHUTDOWN},
                                          expected_task_state=None)
                        _system_action(session, session.get(Instance, item["uuid"]), "stop",
                                       f"the guest of a stopped server was running on {host}: stopped")
                    except (UnexpectedTaskState, NotFound):
                        pass
                out.append(r)
        return out

    report.stopped = store.run_in_transaction(record)


def _apply_facts(host: Host, facts: dict[str, Any], now: dt.datetime) -> None:
    host.state = HostState.UP
    host.last_heartbeat_at = now
    host.vcpus = int(facts.get("vcpus") or 0)
    host.memory_mb = int(facts.get("memory_mb") or 0)
    storage = facts.get("storage") or {}
    host.local_gb = int(storage.get("total_gb") or 0)
    host.arch = facts.get("arch")
    host.cpu_model = facts.get("cpu_model")
    host.virt_types = list(facts.get("virt_types") or [])
    host.hypervisor_type = facts.get("hypervisor_type")
    host.hypervisor_version = str(facts.get("hypervisor_version")) if facts.get("hypervisor_version") else None
    slim = {k: v for k, v in facts.items() if k not in ("instances", "cpu_flags")}
    slim["instance_count"] = len(facts.get("instances") or [])
    host.facts = slim


def _reconcile_instances(session: Session, host: Host, facts: dict[str, Any], report: RefreshReport,
                         asked_at: dt.datetime | None = None) -> None:
    """Record what `host` reports of its instances. A server changed in the store after the host was asked
    (`asked_at`: a start that finished while the facts were on their way) is left for the next refresh:
    the facts may predate the change."""
    reported = {}
    for dom in facts.get("instances") or []:
        key = dom.get("uuid") or (dom.get("metadata") or {}).get("uuid")
        if key:
            reported[key] = dom
    stored = session.scalars(select(Instance).where(Instance.host == host.name,
                                                    Instance.deleted_at.is_(None))).all()
    known = set()
    for inst in stored:
        known.add(inst.uuid)
        if asked_at is not None and inst.updated_at is not None and inst.updated_at >= asked_at:
            continue
        dom = reported.get(inst.uuid)
        if dom is None and inst.vm_state in (VmState.BUILDING, VmState.ERROR):
            continue  # not built (yet), or a failed build: nothing expected on the host
        power = _power(dom.get("power_state")) if dom else PowerState.NOSTATE
        if dom is None:
            report.missing.append({"instance": inst.uuid, "name": inst.name, "host": host.name})
        if power == inst.power_state:
            continue
        values: dict[str, Any] = {"power_state": power}
        # Nova's power-state sync: a guest that shut itself down (or crashed) is STOPPED, recorded as a
        # stop by the system; a stopped server's guest found running is stopped again (below).
        if inst.vm_state is VmState.ACTIVE and power in (PowerState.SHUTDOWN, PowerState.CRASHED):
            values["vm_state"] = VmState.STOPPED
        try:
            api.save_instance(session, inst.uuid, values, expected_task_state=None)
        except UnexpectedTaskState:
            continue  # an operation is running on it: it records the power state itself
        if "vm_state" in values:
            _system_action(session, inst, "stop", f"the guest is {str(power).lower()} on {host.name}")
        if inst.vm_state is VmState.STOPPED and power in (PowerState.RUNNING, PowerState.PAUSED):
            report.to_stop.append({"instance": inst.uuid, "name": inst.name, "host": host.name})
        report.power_changes.append({"instance": inst.uuid, "name": inst.name, "host": host.name,
                                     "power_state": str(power), **({"vm_state": "stopped"} if "vm_state" in values
                                                                   else {})})
    unknown = sorted(d.get("domain") or u for u, d in reported.items() if u not in known)
    if unknown:
        report.unknown_domains[host.name] = unknown
