"""Making the hosts' tenant networks and port filters what the store says, declaratively.

For every host the store gives a desired state:

- the tenant networks of the ports there (a port is "there" on its server's host and on every host where
  the server holds a claim: a move's destination needs the bridge and the filter before the guest
  arrives), each with the other hosts' tunnel addresses for VXLAN head-end replication;
- the complete list of filtered ports there, each with its MAC, fixed IPs and the rules of its security
  groups, a rule with a remote group expanded to the group members' addresses (on any host).

``converge(store, hosts=None)`` computes them all, compares each host's with the hash of what was last
applied there (HostNetworkState), and runs playbooks/network.yml in ONE job for the hosts that differ
(up hosts only: a down host is converged when it answers again), removing the tenant networks a host no
longer needs. Every module call is idempotent, so a crash at any point is repaired by the next converge.
``kvmfleet serve`` converges every PERIOD_S (a rule change reaches running guests within seconds); builds,
moves, interface attach/detach and deletes converge the hosts they touch themselves, so the CLI works
without a running service.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from kvmfleet import executor
from kvmfleet.store.models import Allocation, Host, Instance, utcnow
from kvmfleet.store.network_models import (
    HostNetworkState,
    IPAllocation,
    Network,
    Port,
    PortSecurityGroup,
    SecurityGroupRule,
)
from kvmfleet.store.states import HostState

log = logging.getLogger(__name__)

PLAYBOOK = "network.yml"
PERIOD_S = 2.0
_LOCK = threading.Lock()  # one converge at a time in this process: a stale plan never undoes a newer one


@dataclass
class HostPlan:
    host: str
    address: str | None
    networks: list[dict[str, Any]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    unchanged_networks: bool = False

    @property
    def digest(self) -> str:
        """32 hex digits of the networks' hash, then 32 of the port filters': a rule change only runs the
        filter step."""
        return _hash(self.networks)[:32] + _hash(self.ports)[:32]


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


class ConvergeFailed(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{h}: {e}" for h, e in sorted(errors.items())))


def _port_hosts(session: Any) -> dict[str, set[str]]:
    """port id -> the hosts it must be realised on."""
    rows = session.execute(select(Port.id, Instance.uuid, Instance.host)
                           .join(Instance, Instance.uuid == Port.device_id)
                           .where(Instance.deleted_at.is_(None))).all()
    out: dict[str, set[str]] = {}
    by_instance: dict[str, list[str]] = {}
    for port_id, uuid, host in rows:
        out[port_id] = {host} if host else set()
        by_instance.setdefault(uuid, []).append(port_id)
    if by_instance:
        # a move claim (live or cold migration, resize, evacuation) holds the destination: the guest's
        # bridge and filter must be there before it is
        claims = session.execute(select(Allocation.instance_uuid, Host.name).join(Host, Host.id == Allocation.host_id)
                                 .where(Allocation.instance_uuid.in_(list(by_instance)))).all()
        for uuid, host in claims:
            for port_id in by_instance[uuid]:
                out[port_id].add(host)
    return out


def _rule_spec(rule: SecurityGroupRule, members: dict[str, list[str]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"direction": rule.direction, "ethertype": rule.ethertype, "protocol": rule.protocol,
                            "port_range_min": rule.port_range_min, "port_range_max": rule.port_range_max,
                            "remote_ip_prefix": rule.remote_ip_prefix, "remote_ips": None}
    if rule.remote_group_id:
        version = 6 if rule.ethertype == "IPv6" else 4
        spec["remote_ips"] = sorted(a for a in members.get(rule.remote_group_id, [])
                                    if ipaddress.ip_address(a).version == version)
    return spec


def plans(session: Any) -> dict[str, HostPlan]:
    """Every known host's desired tenant networks and port filters."""
    hosts = {h.name: h for h in session.scalars(select(Host)).all()}
    out = {name: HostPlan(name, h.address or name) for name, h in hosts.items()}
    port_hosts = _port_hosts(session)
    if not port_hosts:
        return out
    ports = {p.id: p for p in session.scalars(select(Port).where(Port.id.in_(list(port_hosts)))).all()}
    ips: dict[str, list[str]] = {}
    for port_id, address in session.execute(select(IPAllocation.port_id, IPAllocation.ip_address)
                                            .where(IPAllocation.port_id.in_(list(ports)))).all():
        ips.setdefault(port_id, []).append(address)
    groups: dict[str, list[str]] = {}
    for port_id, group_id in session.execute(select(PortSecurityGroup.port_id, PortSecurityGroup.security_group_id)
                                             .where(PortSecurityGroup.port_id.in_(list(ports)))).all():
        groups.setdefault(port_id, []).append(group_id)
    members: dict[str, list[str]] = {}  # group -> addresses of its bound ports, wherever they are
    for port_id, group_ids in groups.items():
        for group_id in group_ids:
            members.setdefault(group_id, []).extend(ips.get(port_id, []))
    wanted_groups = sorted({g for gs in groups.values() for g in gs})
    rules: dict[str, list[SecurityGroupRule]] = {}
    if wanted_groups:
        for rule in session.scalars(select(SecurityGroupRule)
                                    .where(SecurityGroupRule.security_group_id.in_(wanted_groups))
                                    .order_by(SecurityGroupRule.created_at, SecurityGroupRule.id)).all():
            rules.setdefault(rule.security_group_id, []).append(rule)
    networks = {n.id: n for n in session.scalars(
        select(Network).where(Network.id.in_({p.network_id for p in ports.values()}))).all()}
    net_hosts: dict[str, set[str]] = {}
    for port_id, where in port_hosts.items():
        port = ports.get(port_id)
        if port is None:
            continue
        for host in where:
            net_hosts.setdefault(port.network_id, set()).add(host)
            plan = out.get(host)
            if plan is None:
                continue
            port_rules = [_rule_spec(r, members) for g in sorted(groups.get(port_id, [])) for r in rules.get(g, [])]
            plan.ports.append({"id": port.id, "mac": port.mac_address, "ips": sorted(ips.get(port_id, [])),
                               "port_security": bool(port.port_security_enabled), "rules": port_rules})
    for net_id, where in sorted(net_hosts.items()):
        net = networks[net_id]
        for host in sorted(where):
            plan = out.get(host)
            if plan is None:
                continue
            spec: dict[str, Any] = {"name": net.libvirt_name, "bridge": net.bridge, "type": net.network_type,
                                    "mtu": net.mtu, "state": "present"}
            if net.network_type == "vxlan":
                spec.update(segmentation_id=net.segmentation_id, vxlan_device=net.vxlan_device,
                            local_ip=plan.address,
                            remote_ips=sorted({out[h].address for h in where if h != host and h in out}))
            else:
                spec["physical_interface"] = net.physical_network
                if net.network_type == "vlan":
                    spec["segmentation_id"] = net.segmentation_id
            plan.networks.append(spec)
    for plan in out.values():
        plan.ports.sort(key=lambda p: p["id"])
    return out


def _load(store: Any) -> tuple[list[HostPlan], dict[str, list[str]], dict[str, Any]]:
    """The plans of the up hosts that differ from what they last applied, the networks each must lose, and
    the inventory of those hosts."""
    from kvmfleet.compute.common import hosts_inventory

    def load(session: Any) -> tuple[list[HostPlan], dict[str, list[str]], dict[str, Any]]:
        every = plans(session)
        states = {s.host: s for s in session.scalars(select(HostNetworkState)).all()}
        up = {h.name for h in session.scalars(select(Host).where(Host.state == HostState.UP,
                                                                 Host.forced_down.is_(False))).all()}
        todo, gone = [], {}
        for name, plan in sorted(every.items()):
            if name not in up:
                continue
            state = states.get(name)
            wanted = {n["name"] for n in plan.networks}
            drop = sorted(set(state.networks or []) - wanted) if state else []
            if state is not None and state.applied_hash == plan.digest and not drop:
                continue
            if state is None and not plan.networks and not plan.ports:
                continue  # never had anything: nothing to make or remove
            if state is not None and state.applied_hash and state.applied_hash[:32] == plan.digest[:32] and not drop:
                plan.unchanged_networks = True  # only the filters differ: the network step is skipped
            todo.append(plan)
            gone[name] = drop
        return todo, gone, hosts_inventory(session, [p.host for p in todo]) if todo else {}

    return store.run_in_transaction(load)


def converge(store: Any, hosts: Iterable[str] | None = None, *, raise_on_error: bool = True,
             timeout: int | None = 300) -> list[str]:
    """Apply the desired state on every up host that differs from it (a port placed on one host changes the
    VXLAN peers of the others); the hosts changed.

    With `raise_on_error`, ConvergeFailed names each of `hosts` (every host when None) that failed; the
    others' failures are logged and retried by the next converge."""
    from kvmfleet.compute.common import new_job, run_job

    only = set(hosts) if hosts is not None else None
    with _LOCK:
        todo, gone, inv = _load(store)
        if not todo:
            return []
        nets = {p.host: p.networks + [{"name": n, "state": "absent"} for n in gone[p.host]]
                for p in todo if not p.unchanged_networks}
        fws = {p.host: {"ports": p.ports} for p in todo}
        result = run_job(new_job(PLAYBOOK, inv, {
            "kvmfleet_network_hosts": [p.host for p in todo], "kvmfleet_networks": nets,
            "kvmfleet_firewalls": fws, "kvmfleet_interfaces": {}}, timeout=timeout,
            forks=min(50, max(5, len(todo)))))
        errors = {}
        for plan in todo:
            ok = result.host(plan.host).ok and plan.host in result.hosts
            errors_for = "" if ok else (result.error_for(plan.host) or "the host ran no network task")
            _record(store, plan, gone[plan.host], errors_for)
            if errors_for:
                errors[plan.host] = errors_for
    if errors:
        log.warning("network converge failed on %s", ", ".join(f"{h}: {e}" for h, e in sorted(errors.items())))
        mine = {h: e for h, e in errors.items() if only is None or h in only}
        if raise_on_error and mine:
            raise ConvergeFailed(mine)
    return [p.host for p in todo if p.host not in errors]


def _record(store: Any, plan: HostPlan, gone: list[str], error: str) -> None:
    def record(session: Any) -> None:
        state = session.get(HostNetworkState, plan.host)
        if state is None:
            state = HostNetworkState(host=plan.host, networks=[])
            session.add(state)
        made = set(state.networks or []) | {n["name"] for n in plan.networks}
        if error:
            state.error = error[:2000]
            state.applied_hash = None  # try again at the next converge
            state.networks = sorted(made)
        else:
            state.error = None
            state.applied_hash = plan.digest
            state.networks = sorted(made - set(gone))
        state.updated_at = utcnow()
        _sync_bindings(session, plan.host)

    store.run_in_transaction(record)


def _sync_bindings(session: Any, host: str) -> None:
    """binding:host_id and status of the ports whose server is on `host` (what the API shows)."""
    rows = session.execute(select(Port, Instance).join(Instance, Instance.uuid == Port.device_id)
                           .where(Instance.host == host, Instance.deleted_at.is_(None))).all()
    for port, inst in rows:
        status = "ACTIVE" if inst.power_state is not None and str(inst.power_state.name) == "RUNNING" else "DOWN"
        if port.binding_host != host or port.status != status:
            port.binding_host = host
            port.status = status


def periodic(store: Any) -> None:
    """kvmfleet serve's job (every PERIOD_S): converge every up host; failures are logged and retried."""
    try:
        converge(store, raise_on_error=False, timeout=120)
    except executor.ExecutorError as exc:  # a job that could not start: next round
        log.warning("network converge: %s", exc)
