"""Tenant networks, subnets and ports (Neutron's), rows of the store, and what the compute side calls.

For kvmfleet.compute (server create, delete, interface attach):

    get_network(session, network_id, project_id, admin=False) -> Network        NetworkNotFound if not visible
    create_port(session, project_id, network_id, *, name="", fixed_ips=None, mac_address=None,
                security_groups=None, port_security_enabled=None, admin=False, auto_delete=False,
                device_id="", device_owner="") -> Port
    get_port(session, port_id, project_id, admin=False) -> Port                 PortNotFound if not the project's
    delete_port_row(session, port)                                               no checks (a server goes)
    ensure_default_group(session, project_id) -> SecurityGroup
    find_security_group(session, name_or_id, project_id) -> SecurityGroup

Visibility: a project sees its own networks, shared ones and external ones (an admin sees all); another
project's private network is a NetworkNotFound (404), as its ports and subnets are. ``shared``,
``router:external`` and the provider attributes are admin's. Every function runs in the caller's
transaction; a failed create leaves nothing (its rows are made in a savepoint). Quotas (network, subnet,
port) are counted under the project's quota lock (kvmfleet.network.quotas).

The provider network ``default`` (kvmfleet.network.model) is no row: it and its ports are read-only here.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kvmfleet.config import get_settings
from kvmfleet.network import ipam, quotas
from kvmfleet.network.errors import (
    BadInput,
    NetworkNotFound,
    NeutronConflict,
    NeutronInUse,
    PolicyNotAuthorized,
    PortNotFound,
    ReadOnly,
    SubnetNotFound,
    invalid,
)
from kvmfleet.network.model import DEFAULT_NETWORK
from kvmfleet.network.model import network_id as derived_network_id
from kvmfleet.network.secgroups import (
    ensure_default_group,
    find_security_group,
    get_group,
    port_groups,
    set_port_groups,
)
from kvmfleet.store.network_models import IPAllocation, Network, Port, PortSecurityGroup, Subnet

__all__ = ["create_network", "create_port", "create_subnet", "delete_network", "delete_port", "delete_port_row",
           "delete_subnet", "ensure_default_group", "find_security_group", "get_network", "get_port",
           "get_subnet", "list_networks", "list_ports", "list_subnets", "update_network", "update_port",
           "update_subnet"]

UNSET: Any = object()
NETWORK_TYPES = ("vxlan", "vlan", "flat")
MAX_VNI = 16777215
READ_ONLY = ("The provider network default is read-only: it is each host's libvirt network, and its ports come "
             "and go with the servers on it.")


def _text(value: Any, what: str, limit: int = 255) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(f"Invalid input for {what}. Reason: '{value}' is not a valid string.")
    if len(value) > limit:
        raise BadInput(f"Invalid input for {what}. Reason: '{value[:40]}...' exceeds maximum length of {limit}.")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise BadInput(f"Invalid input for {what}. Reason: '{value}' cannot be converted to boolean.")
    return value


def _refuse_default(network_id: str) -> None:
    if network_id == derived_network_id(DEFAULT_NETWORK):
        raise ReadOnly(READ_ONLY)


# -- networks ---------------------------------------------------------------------------------------


def _visible(project_id: str | None, admin: bool) -> Any:
    if admin or project_id is None:
        return true()
    return or_(Network.project_id == project_id, Network.shared.is_(True), Network.external.is_(True))


def get_network(session: Session, network_id: str, project_id: str | None, admin: bool = False) -> Network:
    """A tenant network the project sees (its own, shared or external; any for an admin)."""
    net = session.get(Network, network_id) if isinstance(network_id, str) else None
    if net is None or not (admin or project_id is None or net.project_id == project_id or net.shared
                           or net.external):
        raise NetworkNotFound(network_id)
    return net


def list_networks(session: Session, project_id: str | None, admin: bool = False) -> list[Network]:
    query = select(Network).where(_visible(project_id, admin)).order_by(Network.created_at, Network.id)
    return list(session.scalars(query).all())


def _vni_ranges() -> tuple[tuple[int, int], ...]:
    return get_settings().network.vni_ranges


def _segment(network_type: Any, physical_network: Any, segmentation_id: Any) -> tuple[str, str, int | None]:
    """Validated provider attributes (physical_network "" for vxlan: the store's unique index then holds)."""
    if network_type not in NETWORK_TYPES:
        raise invalid(f"provider:network_type {network_type!r} is not supported: use one of "
                      f"{', '.join(NETWORK_TYPES)}.")
    if segmentation_id is not None and (isinstance(segmentation_id, bool) or not isinstance(segmentation_id, int)):
        raise invalid(f"provider:segmentation_id {segmentation_id!r} is not an integer.")
    if network_type == "vxlan":
        if physical_network is not None:
            raise invalid("provider:physical_network specified for vxlan network.")
        if segmentation_id is not None and not 1 <= segmentation_id <= MAX_VNI:
            raise invalid(f"Segmentation ID {segmentation_id} is not a valid VXLAN VNI: it must be 1 to {MAX_VNI}.")
        return "vxlan", "", segmentation_id
    physnet = _text(physical_network, "provider:physical_network", 64)
    if not physnet:
        raise invalid(f"provider:physical_network required for {network_type} provider network.")
    if network_type == "flat":
        if segmentation_id is not None:
            raise invalid("provider:segmentation_id specified for flat network.")
        return "flat", physnet, None
    if segmentation_id is None:
        raise invalid("provider:segmentation_id required for vlan provider network.")
    if not 1 <= segmentation_id <= 4094:
        raise invalid(f"Segmentation ID {segmentation_id} is not a valid VLAN id: it must be 1 to 4094.")
    return "vlan", physnet, segmentation_id


def _insert_network(session: Session, net: Network) -> bool:
    try:
        with session.begin_nested():
            session.add(net)
            session.flush()
    except IntegrityError:
        return False
    return True


def _segment_in_use(net: Network) -> NeutronConflict:
    if net.network_type == "vxlan":
        return NeutronConflict(f"Unable to create the network. The tunnel ID {net.segmentation_id} is in use.",
                               kind="TunnelIdInUse")
    if net.network_type == "vlan":
        return NeutronConflict(f"Unable to create the network. The VLAN {net.segmentation_id} on physical network "
                               f"{net.physical_network} is in use.", kind="VlanIdInUse")
    return NeutronConflict(f"Unable to create the flat network. Physical network {net.physical_network} is in use.",
                           kind="FlatNetworkInUse")


def create_network(session: Session, project_id: str, *, name: Any = "", description: Any = "",
                   admin_state_up: Any = True, shared: Any = False, external: Any = False,
                   network_type: Any = None, physical_network: Any = None, segmentation_id: Any = None,
                   mtu: Any = None, admin: bool = False) -> Network:
    """A project's network: a VXLAN with a VNI of the configured ranges unless an admin names the segment."""
    name = _text(name, "name")
    if name == DEFAULT_NETWORK:
        raise NeutronConflict("The name default is the provider network's: choose another name.",
                              kind="NetworkNameInUse")
    for attr, value, rule in (("shared", shared, "create_network:shared"),
                              ("router:external", external, "create_network:router:external")):
        if _bool(value, attr) and not admin:
            raise PolicyNotAuthorized(rule)
    if not admin and (network_type is not None or physical_network is not None or segmentation_id is not None):
        raise PolicyNotAuthorized("create_network:provider:network_type")
    kind, physnet, seg = _segment(network_type or "vxlan", physical_network, segmentation_id)
    if mtu is None:
        mtu = 1450 if kind == "vxlan" else 1500
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 9000:
        raise invalid(f"mtu {mtu!r} is not an integer from 68 to 9000.")
    quotas.check(session, project_id, "network")
    net = Network(name=name, description=_text(description, "description", 1024), project_id=project_id,
                  shared=shared, external=external, admin_state_up=_bool(admin_state_up, "admin_state_up"),
                  network_type=kind, physical_network=physnet, segmentation_id=seg, mtu=mtu)
    if kind == "flat" and session.scalar(select(Network.id).where(Network.network_type == "flat",
                                                                   Network.physical_network == physnet)):
        raise _segment_in_use(net)
    if seg is not None:
        if not _insert_network(session, net):
            raise _segment_in_use(net)
        return net
    if kind != "vxlan":
        session.add(net)
        session.flush()
        return net
    used = set(session.scalars(select(Network.segmentation_id).where(Network.network_type == "vxlan")).all())
    for low, high in _vni_ranges():
        for vni in range(low, high + 1):
            if vni in used:
                continue
            net.segmentation_id = vni
            if _insert_network(session, net):
                return net
            used.add(vni)  # taken by a concurrent create
    raise NeutronConflict("Unable to create the network. No tenant network is available for allocation.",
                          kind="NoNetworkAvailable")


def update_network(session: Session, net: Network, changes: dict[str, Any], admin: bool = False) -> Network:
    """Neutron's network update: name, description, admin_state_up, mtu; shared and router:external (admin)."""
    for key, value in changes.items():
        if key == "name":
            net.name = _text(value, "name")
            if net.name == DEFAULT_NETWORK:
                raise NeutronConflict("The name default is the provider network's: choose another name.",
                                      kind="NetworkNameInUse")
        elif key == "description":
            net.description = _text(value, "description", 1024)
        elif key == "admin_state_up":
            net.admin_state_up = _bool(value, key)
        elif key in ("shared", "router:external"):
            if not admin:
                raise PolicyNotAuthorized(f"update_network:{key}")
            setattr(net, "shared" if key == "shared" else "external", _bool(value, key))
        elif key == "mtu":
            if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 9000:
                raise invalid(f"mtu {value!r} is not an integer from 68 to 9000.")
            net.mtu = value
        elif key.startswith("provider:"):
            raise invalid("Plugin does not support updating provider attributes.")
        else:
            raise BadInput(f"Cannot update read-only attribute {key}")
    net.revision_number += 1
    session.flush()
    return net


def _bound(port: Port) -> bool:
    return (port.device_owner or "").startswith("compute:")


def delete_network(session: Session, net: Network) -> None:
    """A network with its subnets and unbound ports; NetworkInUse (409) while a server has a port on it."""
    ports = list(session.scalars(select(Port).where(Port.network_id == net.id)).all())
    if any(_bound(p) for p in ports):
        raise NeutronInUse(f"Unable to complete operation on network {net.id}. There are one or more ports still "
                           "in use on the network.", kind="NetworkInUse")
    for port in ports:
        delete_port_row(session, port)
    session.execute(delete(IPAllocation).where(IPAllocation.network_id == net.id))
    session.execute(delete(Subnet).where(Subnet.network_id == net.id))
    session.delete(net)
    session.flush()


# -- subnets ----------------------------------------------------------------------------------------


def get_subnet(session: Session, subnet_id: str, project_id: str | None, admin: bool = False) -> Subnet:
    sub = session.get(Subnet, subnet_id) if isinstance(subnet_id, str) else None
    if sub is None:
        raise SubnetNotFound(subnet_id)
    try:
        get_network(session, sub.network_id, project_id, admin)
    except NetworkNotFound:
        raise SubnetNotFound(subnet_id) from None
    return sub


def list_subnets(session: Session, project_id: str | None, admin: bool = False) -> list[Subnet]:
    query = (select(Subnet).join(Network, Network.id == Subnet.network_id).where(_visible(project_id, admin))
             .order_by(Subnet.created_at, Subnet.id))
    return list(session.scalars(query).all())


def network_subnets(session: Session, network_id: str) -> list[Subnet]:
    return list(session.scalars(select(Subnet).where(Subnet.network_id == network_id)
                                .order_by(Subnet.created_at, Subnet.id)).all())


def _check_overlap(session: Session, net: Network, cidr: ipaddress.IPv4Network, exclude: str | None = None) -> None:
    """Neutron refuses overlapping subnets on one network; kvmfleet within the whole project, so one project's
    networks can be joined without address clashes."""
    rows = session.execute(select(Subnet.id, Subnet.cidr, Subnet.network_id).join(
        Network, Network.id == Subnet.network_id).where(or_(Network.project_id == net.project_id,
                                                            Subnet.network_id == net.id))).all()
    for sid, other, other_net in rows:
        if sid != exclude and ipaddress.ip_network(other).overlaps(cidr):
            raise invalid(f"Requested subnet with cidr: {cidr} for network: {net.id} overlaps with another subnet "
                          f"({other} on network {other_net}).")


def create_subnet(session: Session, project_id: str, network_id: Any, *, cidr: Any, name: Any = "",
                  description: Any = "", ip_version: Any = 4, gateway_ip: Any = UNSET,
                  allocation_pools: Any = None, dns_nameservers: Any = None, host_routes: Any = None,
                  enable_dhcp: Any = True, admin: bool = False) -> Subnet:
    """An IPv4 subnet of a network the project owns (an admin: any), validated as Neutron does; a CIDR that
    overlaps one of the project's subnets is a 400 and nothing is made."""
    if not isinstance(network_id, str) or not network_id:
        raise BadInput("Invalid input for network_id. Reason: a network id is required.")
    _refuse_default(network_id)
    net = get_network(session, network_id, project_id, admin)
    if not admin and net.project_id != project_id:
        raise PolicyNotAuthorized("create_subnet")
    if ip_version == 6:
        raise BadInput("Invalid input for ip_version. Reason: IPv6 subnets are not supported by kvmfleet "
                       "(ip_version 4 only).")
    if ip_version != 4:
        raise BadInput(f"Invalid input for ip_version. Reason: {ip_version!r} is not in [4, 6].")
    if cidr is None:
        raise BadInput("Bad subnets request: a cidr must be specified in the absence of a subnet pool.")
    net_cidr = ipam.parse_cidr(cidr)
    gw = ipam.gateway(net_cidr, gateway_ip, gateway_ip is not UNSET)
    pools = ipam.pools(net_cidr, allocation_pools, gw)
    dns = ipam.dns_nameservers(dns_nameservers)
    routes = ipam.host_routes(host_routes, net_cidr)
    _check_overlap(session, net, net_cidr)
    quotas.check(session, net.project_id if admin else project_id, "subnet")
    sub = Subnet(name=_text(name, "name"), description=_text(description, "description", 1024), network_id=net.id,
                 project_id=net.project_id if admin else project_id, ip_version=4, cidr=str(net_cidr),
                 gateway_ip=str(gw) if gw else None, enable_dhcp=_bool(enable_dhcp, "enable_dhcp"),
                 dns_nameservers=dns, allocation_pools=ipam.pools_json(pools), host_routes=routes)
    session.add(sub)
    net.revision_number += 1
    session.flush()
    session.expire(net, ["subnets"])
    return sub


def update_subnet(session: Session, sub: Subnet, changes: dict[str, Any]) -> Subnet:
    net_cidr = ipaddress.ip_network(sub.cidr)
    gw = ipaddress.ip_address(sub.gateway_ip) if sub.gateway_ip else None
    if "gateway_ip" in changes:
        gw = ipam.gateway(net_cidr, changes["gateway_ip"], True)
    current = ipam.stored_pools(sub)
    pools = ipam.pools(net_cidr, changes["allocation_pools"], gw) if "allocation_pools" in changes else current
    if "allocation_pools" not in changes and gw is not None:
        ipam.pools(net_cidr, ipam.pools_json(current), gw)  # the new gateway must not be in a pool
    for key, value in changes.items():
        if key == "name":
            sub.name = _text(value, "name")
        elif key == "description":
            sub.description = _text(value, "description", 1024)
        elif key == "enable_dhcp":
            sub.enable_dhcp = _bool(value, key)
        elif key == "dns_nameservers":
            sub.dns_nameservers = ipam.dns_nameservers(value)
        elif key == "host_routes":
            sub.host_routes = ipam.host_routes(value, net_cidr)
        elif key not in ("gateway_ip", "allocation_pools"):
            raise BadInput(f"Cannot update read-only attribute {key}")
    sub.gateway_ip = str(gw) if gw else None
    sub.allocation_pools = ipam.pools_json(pools)
    sub.revision_number += 1
    session.flush()
    return sub


def delete_subnet(session: Session, sub: Subnet) -> None:
    """SubnetInUse (409) while a port holds an address of it."""
    if session.scalar(select(IPAllocation.port_id).where(IPAllocation.subnet_id == sub.id).limit(1)):
        raise NeutronInUse(f"Unable to complete operation on subnet {sub.id}: One or more ports have an IP "
                           "allocation from this subnet.", kind="SubnetInUse")
    net = session.get(Network, sub.network_id)
    session.delete(sub)
    if net is not None:
        net.revision_number += 1
        session.flush()
        session.expire(net, ["subnets"])
    session.flush()


# -- ports ------------------------------------------------------------------------------------------


def get_port(session: Session, port_id: str, project_id: str | None, admin: bool = False) -> Port:
    """A port of the project (any for an admin); PortNotFound otherwise."""
    port = session.get(Port, port_id) if isinstance(port_id, str) else None
    if port is None or not (admin or project_id is None or port.project_id == project_id):
        raise PortNotFound(port_id)
    return port


def list_ports(session: Session, project_id: str | None, admin: bool = False) -> list[Port]:
    query = select(Port).order_by(Port.created_at, Port.id)
    if not (admin or project_id is None):
        query = query.where(Port.project_id == project_id)
    return list(session.scalars(query).all())


def _groups(session: Session, project_id: str, names: Any) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise BadInput(f"Invalid input for security_groups. Reason: {names!r} is not a list of ids.")
    return [find_security_group(session, n, project_id).id for n in dict.fromkeys(names)]


def create_port(session: Session, project_id: str, network_id: str, *, name: str = "",
                fixed_ips: list[dict[str, Any]] | None = None, mac_address: str | None = None,
                security_groups: list[str] | None = None, port_security_enabled: bool | None = None,
                admin: bool = False, auto_delete: bool = False, device_id: str = "", device_owner: str = "",
                description: str = "", admin_state_up: bool = True, binding_host: str | None = None) -> Port:
    """A port of the project on a network it sees, with a MAC (fa:16:3e:..., or the given one: admin or the
    network's owner) and its fixed IPs (the given ones, or the first free address of the network's first
    subnet with one); security groups default to the project's ``default`` group (none without port
    security, which only an admin turns off). IpAddressGenerationFailure (409) when the pools are
    exhausted, and then no port exists."""
    if not isinstance(network_id, str) or not network_id:
        raise BadInput("Invalid input for network_id. Reason: a network id is required.")
    _refuse_default(network_id)
    net = get_network(session, network_id, project_id, admin)
    owner = admin or net.project_id == project_id
    if mac_address is not None and not owner:
        raise PolicyNotAuthorized("create_port:mac_address")
    if isinstance(fixed_ips, list) and not owner and any(isinstance(f, dict) and f.get("ip_address") is not None
                                                         for f in fixed_ips):
        raise PolicyNotAuthorized("create_port:fixed_ips:ip_address")
    if port_security_enabled is not None:
        _bool(port_security_enabled, "port_security_enabled")
        if not admin and port_security_enabled is False:
            raise PolicyNotAuthorized("create_port:port_security_enabled")
    secure = port_security_enabled is not False
    if security_groups is None:
        groups = [ensure_default_group(session, project_id).id] if secure else []
    else:
        groups = _groups(session, project_id, security_groups)
    if groups and not secure:
        raise BadInput("Port security must be enabled and port must have an IP address in order to use security "
                       "groups.", kind="PortSecurityAndIPRequiredForSecurityGroups")
    mac = ipam.parse_mac(mac_address) if mac_address is not None else ipam.new_mac(session, net.id)
    if mac_address is not None and ipam.mac_in_use(session, net.id, mac):
        raise NeutronConflict(f"Unable to complete operation for network {net.id}. The mac address {mac} is in "
                              "use.", kind="MacAddressInUse")
    quotas.check(session, project_id, "port")
    port = Port(name=_text(name, "name"), description=_text(description, "description", 1024), network_id=net.id,
                project_id=project_id, mac_address=mac, admin_state_up=_bool(admin_state_up, "admin_state_up"),
                device_id=_text(device_id, "device_id"), device_owner=_text(device_owner, "device_owner"),
                binding_host=_text(binding_host, "binding:host_id") or None, port_security_enabled=secure,
                auto_delete=bool(auto_delete))
    try:
        with session.begin_nested():  # the port and its addresses, or nothing
            session.add(port)
            session.flush()
            ipam.allocate(session, port, network_subnets(session, net.id), fixed_ips)
            set_port_groups(session, port.id, groups)
    except IntegrityError:
        raise NeutronConflict(f"Unable to complete operation for network {net.id}. The mac address {mac} is in "
                              "use.", kind="MacAddressInUse") from None
    return port


def update_port(session: Session, port: Port, changes: dict[str, Any], admin: bool = False) -> Port:
    """Neutron's port update: name, description, admin_state_up, security_groups, port_security_enabled
    (admin), fixed_ips (the port's addresses become the given ones), device_id/device_owner, binding:host_id
    (admin)."""
    _refuse_default(port.network_id)
    secure = port.port_security_enabled
    if "port_security_enabled" in changes:
        value = _bool(changes["port_security_enabled"], "port_security_enabled")
        if value != port.port_security_enabled and not admin:
            raise PolicyNotAuthorized("update_port:port_security_enabled")
        secure = value
    groups = port_groups(session, port.id)
    if "security_groups" in changes:
        groups = [] if changes["security_groups"] is None else _groups(session, port.project_id,
                                                                       changes["security_groups"])
    if groups and not secure:
        if "security_groups" in changes:
            raise BadInput("Port security must be enabled and port must have an IP address in order to use "
                           "security groups.", kind="PortSecurityAndIPRequiredForSecurityGroups")
        raise NeutronConflict("Port has security group associated. Cannot disable port security or ip address "
                              "until security group is removed", kind="PortSecurityPortHasSecurityGroup")
    with session.begin_nested():
        for key, value in changes.items():
            if key in ("name", "description", "device_id", "device_owner"):
                setattr(port, key, _text(value, key, 1024 if key == "description" else 255))
            elif key == "admin_state_up":
                port.admin_state_up = _bool(value, key)
            elif key == "binding:host_id":
                if not admin:
                    raise PolicyNotAuthorized("update_port:binding:host_id")
                port.binding_host = _text(value, key) or None
            elif key == "fixed_ips":
                if value is not None and not isinstance(value, list):
                    raise BadInput(f"Invalid input for fixed_ips. Reason: {value!r} is not a list.")
                net = session.get(Network, port.network_id)
                if not (admin or (net is not None and net.project_id == port.project_id)) and any(
                        isinstance(f, dict) and f.get("ip_address") for f in value or []):
                    raise PolicyNotAuthorized("update_port:fixed_ips:ip_address")
                session.execute(delete(IPAllocation).where(IPAllocation.port_id == port.id))
                session.flush()
                ipam.allocate(session, port, network_subnets(session, port.network_id), value or [])
            elif key not in ("security_groups", "port_security_enabled"):
                raise BadInput(f"Cannot update read-only attribute {key}")
        port.port_security_enabled = secure
        set_port_groups(session, port.id, groups)
        port.revision_number += 1
        session.flush()
    session.expire(port, ["fixed_ips", "security_groups"])
    return port


def delete_port(session: Session, port: Port) -> None:
    """A port no server holds: PortInUse (409) while one does (detach it from the server first)."""
    _refuse_default(port.network_id)
    if _bound(port):
        raise NeutronInUse(f"Unable to complete operation on port {port.id} for network {port.network_id}. Port "
                           f"already has an attached device {port.device_id} (a server): remove it from the server "
                           "before deleting it.", kind="PortInUse")
    delete_port_row(session, port)


def delete_port_row(session: Session, port: Port) -> None:
    """The port, its addresses and its group memberships, with no checks (its server is going)."""
    session.execute(delete(IPAllocation).where(IPAllocation.port_id == port.id))
    session.execute(delete(PortSecurityGroup).where(PortSecurityGroup.port_id == port.id))
    session.delete(port)
    session.flush()


def server_ports(session: Session, server_id: str) -> list[Port]:
    """The tenant ports bound to a server (Port.device_id == its uuid)."""
    return list(session.scalars(select(Port).where(Port.device_id == server_id)
                                .order_by(Port.created_at, Port.id)).all())


def add_port_group(session: Session, port: Port, group_id: str) -> None:
    groups = port_groups(session, port.id)
    if group_id not in groups:
        set_port_groups(session, port.id, [*groups, group_id])
        port.revision_number += 1
    session.expire(port, ["security_groups"])


def remove_port_group(session: Session, port: Port, group_id: str) -> None:
    groups = port_groups(session, port.id)
    if group_id in groups:
        set_port_groups(session, port.id, [g for g in groups if g != group_id])
        port.revision_number += 1
    session.expire(port, ["security_groups"])


__all__ += ["add_port_group", "get_group", "network_subnets", "remove_port_group", "server_ports"]
