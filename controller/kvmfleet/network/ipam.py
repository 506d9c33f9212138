"""IPAM: subnet CIDRs, gateways and allocation pools validated as Neutron does, and race-free address
and MAC allocation.

Uniqueness is the store's: the primary key of ip_allocations is (subnet_id, ip_address) and ports have
UNIQUE (network_id, mac_address). An allocation reads what is taken, tries the first free candidate in a
SAVEPOINT (``session.begin_nested()``) and, when a concurrent transaction took it first (IntegrityError),
rolls back only that savepoint and tries the next one. That holds on SQLite (one writer at a time anyway)
and on PostgreSQL at READ COMMITTED (the second insert waits for the first's commit, then fails).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kvmfleet.network.errors import BadInput, IpAddressGenerationFailure, NeutronConflict, invalid
from kvmfleet.store.network_models import IPAllocation, Port, Subnet

MAC_PREFIX = "fa:16:3e"  # Neutron's base_mac
MAC_ATTEMPTS = 16

Pool = tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]


def parse_cidr(cidr: Any) -> ipaddress.IPv4Network:
    """An IPv4 network from ``cidr`` (host bits must be zero, as Neutron's validator has it)."""
    if not isinstance(cidr, str) or "/" not in cidr:
        raise BadInput(f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet.")
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise BadInput(f"Invalid input for cidr. Reason: '{cidr}' is not a valid IP subnet.") from None
    if net.version != 4:
        raise BadInput("Invalid input for ip_version. Reason: kvmfleet subnets are IPv4 only (ip_version 4).")
    if str(net) != cidr.strip():
        raise BadInput(f"Invalid input for cidr. Reason: '{cidr}' isn't a recommended CIDR, '{net}' is "
                       "recommended.")
    if net.prefixlen > 30:
        raise invalid(f"The CIDR {net} is too small: an IPv4 subnet needs a prefix length of at most /30.")
    return net


def parse_ip(value: Any, what: str = "ip_address") -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(str(value).strip()) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None or addr.version != 4:
        raise BadInput(f"Invalid input for {what}. Reason: '{value}' is not a valid IPv4 address.")
    return addr


def first_host(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net.network_address + 1


def last_host(net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net.broadcast_address - 1


def gateway(net: ipaddress.IPv4Network, value: Any, given: bool) -> ipaddress.IPv4Address | None:
    """The subnet's gateway: the first host by default, None when given as null; one outside the subnet (or
    its network or broadcast address) is Neutron's 400."""
    if not given:
        return first_host(net)
    if value is None:
        return None
    addr = parse_ip(value, "gateway_ip")
    if addr not in net or addr in (net.network_address, net.broadcast_address):
        raise invalid(f"Gateway IP {addr} is not in subnet {net}.", kind="InvalidInput")
    return addr


def _pool_str(pool: Pool) -> str:
    return f"{pool[0]}-{pool[1]}"


def default_pools(net: ipaddress.IPv4Network, gw: ipaddress.IPv4Address | None) -> list[Pool]:
    """The whole range minus the network, broadcast and gateway addresses (Neutron's default pools)."""
    start, end = first_host(net), last_host(net)
    if gw is None or gw < start or gw > end:
        return [(start, end)]
    pools = []
    if gw > start:
        pools.append((start, gw - 1))
    if gw < end:
        pools.append((gw + 1, end))
    return pools


def pools(net: ipaddress.IPv4Network, value: Any, gw: ipaddress.IPv4Address | None) -> list[Pool]:
    """Validated allocation pools [{start, end}] (default: default_pools): inside the CIDR (not its network
    or broadcast address), start <= end, not overlapping each other, not holding the gateway."""
    if value is None:
        return default_pools(net, gw)
    if not isinstance(value, list) or not value:
        raise BadInput(f"Invalid input for allocation_pools. Reason: {value!r} is not a list of {{start, end}}.")
    out: list[Pool] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"start", "end"}:
            raise BadInput(f"Invalid input for allocation_pools. Reason: {item!r} is not a {{start, end}} pair.")
        start, end = parse_ip(item["start"], "allocation_pools"), parse_ip(item["end"], "allocation_pools")
        pool = (start, end)
        if start > end:
            raise BadInput(f"The allocation pool {_pool_str(pool)} is not valid: start is after end.",
                           kind="InvalidAllocationPool")
        if start < first_host(net) or end > last_host(net):
            raise BadInput(f"The allocation pool {_pool_str(pool)} spans beyond the subnet cidr {net}.",
                           kind="OutOfBoundsAllocationPool")
        for other in out:
            if start <= other[1] and other[0] <= end:
                raise BadInput(f"Found overlapping allocation pools: {_pool_str(other)} {_pool_str(pool)} for "
                               f"subnet {net}.", kind="OverlappingAllocationPools")
        if gw is not None and start <= gw <= end:
            raise BadInput(f"Gateway ip {gw} conflicts with allocation pool {_pool_str(pool)}.",
                           kind="GatewayConflictWithAllocationPools")
        out.append(pool)
    return sorted(out)


def pools_json(values: list[Pool]) -> list[dict[str, str]]:
    return [{"start": str(a), "end": str(b)} for a, b in values]


def dns_nameservers(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInput(f"Invalid input for dns_nameservers. Reason: {value!r} is not a list.")
    out: list[str] = []
    for item in value:
        addr = str(parse_ip(item, "dns_nameservers"))
        if addr in out:
            raise BadInput(f"Invalid input for dns_nameservers. Reason: Duplicate nameserver '{addr}'.")
        out.append(addr)
    return out


def host_routes(value: Any, net: ipaddress.IPv4Network) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadInput(f"Invalid input for host_routes. Reason: {value!r} is not a list.")
    out: list[dict[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"destination", "nexthop"}:
            raise BadInput(f"Invalid input for host_routes. Reason: {item!r} is not a {{destination, nexthop}}.")
        try:
            dest = ipaddress.ip_network(str(item["destination"]), strict=True)
        except ValueError:
            raise BadInput(f"Invalid input for host_routes. Reason: '{item['destination']}' is not a valid "
                           "IP subnet.") from None
        if dest.version != 4:
            raise BadInput("Invalid input for host_routes. Reason: IPv4 destinations only.")
        route = {"destination": str(dest), "nexthop": str(parse_ip(item["nexthop"], "host_routes"))}
        if route in out:
            raise BadInput(f"Invalid input for host_routes. Reason: Duplicate hostroute '{route}'.")
        out.append(route)
    return out


def stored_pools(sub: Subnet) -> list[Pool]:
    return [(ipaddress.IPv4Address(p["start"]), ipaddress.IPv4Address(p["end"])) for p in sub.allocation_pools or []]


def candidates(sub: Subnet, taken: set[str]) -> Iterator[str]:
    """The free addresses of the subnet's pools, lowest first."""
    for start, end in stored_pools(sub):
        addr = start
        while addr <= end:
            text = str(addr)
            if text not in taken:
                yield text
            addr += 1


def taken(session: Session, subnet_id: str) -> set[str]:
    return set(session.scalars(select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet_id)).all())


def _insert(session: Session, port: Port, sub: Subnet, address: str) -> bool:
    """Try to hold ``address`` for the port in a savepoint; False when another holder has it."""
    try:
        with session.begin_nested():
            session.add(IPAllocation(subnet_id=sub.id, ip_address=address, port_id=port.id, network_id=sub.network_id))
            session.flush()
    except IntegrityError:
        return False
    return True


def allocate_any(session: Session, port: Port, sub: Subnet) -> str | None:
    """The first free address of the subnet's pools for the port, or None when the pools are exhausted."""
    held = taken(session, sub.id)
    for address in candidates(sub, held):
        if _insert(session, port, sub, address):
            return address
    return None


def allocate_specific(session: Session, port: Port, sub: Subnet, address: str) -> str:
    """``address`` of the subnet for the port (anywhere in the CIDR but its network, broadcast and gateway
    addresses): Neutron's IpAddressInUse (409) when it is taken."""
    net = ipaddress.ip_network(sub.cidr)
    addr = parse_ip(address)
    if addr not in net:
        raise invalid(f"IP address {addr} is not a valid IP for the specified subnet.", kind="InvalidIpForSubnet")
    if addr in (net.network_address, net.broadcast_address) or (sub.gateway_ip and str(addr) == sub.gateway_ip):
        raise invalid(f"IP address {addr} is the network, broadcast or gateway address of subnet {sub.id}.",
                      kind="InvalidIpForSubnet")
    if not _insert(session, port, sub, str(addr)):
        raise NeutronConflict(f"Unable to complete operation for network {sub.network_id}. The IP address {addr} "
                              "is in use.", kind="IpAddressInUse")
    return str(addr)


def allocate(session: Session, port: Port, subnets: list[Subnet], fixed_ips: list[dict[str, Any]] | None) -> None:
    """The port's addresses: each of ``fixed_ips`` ({subnet_id, ip_address}, both optional; an entry with
    neither is one address of the network), or, when None, one address of the network's first subnet that
    has a free one. IpAddressGenerationFailure (409) when the pools are exhausted."""
    by_id = {s.id: s for s in subnets}
    if fixed_ips is None:
        if not subnets:
            return
        for sub in subnets:
            if allocate_any(session, port, sub) is not None:
                return
        raise IpAddressGenerationFailure(port.network_id)
    if not isinstance(fixed_ips, list):
        raise BadInput(f"Invalid input for fixed_ips. Reason: {fixed_ips!r} is not a list.")
    for item in fixed_ips:
        if not isinstance(item, dict) or not set(item) <= {"subnet_id", "ip_address"}:
            raise BadInput(f"Invalid input for fixed_ips. Reason: {item!r} is not a {{subnet_id, ip_address}}.")
        sid, address = item.get("subnet_id"), item.get("ip_address")
        if sid is not None and not isinstance(sid, str):
            raise BadInput(f"Invalid input for fixed_ips. Reason: subnet_id {sid!r} is not an id.")
        if sid is not None:
            if sid not in by_id:
                raise invalid(f"Failed to create port on network {port.network_id}, because fixed_ips included "
                              f"invalid subnet {sid}.", kind="InvalidInput")
            sub = by_id[sid]
        elif address is not None:
            addr = parse_ip(address)
            found = [s for s in subnets if addr in ipaddress.ip_network(s.cidr)]
            if not found:
                raise invalid(f"IP address {addr} is not a valid IP for any of the subnets on the specified "
                              "network.", kind="InvalidIpForNetwork")
            sub = found[0]
        else:
            if not subnets:
                raise IpAddressGenerationFailure(port.network_id)
            for sub in subnets:
                if allocate_any(session, port, sub) is not None:
                    break
            else:
                raise IpAddressGenerationFailure(port.network_id)
            continue
        if address is None:
            if allocate_any(session, port, sub) is None:
                raise IpAddressGenerationFailure(port.network_id)
        else:
            allocate_specific(session, port, sub, address)


def random_mac() -> str:
    return MAC_PREFIX + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def parse_mac(value: Any) -> str:
    text = str(value).strip().lower() if isinstance(value, str) else ""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise BadInput(f"Invalid input for mac_address. Reason: '{value}' is not a valid MAC address.")
    if int(parts[0], 16) & 1:
        raise BadInput(f"Invalid input for mac_address. Reason: '{value}' is a multicast MAC address.")
    if text.replace("-", ":") == "00:00:00:00:00:00":
        raise BadInput(f"Invalid input for mac_address. Reason: '{value}' is not a valid MAC address.")
    return ":".join(parts)


def mac_in_use(session: Session, network_id: str, mac: str) -> bool:
    return session.scalar(select(Port.id).where(Port.network_id == network_id, Port.mac_address == mac)) is not None


def new_mac(session: Session, network_id: str) -> str:
    """A fa:16:3e:xx:xx:xx MAC not used on the network (the store's unique index is the final word)."""
    for _ in range(MAC_ATTEMPTS):
        mac = random_mac()
        if not mac_in_use(session, network_id, mac):
            return mac
    raise NeutronConflict(f"Unable to generate unique mac on network {network_id}.", kind="MacAddressGenerationFailure")


def overlaps(cidr: ipaddress.IPv4Network, others: list[str]) -> str | None:
    """The first of ``others`` that overlaps ``cidr``, or None."""
    for other in others:
        if ipaddress.ip_network(other).overlaps(cidr):
            return other
    return None
