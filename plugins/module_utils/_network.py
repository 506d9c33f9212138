# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt networks of a host and the DHCP leases their dnsmasq handed out.

``observe_networks(conn)`` reads, read-only, every network (or the named ones): its XML, whether it is
active, persistent and autostarted, and ``virNetworkGetDHCPLeases``. ``build_networks`` turns those raw
observations into the ``networks`` facts without touching the host, so the assembly is tested from data
files. The controller maps a guest's MAC to the IPv4 address it got from these leases.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import ERR_NO_SUPPORT, libvirt_errors

IP_TYPES = {0: 4, 1: 6}  # virIPAddrType: VIR_IP_ADDR_TYPE_IPV4, VIR_IP_ADDR_TYPE_IPV6
DEFAULT_MTU = 1500


def _prefix(ip_el, family):
    prefix = ip_el.get("prefix")
    if prefix and prefix.isdigit():
        return int(prefix)
    netmask = ip_el.get("netmask")
    if netmask and family == 4:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    return 24 if family == 4 else 64


def parse_network(xml):
    """Name, uuid, bridge, forward mode, MTU and the IP ranges of a network's XML."""
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    forward = root.find("forward")
    mtu = root.find("mtu")
    mac = root.find("mac")
    subnets = []
    for ip_el in root.findall("ip"):
        address = ip_el.get("address")
        if not address:
            continue
        family = 6 if (ip_el.get("family") == "ipv6" or ":" in address) else 4
        prefix = _prefix(ip_el, family)
        try:
            cidr = str(ipaddress.ip_interface(f"{address}/{prefix}").network)
        except ValueError:
            continue
        ranges = [{"start": r.get("start"), "end": r.get("end")}
                  for r in ip_el.findall("./dhcp/range") if r.get("start") and r.get("end")]
        subnets.append({"ip_version": family, "address": address, "prefix": prefix, "cidr": cidr,
                        "dhcp_ranges": ranges})
    return {
        "name": root.findtext("name"),
        "uuid": root.findtext("uuid"),
        "bridge": bridge.get("name") if bridge is not None else None,
        "forward_mode": (forward.get("mode") or "nat") if forward is not None else "isolated",
        "mtu": int(mtu.get("size")) if mtu is not None and (mtu.get("size") or "").isdigit() else DEFAULT_MTU,
        "mac": mac.get("address").lower() if mac is not None and mac.get("address") else None,
        "subnets": subnets,
    }


def normalise_leases(leases):
    """virNetworkGetDHCPLeases entries -> [{mac, ip_address, prefix, ip_version, hostname, expires_at}],
    sorted by MAC then address (the client id and IAID are left out: the controller does not need them)."""
    out = []
    for lease in leases or []:
        mac = (lease.get("mac") or "").lower()
        ip = lease.get("ipaddr")
        if not mac or not ip:
            continue
        out.append({
            "mac": mac,
            "ip_address": ip,
            "prefix": lease.get("prefix"),
            "ip_version": IP_TYPES.get(lease.get("type"), 6 if ":" in ip else 4),
            "hostname": lease.get("hostname") or None,
            "expires_at": int(lease.get("expirytime") or 0),
        })
    out.sort(key=lambda item: (item["mac"], item["ip_version"], item["ip_address"]))
    return out


def build_networks(observations):
    """The ``networks`` facts, sorted by name, from [{xml, active, persistent, autostart, leases,
    leases_error}]."""
    networks = []
    for obs in observations:
        net = parse_network(obs["xml"])
        net.update({
            "active": bool(obs.get("active")),
            "persistent": bool(obs.get("persistent")),
            "autostart": bool(obs.get("autostart")),
            "dhcp_leases": normalise_leases(obs.get("leases")),
            "dhcp_leases_error": obs.get("leases_error"),
        })
        networks.append(net)
    networks.sort(key=lambda n: n["name"] or "")
    return networks


def _leases(net):
    """(leases, error): a driver without lease support (libvirt's test driver) gives no leases, not a failure."""
    if not net.isActive():
        return [], None
    try:
        with libvirt_errors(f"read DHCP leases of network {net.name()}"):
            return net.DHCPLeases(), None
    except KvmfleetError as exc:
        if exc.details.get("libvirt_error_code") == ERR_NO_SUPPORT:
            return [], "not supported by this libvirt driver"
        raise


def observe_networks(conn, names=None):
    """Raw observations of the host's networks (all, or those in ``names``; missing names are skipped)."""
    with libvirt_errors("list networks"):
        nets = conn.listAllNetworks(0)
    wanted = set(names) if names else None
    observed = []
    for net in nets:
        with libvirt_errors("read network"):
            name = net.name()
        if wanted is not None and name not in wanted:
            continue
        with libvirt_errors(f"read network {name}"):
            xml = net.XMLDesc(0)
            active = net.isActive()
            persistent = net.isPersistent()
            autostart = net.autostart() if persistent else False
        leases, error = _leases(net)
        observed.append({"xml": xml, "active": active, "persistent": persistent, "autostart": autostart,
                         "leases": leases, "leases_error": error})
    return observed
