"""A server's NICs: the provider network ``default`` (each host's libvirt NAT network, addresses from its
DHCP) and tenant networks (a port row each: MAC and fixed IP from the controller's IPAM, the nwfilter of
its security groups, a tap device named after the port).

An instance's ``config`` keeps, per NIC in device order: ``networks`` (libvirt network names: ``default``
or Network.libvirt_name), ``macs`` and ``ports`` (the port id, or None for a provider NIC). Everything the
host needs follows from them and the port rows:

    allocate(session, inst, requested, admin)  -> ports made or bound in the create's transaction
    nic_specs(session, inst)                   -> the domain module's nics
    seed(session, inst)                        -> config_drive extras: network_data, public_keys, meta_data
    release_in(session, uuid)                  -> ports the server made go, the others are unbound
    attach / detach                            -> interface hot-plug (os-interface, `server add port`)
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

from sqlalchemy import select

from kvmfleet.compute.errors import InvalidRequest
from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Instance, KeyPair
from kvmfleet.store.network_models import IPAllocation, Network, Port, Subnet

DEFAULT_NETWORK = "default"
DEVICE_OWNER = "compute:nova"


def provider_mac() -> str:
    """A MAC for a NIC on the provider network (libvirt's QEMU prefix 52:54:00)."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def _tenant():
    from kvmfleet.network import tenant

    return tenant


def is_tenant(entry: Any) -> bool:
    return isinstance(entry, dict)


def allocate(session: Any, inst: Instance, requested: list[Any], admin: bool = False,
             security_groups: list[str] | None = None) -> None:
    """Inside the create's transaction: make (or bind) the instance's ports and record its NICs in
    ``inst.config``. `requested` items: a provider network name, {"network_id", "fixed_ip"?} or
    {"port_id"}. A failure raises and the transaction (instance and ports) rolls back: nothing half-made."""
    tenant = _tenant()
    networks, macs, ports = [], [], []
    for item in requested:
        if not is_tenant(item):
            networks.append(str(item))
            macs.append(provider_mac())
            ports.append(None)
            continue
        if item.get("port_id"):
            port = tenant.get_port(session, item["port_id"], inst.project_id, admin=admin)
            if port.device_id:
                raise Conflict(f"Port {port.id} is still in use.", port=port.id)
        else:
            fixed = [{"ip_address": item["fixed_ip"]}] if item.get("fixed_ip") else None
            net = lookup_network(session, item["network_id"], inst.project_id)
            groups = None
            if security_groups:
                groups = [tenant.find_security_group(session, g, inst.project_id).id for g in security_groups]
            port = tenant.create_port(session, inst.project_id, net.id, fixed_ips=fixed, admin=admin,
                                      auto_delete=True, security_groups=groups)
        port.device_id = inst.uuid
        port.device_owner = DEVICE_OWNER
        port.status = "BUILD"
        net = session.get(Network, port.network_id)
        networks.append(net.libvirt_name)
        macs.append(port.mac_address)
        ports.append(port.id)
    config = dict(inst.config or {})
    config.update(networks=networks, macs=macs, ports=ports)
    if inst.key_name:
        query = select(KeyPair).where(KeyPair.name == inst.key_name)
        if inst.user_id is not None:
            query = query.where(KeyPair.user_id == inst.user_id)  # the requester's own, as Nova looks it up
        key = session.scalars(query).first()
        if key is not None:
            config["key_data"] = key.public_key  # public: Nova keeps it with the instance too
    inst.config = config
    session.flush()


def _ports_by_mac(session: Any, inst: Instance) -> dict[str, Port]:
    rows = session.scalars(select(Port).where(Port.device_id == inst.uuid)).all()
    return {p.mac_address.lower(): p for p in rows}


def nic_specs(session: Any, inst: Instance, networks: list[str], macs: list[Any]) -> list[dict[str, Any]]:
    """The domain module's nics: a tenant NIC names its tap, MTU and nwfilter."""
    ports = _ports_by_mac(session, inst)
    out = []
    for i, network in enumerate(networks):
        nic: dict[str, Any] = {"network": network}
        mac = str(macs[i]).lower() if i < len(macs) and macs[i] else None
        if mac:
            nic["mac"] = mac
        port = ports.get(mac) if mac else None
        if port is not None:
            net = session.get(Network, port.network_id)
            nic.update(target=port.tap, mtu=net.mtu, filter=port.filter_name)
        out.append(nic)
    return out


def _subnets_of(session: Any, port: Port) -> list[tuple[IPAllocation, Subnet]]:
    return list(session.execute(select(IPAllocation, Subnet).join(Subnet, Subnet.id == IPAllocation.subnet_id)
                                .where(IPAllocation.port_id == port.id)
                                .order_by(IPAllocation.ip_address)).all())


def network_data(session: Any, inst: Instance, networks: list[str], macs: list[Any]) -> dict[str, Any]:
    """Nova's network_data.json: a link per NIC; a tenant port's fixed IPv4 (static, with its subnet's
    gateway and DNS servers), a provider NIC by DHCP."""
    ports = _ports_by_mac(session, inst)
    links, nets, dns = [], [], []
    default_route = False
    for i, network in enumerate(networks):
        mac = str(macs[i]).lower() if i < len(macs) and macs[i] else None
        if not mac:
            continue
        port = ports.get(mac)
        link_id = f"tap{port.id[:11]}" if port is not None else f"nic{i}"
        link: dict[str, Any] = {"id": link_id, "type": "bridge", "ethernet_mac_address": mac,
                                "vif_id": port.id if port is not None else None}
        if port is None:
            links.append(link)
            nets.append({"id": f"network{len(nets)}", "type": "ipv4_dhcp", "link": link_id,
                         "network_id": DEFAULT_NETWORK})
            continue
        link["mtu"] = session.get(Network, port.network_id).mtu
        links.append(link)
        for alloc, subnet in _subnets_of(session, port):
            cidr = ipaddress.ip_network(subnet.cidr)
            entry: dict[str, Any] = {"id": f"network{len(nets)}", "type": f"ipv{cidr.version}", "link": link_id,
                                     "ip_address": alloc.ip_address, "netmask": str(cidr.netmask),
                                     "network_id": port.network_id, "routes": []}
            if subnet.gateway_ip and not default_route:
                entry["routes"].append({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": subnet.gateway_ip})
                default_route = True
            for route in subnet.host_routes or []:
                dest = ipaddress.ip_network(route["destination"])
                entry["routes"].append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                                        "gateway": route["nexthop"]})
            nets.append(entry)
            dns.extend(a for a in subnet.dns_nameservers or [] if a not in dns)
    return {"links": links, "networks": nets, "services": [{"type": "dns", "address": a} for a in dns]}


def seed(session: Any, inst: Instance, networks: list[str], macs: list[Any]) -> dict[str, Any]:
    """The config drive's extras: Nova's meta_data.json keys, the key pair and network_data.json."""
    config = inst.config or {}
    extras: dict[str, Any] = {
        "format": "config-drive",
        "network_data": network_data(session, inst, networks, macs),
        "meta_data": {"name": inst.name, "availability_zone": inst.availability_zone or "nova",
                      "project_id": inst.project_id, "launch_index": inst.launch_index or 0,
                      "meta": {str(k): str(v) for k, v in (inst.metadata_ or {}).items()}},
    }
    if inst.key_name and config.get("key_data"):
        extras["public_keys"] = {inst.key_name: str(config["key_data"]).strip()}
    return extras


def release_in(session: Any, uuid: str) -> list[str]:
    """Inside the delete's transaction: the ports the server made are deleted (their addresses free),
    the ports it was given are unbound. The ids touched."""
    touched = []
    for port in session.scalars(select(Port).where(Port.device_id == uuid)).all():
        touched.append(port.id)
        release_port(session, port)
    session.flush()
    return touched


def release_port(session: Any, port: Port) -> None:
    """A port its server no longer holds: deleted if the server made it, else unbound."""
    if port.auto_delete:
        _tenant().delete_port_row(session, port)
    else:
        port.device_id, port.device_owner, port.binding_host, port.status = "", "", None, "DOWN"


def mark_bound(session: Any, uuid: str, host: str | None, active: bool) -> None:
    """The server's ports are on `host` (binding:host_id), ACTIVE while it runs."""
    for port in session.scalars(select(Port).where(Port.device_id == uuid)).all():
        port.binding_host = host
        port.status = "ACTIVE" if active else "DOWN"


def tenant_hosts(specs: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The hosts of these domain specs that have a tenant NIC (their networks and filters come first)."""
    return {host for host, items in specs.items() if any(n.get("filter") for s in items for n in s["nics"])}


def has_ports(store: Any, uuid: str) -> bool:
    return bool(store.run_in_transaction(lambda session: tenant_ports(session, uuid)))


def prepare_hosts(store: Any, uuid: str, hosts: list[str]) -> None:
    """Before a move: the server's tenant networks and port filters on `hosts` (the destination holds its
    claim, so the store already places the ports there). ConvergeFailed names a host that failed."""
    if has_ports(store, uuid):
        from kvmfleet.network import reconcile

        reconcile.converge(store, hosts)


def settle_hosts(store: Any, uuid: str, hosts: list[str]) -> None:
    """After a move, either way: what the hosts no longer need goes (errors are retried by kvmfleet serve)."""
    if has_ports(store, uuid):
        from kvmfleet.network import reconcile

        reconcile.converge(store, hosts, raise_on_error=False)


def tenant_ports(session: Any, uuid: str) -> list[Port]:
    return list(session.scalars(select(Port).where(Port.device_id == uuid).order_by(Port.created_at)).all())


def check_request(requested: Any) -> list[Any]:
    """The create's networks as allocate takes them (names or dicts), each validated."""
    from kvmfleet.compute.common import validate_name

    out: list[Any] = []
    for item in requested:
        if isinstance(item, str):
            out.append(validate_name(item, "network name"))
        elif isinstance(item, dict) and (item.get("network_id") or item.get("port_id")):
            out.append({k: str(v) for k, v in item.items() if k in ("network_id", "port_id", "fixed_ip") and v})
        else:
            raise InvalidRequest(f"a requested network must be a name, a network_id or a port_id, got {item!r}")
    return out


def lookup_network(session: Any, key: str, project_id: str | None) -> Any:
    """A tenant network by id or name visible to the project (the CLI's --network), or NotFound."""
    tenant = _tenant()
    try:
        return tenant.get_network(session, key, project_id)
    except NotFound:
        rows = session.scalars(select(Network).where(Network.name == key)).all()
        visible = [n for n in rows if n.project_id == project_id or n.shared or n.external or project_id is None]
        if len(visible) == 1:
            return visible[0]
        if len(visible) > 1:
            raise InvalidRequest(f"more than one network is named {key}: give its id") from None
        raise
