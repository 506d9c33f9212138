# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security groups as libvirt nwfilters: one filter per port (``kf-port-<port id>``), Neutron's semantics.

``port_spec`` validates a port and its rules; ``build_filter_xml`` makes the filter with xml.etree; ``filter_rules``
normalises a filter's XML (ours or libvirt's rendering of it) into sorted rule strings, so an existing filter is
compared and diffed by its rules, never by raw XML. Pure logic; the port_firewall module does the libvirt calls.

Layout of a filter with port security (chain root; lower priority first; ebtables and iptables rules are kept
apart by libvirt, the priority orders each):
  - ebtables, egress: frames only from the port's MAC; IPv4 only from its fixed IPs (or DHCP from 0.0.0.0), ARP
    only with its MAC and IPs, IPv6 only from its IPs and link-local; other ethertypes dropped;
  - iptables, both ways: established/related accepted, DHCP client traffic accepted, ICMPv6 neighbour discovery
    accepted, then one accept (state NEW) per security group rule, then everything else dropped.
Without port security the filter accepts everything (it still exists, so it can be switched on a running guest).
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_mac, validate_name

FILTER_PREFIX = "kf-port-"
DIRECTIONS = {"ingress": "in", "egress": "out"}  # nwfilter: 'in' is traffic to the guest
ETHERTYPES = ("IPv4", "IPv6")
# IP protocol (name or number) -> nwfilter protocol element for IPv4 / IPv6; the protocols nwfilter can match
PROTOCOLS = {
    "tcp": ("tcp", "tcp-ipv6"), "udp": ("udp", "udp-ipv6"), "icmp": ("icmp", "icmpv6"),
    "sctp": ("sctp", "sctp-ipv6"), "udplite": ("udplite", "udplite-ipv6"), "esp": ("esp", "esp-ipv6"),
    "ah": ("ah", "ah-ipv6"), "igmp": ("igmp", None), "icmpv6": (None, "icmpv6"), "any": ("all", "all-ipv6"),
}
PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "132": "sctp", "136": "udplite", "50": "esp", "51": "ah",
                    "2": "igmp", "58": "icmpv6"}
PROTOCOL_ALIASES = {"ipv6-icmp": "icmpv6", "icmp6": "icmpv6"}
PORT_PROTOCOLS = ("tcp", "udp", "sctp")
ND_TYPES = (133, 134, 135, 136)  # router solicitation/advertisement, neighbour solicitation/advertisement
RULE_PRIORITY_BASE = 200
RULE_PRIORITY_MAX = 999


def filter_name(port_id):
    return validate_name(FILTER_PREFIX + validate_name(port_id, "port id"), "filter name")


def _address(value, what):
    try:
        return ipaddress.ip_address(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} {value!r} is not an IP address", what=what) from exc


def _port(value, what, low=0, high=65535):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{what} must be an integer from {low} to {high}, got {value!r}", what=what)
    return value


def _protocol(value, what):
    if value is None:
        return "any"
    text = str(value).strip().lower()
    text = PROTOCOL_NUMBERS.get(text, PROTOCOL_ALIASES.get(text, text))
    if text not in PROTOCOLS:
        raise ValidationError(f"{what} protocol {value!r} cannot be enforced by nwfilter; use one of "
                              f"{', '.join(sorted(PROTOCOLS))} or their numbers", what=what)
    return text


def rule_spec(rule, what):
    """A security group rule, validated and normalised."""
    if not isinstance(rule, dict):
        raise ValidationError(f"{what} must be a dict", what=what)
    direction = rule.get("direction")
    if direction not in DIRECTIONS:
        raise ValidationError(f"{what} direction {direction!r} must be ingress or egress", what=what)
    ethertype = rule.get("ethertype") or "IPv4"
    if ethertype not in ETHERTYPES:
        raise ValidationError(f"{what} ethertype {ethertype!r} must be IPv4 or IPv6", what=what)
    version = 6 if ethertype == "IPv6" else 4
    protocol = _protocol(rule.get("protocol"), what)
    if protocol == "icmp" and version == 6:
        protocol = "icmpv6"
    if PROTOCOLS[protocol][version == 6] is None:
        raise ValidationError(f"{what} protocol {protocol} does not exist for {ethertype}", what=what)
    icmp = protocol in ("icmp", "icmpv6")
    lo = _port(rule.get("port_range_min"), f"{what} port_range_min", 0, 255 if icmp else 65535)
    hi = _port(rule.get("port_range_max"), f"{what} port_range_max", 0, 255 if icmp else 65535)
    if not icmp and (lo is not None or hi is not None):
        if protocol not in PORT_PROTOCOLS:
            raise ValidationError(f"{what} has a port range, which protocol {protocol} does not have", what=what)
        lo = 1 if lo is None else lo
        hi = lo if hi is None else hi
        if lo > hi:
            raise ValidationError(f"{what} port_range_min {lo} is above port_range_max {hi}", what=what)
    if icmp and hi is not None and lo is None:
        raise ValidationError(f"{what} has an ICMP code (port_range_max) without a type (port_range_min)", what=what)
    prefix = rule.get("remote_ip_prefix")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError as exc:
            raise ValidationError(f"{what} remote_ip_prefix {prefix!r} is not a CIDR", what=what) from exc
        if net.version != version:
            raise ValidationError(f"{what} remote_ip_prefix {prefix} is not an {ethertype} network", what=what)
        prefix = None if net.prefixlen == 0 else str(net)
    remote_ips = rule.get("remote_ips")
    if remote_ips is not None:
        addrs = {_address(a, f"{what} remote_ips entry") for a in remote_ips}
        remote_ips = [str(a) for a in sorted(a for a in addrs if a.version == version)]
    return {"direction": direction, "ethertype": ethertype, "protocol": protocol, "port_range_min": lo,
            "port_range_max": hi, "remote_ip_prefix": prefix, "remote_ips": remote_ips}


def port_spec(port, what=None):
    """A port, validated: {id, filter, mac, ips, port_security, rules}."""
    if not isinstance(port, dict):
        raise ValidationError("each entry of ports must be a dict")
    pid = validate_name(port.get("id"), "port id")
    what = what or f"port {pid}"
    security = port.get("port_security", True)
    if not isinstance(security, bool):
        raise ValidationError(f"{what} port_security must be true or false", what=what)
    return {
        "id": pid,
        "filter": filter_name(pid),
        "mac": validate_mac(port.get("mac"), f"MAC address of {what}"),
        "ips": [str(a) for a in sorted({_address(ip, f"{what} ips entry") for ip in port.get("ips") or []},
                                       key=lambda a: (a.version, a))],
        "port_security": security,
        "rules": [rule_spec(r, f"{what} rule {i}") for i, r in enumerate(port.get("rules") or [])],
    }


# -- the filter ----------------------------------------------------------------------------------------------

def _rule(root, action, direction, priority, tag, **attrs):
    rule = ET.SubElement(root, "rule", action=action, direction=direction, priority=str(priority))
    ET.SubElement(rule, tag, **{k: str(v) for k, v in attrs.items() if v is not None})


def _cidr_attrs(cidr, side):
    net = ipaddress.ip_network(cidr, strict=False)
    return {f"{side}ipaddr": str(net.network_address), f"{side}ipmask": str(net.prefixlen)}


def _group_rules(rule):
    """[(tag, attrs)] nwfilter matches for one security group rule; [] when it matches nothing."""
    version6 = rule["ethertype"] == "IPv6"
    tag = PROTOCOLS[rule["protocol"]][version6]
    base = {"state": "NEW"}
    lo, hi = rule["port_range_min"], rule["port_range_max"]
    if rule["protocol"] in ("icmp", "icmpv6"):
        base.update(type=lo, code=hi)
    elif lo is not None:
        base.update(dstportstart=lo, dstportend=hi)
    side = "src" if rule["direction"] == "ingress" else "dst"  # the remote end of the connection
    if rule["remote_ips"] is not None:
        mask = "128" if version6 else "32"
        return [(tag, dict(base, **{f"{side}ipaddr": ip, f"{side}ipmask": mask})) for ip in rule["remote_ips"]]
    if rule["remote_ip_prefix"]:
        return [(tag, dict(base, **_cidr_attrs(rule["remote_ip_prefix"], side)))]
    return [(tag, base)]


def build_filter_element(port, uuid=None):
    """The <filter> for a validated port spec."""
    root = ET.Element("filter", name=port["filter"], chain="root")
    if uuid:
        ET.SubElement(root, "uuid").text = uuid
    if not port["port_security"]:
        _rule(root, "accept", "inout", 500, "all")
        _rule(root, "accept", "inout", 500, "all-ipv6")
        return root
    mac = port["mac"]
    v4 = [ip for ip in port["ips"] if ":" not in ip]
    v6 = [ip for ip in port["ips"] if ":" in ip]
    # ebtables: anti-spoofing on what the guest sends
    _rule(root, "drop", "out", -800, "mac", srcmacaddr=mac, match="no")
    _rule(root, "accept", "out", -790, "ip", srcipaddr="0.0.0.0", protocol="udp", srcportstart=68, dstportstart=67)
    for ip in v4:
        _rule(root, "accept", "out", -780, "ip", srcipaddr=ip)
    _rule(root, "drop", "out", -770, "ip")
    for ip in ["0.0.0.0"] + v4:  # 0.0.0.0: the guest's address conflict probe
        _rule(root, "accept", "out", -760, "arp", arpsrcmacaddr=mac, arpsrcipaddr=ip)
    _rule(root, "drop", "out", -750, "arp")
    _rule(root, "accept", "out", -740, "ipv6", srcipaddr="fe80::", srcipmask=10)
    for ip in v6:
        _rule(root, "accept", "out", -740, "ipv6", srcipaddr=ip)
    _rule(root, "drop", "out", -730, "ipv6")
    _rule(root, "drop", "out", -720, "mac")
    # iptables: stateful security groups
    _rule(root, "accept", "inout", 100, "all", state="ESTABLISHED,RELATED")
    _rule(root, "accept", "inout", 100, "all-ipv6", state="ESTABLISHED,RELATED")
    _rule(root, "accept", "out", 110, "udp", srcportstart=68, dstportstart=67)
    _rule(root, "accept", "in", 110, "udp", srcportstart=67, dstportstart=68)
    for nd_type in ND_TYPES:
        _rule(root, "accept", "inout", 120, "icmpv6", type=nd_type)
    priority = RULE_PRIORITY_BASE
    for rule in port["rules"]:
        for tag, attrs in _group_rules(rule):
            _rule(root, "accept", DIRECTIONS[rule["direction"]], priority, tag, **attrs)
        priority = min(priority + 1, RULE_PRIORITY_MAX)
    _rule(root, "drop", "inout", 1000, "all")
    _rule(root, "drop", "inout", 1000, "all-ipv6")
    return root


def build_filter_xml(port, uuid=None):
    return ET.tostring(build_filter_element(port, uuid), encoding="unicode")


def _norm_value(key, value):
    value = value.strip()
    if key.endswith("macaddr"):
        return value.lower()
    if key.endswith("ipaddr"):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    if key == "state":
        return ",".join(sorted(value.upper().split(",")))
    if value.lower().startswith("0x") and key not in ("srcmacaddr", "dstmacaddr"):
        try:
            return str(int(value, 16))
        except ValueError:
            return value
    return value


def filter_rules(filter_xml):
    """A filter's rules as sorted strings 'priority direction action proto(k=v,...)' (its uuid and attribute
    order left out), plus the chain and the filters it references."""
    root = ET.fromstring(filter_xml) if isinstance(filter_xml, str) else filter_xml
    out = []
    for rule in root.findall("rule"):
        for match in rule:
            attrs = ",".join(f"{k}={_norm_value(k, v)}" for k, v in sorted(match.attrib.items()))
            out.append(f"{int(rule.get('priority', '500')):+05d} {rule.get('direction')} {rule.get('action')} "
                       f"{match.tag}({attrs})")
    out.extend(f"ref {ref.get('filter')}" for ref in root.findall("filterref"))
    out.append(f"chain {root.get('chain') or 'root'}")
    return sorted(out)


def rule_changes(before, after):
    """{added, removed}: the rule strings only in ``after`` / only in ``before``."""
    b, a = set(before or []), set(after or [])
    return {"added": sorted(a - b), "removed": sorted(b - a)}
