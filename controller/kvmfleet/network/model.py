"""Networks, subnets and ports as the controller sees them: read from what the hosts report.

kvmfleet does not manage networks yet (roadmap 5): each host has libvirt networks (the kvm_host role
makes ``default``, libvirt's NAT network) and instances get one NIC per requested network, their
IPv4 address from that network's dnsmasq on their host. This module maps that onto Neutron's model:

- a Network per libvirt network name (``default`` always; every other network a host reports active),
  shared, with a stable id (uuid5 of a fixed namespace and the name); ACTIVE when a host reports it
  active (or no host has reported networks yet), else DOWN. Each host's network is its own L2 segment
  behind NAT (Neutron's provider type ``local``): guests on different hosts do not share it.
- a Subnet per (network, CIDR) the hosts report: id uuid5(network, CIDR), gateway the host's address,
  allocation pools the DHCP ranges. Hosts with the same CIDR share one subnet object.
- a Port per NIC of an instance whose MAC is known (recorded when its build finished): id uuid5(instance,
  MAC); fixed IP the host's current DHCP lease for that MAC (None until the guest asked for one);
  status ACTIVE while the instance runs, DOWN otherwise.

Everything is derived on read from the store (Instance rows, Host.facts["networks"]), so it needs no
table of its own and is never out of step with the instances.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Host, Instance, Project
from kvmfleet.store.states import PowerState, VmState

NAMESPACE = uuid.UUID("8a4c2f5e-6b1d-4e0a-9c3f-6b766d6e6574")
DEFAULT_NETWORK = "default"
TENANT_PREFIX = "kf-"  # libvirt names of tenant networks (Network.libvirt_name): not derived here
DEFAULT_MTU = 1500
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # created_at of objects nothing else dates


def network_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"network:{name}"))


def subnet_id(network: str, cidr: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"subnet:{network}:{cidr}"))


def port_id(instance_uuid: str, mac: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"port:{instance_uuid}:{mac.lower()}"))


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    network_id: str
    network_name: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    allocation_pools: tuple[tuple[str, str], ...]
    enable_dhcp: bool
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    status: str  # ACTIVE or DOWN
    mtu: int
    subnets: tuple[Subnet, ...]
    hosts: tuple[str, ...]  # hosts that report it
    forward_mode: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class Port:
    """One NIC of an instance (what kvmfleet.compute's server views and the Network API show)."""

    id: str
    mac: str
    ip: str | None  # IPv4 from the host's DHCP lease, None until the guest got one
    network_id: str
    network_name: str
    host: str | None
    subnet_id: str | None
    instance_uuid: str
    project_id: str
    status: str  # ACTIVE while the instance runs, else DOWN
    availability_zone: str
    index: int  # the NIC's position in the domain
    created_at: dt.datetime
    updated_at: dt.datetime | None


@dataclass
class _Seen:
    active: bool = False
    mtu: int = DEFAULT_MTU
    forward_mode: str | None = None
    hosts: list[str] = field(default_factory=list)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)  # cidr -> {gateway, pools, hosts}


def host_networks(host: Host) -> list[dict[str, Any]]:
    """The networks a host last reported (host refresh, lease refresh); [] before any report."""
    nets = (host.facts or {}).get("networks")
    return [n for n in nets if isinstance(n, dict) and n.get("name")] if isinstance(nets, list) else []


def _collect(hosts: Iterable[Host]) -> tuple[dict[str, _Seen], bool]:
    seen: dict[str, _Seen] = {}
    reported = False
    for host in hosts:
        nets = host_networks(host)
        reported = reported or bool(nets)
        for net in nets:
            entry = seen.setdefault(net["name"], _Seen())
            entry.hosts.append(host.name)
            entry.active = entry.active or bool(net.get("active"))
            entry.mtu = int(net.get("mtu") or DEFAULT_MTU)
            entry.forward_mode = entry.forward_mode or net.get("forward_mode")
            for sub in net.get("subnets") or []:
                cidr = sub.get("cidr")
                if not cidr or sub.get("ip_version", 4) != 4:
                    continue  # IPv4 only: the guests' DHCP is IPv4
                item = entry.subnets.setdefault(cidr, {"gateway": sub.get("address"), "pools": [], "hosts": []})
                item["hosts"].append(host.name)
                for r in sub.get("dhcp_ranges") or []:
                    pool = (r.get("start"), r.get("end"))
                    if all(pool) and pool not in item["pools"]:
                        item["pools"].append(pool)
    return seen, reported


def _network(name: str, entry: _Seen | None, reported: bool, created_at: dt.datetime) -> Network:
    nid = network_id(name)
    subnets = []
    if entry is not None:
        for cidr, item in sorted(entry.subnets.items()):
            subnets.append(Subnet(id=subnet_id(name, cidr), name=f"{name}-{cidr}", network_id=nid, network_name=name,
                                  cidr=cidr, ip_version=4, gateway_ip=item["gateway"],
                                  allocation_pools=tuple(item["pools"]), enable_dhcp=bool(item["pools"]),
                                  hosts=tuple(sorted(item["hosts"]))))
    active = entry.active if entry is not None else not reported
    return Network(id=nid, name=name, status="ACTIVE" if active else "DOWN",
                   mtu=entry.mtu if entry is not None else DEFAULT_MTU, subnets=tuple(subnets),
                   hosts=tuple(sorted(entry.hosts)) if entry is not None else (),
                   forward_mode=entry.forward_mode if entry is not None else "nat", created_at=created_at)


def list_networks(session: Session) -> list[Network]:
    """``default`` and every network a host reports active, by name."""
    hosts = session.scalars(select(Host).order_by(Host.name)).all()
    seen, reported = _collect(hosts)
    created = min((h.created_at for h in hosts if h.created_at), default=EPOCH)
    names = {DEFAULT_NETWORK} | {n for n, e in seen.items() if e.active}
    return [_network(n, seen.get(n), reported, created) for n in sorted(names)]


def get_network(session: Session, id_or_name: str, project_id: str | None = None) -> Network:
    """A network by id or name (every network is shared: ``project_id`` never hides one); NotFound otherwise."""
    for net in list_networks(session):
        if id_or_name in (net.id, net.name):
            return net
    raise NotFound(f"Network {id_or_name} could not be found.", network=id_or_name)


def list_subnets(session: Session) -> list[Subnet]:
    return [s for n in list_networks(session) for s in n.subnets]


def _lease_index(hosts: Iterable[Host]) -> dict[tuple[str, str, str], str]:
    """(host, network, mac) -> IPv4 address, from each host's last reported leases (latest expiry wins)."""
    best: dict[tuple[str, str, str], tuple[int, str]] = {}
    for host in hosts:
        for net in host_networks(host):
            for lease in net.get("dhcp_leases") or []:
                if lease.get("ip_version", 4) != 4 or not lease.get("mac") or not lease.get("ip_address"):
                    continue
                key = (host.name, net["name"], str(lease["mac"]).lower())
                expires = int(lease.get("expires_at") or 0)
                if key not in best or expires >= best[key][0]:
                    best[key] = (expires, str(lease["ip_address"]))
    return {k: v[1] for k, v in best.items()}


def _subnet_for(ip: str | None, network: str, host: Host | None) -> str | None:
    if ip is None or host is None:
        return None
    address = ipaddress.ip_address(ip)
    for net in host_networks(host):
        if net["name"] != network:
            continue
        for sub in net.get("subnets") or []:
            cidr = sub.get("cidr")
            if cidr and sub.get("ip_version", 4) == 4 and address in ipaddress.ip_network(cidr, strict=False):
                return subnet_id(network, cidr)
    return None


def instance_networks(inst: Instance) -> list[str]:
    """The networks of an instance's NICs, in order (as kvmfleet.compute builds them)."""
    from kvmfleet.compute.common import instance_networks as compute_networks

    return compute_networks(inst)


def ports_for(session: Session, instances: Iterable[Instance]) -> dict[str, list[Port]]:
    """Each instance's NICs whose MAC is known, in device order: {uuid: [Port, ...]} (every uuid a key)."""
    instances = list(instances)
    names = {i.host for i in instances if i.host}
    hosts = {h.name: h for h in session.scalars(select(Host).where(Host.name.in_(names))).all()} if names else {}
    leases = _lease_index(hosts.values())
    out: dict[str, list[Port]] = {}
    for inst in instances:
        ports = []
        if inst.deleted_at is None:
            macs = list((inst.config or {}).get("macs") or [])
            host = hosts.get(inst.host) if inst.host else None
            running = inst.power_state is PowerState.RUNNING and inst.vm_state is not VmState.ERROR
            az = inst.availability_zone or (host.availability_zone if host else None) or "nova"
            for index, (mac, net) in enumerate(zip(macs, instance_networks(inst), strict=False)):
                if net.startswith(TENANT_PREFIX):
                    continue  # a tenant network's NIC: its port is a row (kvmfleet.store.network_models.Port)
                mac = str(mac).lower()
                ip = leases.get((inst.host, net, mac)) if inst.host else None
                ports.append(Port(id=port_id(inst.uuid, mac), mac=mac, ip=ip, network_id=network_id(net),
                                  network_name=net, host=inst.host, subnet_id=_subnet_for(ip, net, host),
                                  instance_uuid=inst.uuid, project_id=inst.project_id,
                                  status="ACTIVE" if running else "DOWN", availability_zone=az, index=index,
                                  created_at=inst.launched_at or inst.created_at,
                                  updated_at=inst.updated_at))
        out[inst.uuid] = ports
    return out


def list_ports(session: Session, project_id: str | None, device_ids: Iterable[str] | None = None) -> list[Port]:
    """The ports of live instances (of ``project_id``; every project's when None), by instance then NIC."""
    query = select(Instance).where(Instance.deleted_at.is_(None))
    if project_id is not None:
        query = query.where(Instance.project_id == project_id)
    wanted = [d for d in (device_ids or []) if d]
    if device_ids is not None:
        if not wanted:
            return []
        query = query.where(Instance.uuid.in_(wanted))
    instances = session.scalars(query.order_by(Instance.created_at, Instance.uuid)).all()
    return [p for ports in ports_for(session, instances).values() for p in ports]


def get_port(session: Session, port: str, project_id: str | None) -> Port:
    for p in list_ports(session, project_id):
        if p.id == port:
            return p
    raise NotFound(f"Port {port} could not be found.", port=port)


def owner_project(session: Session) -> str:
    """The project shared networks belong to (Neutron: the admin project that made them)."""
    row = session.scalars(select(Project.id).where(Project.name == "admin")).first()
    return row or ""
