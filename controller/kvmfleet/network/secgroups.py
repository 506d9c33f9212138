"""Security groups and their rules (Neutron's semantics), rows of the store.

Each project has one ``default`` group (is_default), made on first need (a listing, a port create) with
Neutron's default rules: egress IPv4 and IPv6 to anywhere, ingress IPv4 and IPv6 from members of the group
itself. Its id is uuid5 of the project (kvmfleet.network.security_groups.group_id), the id the servers API
has always named, so two requests making it at once meet on the primary key and both use the one row.

Every function runs in the caller's transaction and raises kvmfleet.network.errors (store errors with
Neutron's status and type). Another project's group is a SecurityGroupNotFound (404).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kvmfleet.network import quotas
from kvmfleet.network.errors import (
    BadInput,
    NeutronConflict,
    NeutronInUse,
    SecurityGroupNotFound,
    SecurityGroupRuleNotFound,
)
from kvmfleet.network.security_groups import group_id as default_group_id
from kvmfleet.store.network_models import PortSecurityGroup, SecurityGroup, SecurityGroupRule

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "udplite": 136,
             "dccp": 33}
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33"}
ICMP_PROTOCOLS = {"icmp", "ipv6-icmp", "icmpv6", "1", "58"}
ETHERTYPES = ("IPv4", "IPv6")
DIRECTIONS = ("ingress", "egress")


def _text(value: Any, what: str, limit: int = 255) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(f"Invalid input for {what}. Reason: '{value}' is not a valid string.")
    if len(value) > limit:
        raise BadInput(f"Invalid input for {what}. Reason: '{value[:40]}...' exceeds maximum length of {limit}.")
    return value


# -- groups -----------------------------------------------------------------------------------------


def ensure_default_group(session: Session, project_id: str) -> SecurityGroup:
    """The project's ``default`` group, made (with Neutron's four default rules) when it has none."""
    gid = default_group_id(project_id)
    group = session.get(SecurityGroup, gid)
    if group is not None:
        return group
    try:
        with session.begin_nested():
            group = SecurityGroup(id=gid, name=DEFAULT_NAME, description=DEFAULT_DESCRIPTION, project_id=project_id,
                                  is_default=True)
            session.add(group)
            session.flush()
            for ethertype in ETHERTYPES:
                session.add(SecurityGroupRule(security_group_id=gid, project_id=project_id, direction="egress",
                                              ethertype=ethertype))
                session.add(SecurityGroupRule(security_group_id=gid, project_id=project_id, direction="ingress",
                                              ethertype=ethertype, remote_group_id=gid))
            session.flush()
    except IntegrityError:  # made meanwhile by a concurrent request
        session.expire_all()
    group = session.get(SecurityGroup, gid)
    if group is None:
        raise SecurityGroupNotFound(gid)
    return group


def list_groups(session: Session, project_id: str | None, admin: bool = False) -> list[SecurityGroup]:
    """The project's groups (its default one made first); every project's for an admin (or project None)."""
    if project_id:
        ensure_default_group(session, project_id)
    query = select(SecurityGroup).order_by(SecurityGroup.created_at, SecurityGroup.id)
    if not admin and project_id is not None:
        query = query.where(SecurityGroup.project_id == project_id)
    return list(session.scalars(query).all())


def get_group(session: Session, group_id: str, project_id: str | None, admin: bool = False) -> SecurityGroup:
    if project_id and group_id == default_group_id(project_id):
        return ensure_default_group(session, project_id)
    group = session.get(SecurityGroup, group_id)
    if group is None or not (admin or project_id is None or group.project_id == project_id):
        raise SecurityGroupNotFound(group_id)
    return group


def find_security_group(session: Session, name_or_id: str, project_id: str) -> SecurityGroup:
    """A group of the project by id or name (``default`` is made if missing). SecurityGroupNotFound (404)
    if none; a name that several groups share is a 409 (use the id)."""
    if name_or_id == DEFAULT_NAME:
        return ensure_default_group(session, project_id)
    group = session.get(SecurityGroup, name_or_id)
    if group is not None and group.project_id == project_id:
        return group
    named = session.scalars(select(SecurityGroup).where(SecurityGroup.project_id == project_id,
                                                        SecurityGroup.name == name_or_id)).all()
    if len(named) > 1:
        raise NeutronConflict(f"Multiple security_group matches found for name '{name_or_id}', use an ID to be "
                              "more specific.", kind="NoUniqueMatch")
    if not named:
        raise SecurityGroupNotFound(name_or_id)
    return named[0]


def create_group(session: Session, project_id: str, *, name: Any = "", description: Any = "",
                 stateful: Any = True) -> SecurityGroup:
    name, description = _text(name, "name"), _text(description, "description", 1024)
    if name == DEFAULT_NAME:
        raise NeutronConflict("Default security group already exists.", kind="SecurityGroupDefaultAlreadyExists")
    if not isinstance(stateful, bool):
        raise BadInput(f"Invalid input for stateful. Reason: '{stateful}' is not a valid boolean value.")
    ensure_default_group(session, project_id)
    quotas.check(session, project_id, "security_group")
    group = SecurityGroup(name=name, description=description, project_id=project_id, stateful=stateful)
    session.add(group)
    session.flush()
    for ethertype in ETHERTYPES:  # Neutron gives every new group egress to anywhere
        session.add(SecurityGroupRule(security_group_id=group.id, project_id=project_id, direction="egress",
                                      ethertype=ethertype))
    session.flush()
    return group


def update_group(session: Session, group: SecurityGroup, *, name: Any = None, description: Any = None) -> SecurityGroup:
    if name is not None:
        name = _text(name, "name")
        if group.is_default and name != group.name:
            raise NeutronInUse("Updating default security group not allowed.", kind="SecurityGroupCannotUpdateDefault")
        if not group.is_default and name == DEFAULT_NAME:
            raise NeutronConflict("Default security group already exists.", kind="SecurityGroupDefaultAlreadyExists")
        group.name = name
    if description is not None:
        group.description = _text(description, "description", 1024)
    group.revision_number += 1
    session.flush()
    return group


def ports_using(session: Session, group_id: str) -> list[str]:
    return list(session.scalars(select(PortSecurityGroup.port_id).where(
        PortSecurityGroup.security_group_id == group_id)).all())


def delete_group(session: Session, group: SecurityGroup) -> None:
    """Delete a group and its rules (and rules of other groups that name it as remote group). The default
    group, or one a port is in, is a 409."""
    if group.is_default:
        raise NeutronInUse("Removing default security group not allowed.", kind="SecurityGroupCannotRemoveDefault")
    if ports_using(session, group.id):
        raise NeutronInUse(f"Security Group {group.id} in use.", kind="SecurityGroupInUse")
    session.execute(delete(SecurityGroupRule).where(or_(SecurityGroupRule.security_group_id == group.id,
                                                        SecurityGroupRule.remote_group_id == group.id)))
    session.delete(group)
    session.flush()


# -- rules ------------------------------------------------------------------------------------------


def list_rules(session: Session, project_id: str | None, admin: bool = False) -> list[SecurityGroupRule]:
    if project_id:
        ensure_default_group(session, project_id)
    query = select(SecurityGroupRule).order_by(SecurityGroupRule.created_at, SecurityGroupRule.id)
    if not admin and project_id is not None:
        query = query.where(SecurityGroupRule.project_id == project_id)
    return list(session.scalars(query).all())


def get_rule(session: Session, rule_id: str, project_id: str | None, admin: bool = False) -> SecurityGroupRule:
    rule = session.get(SecurityGroupRule, rule_id)
    if rule is None or not (admin or project_id is None or rule.project_id == project_id):
        raise SecurityGroupRuleNotFound(rule_id)
    return rule


def _protocol(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "any")):
        return None
    text = str(value).strip().lower() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is not None and text in PROTOCOLS:
        return text
    if text is not None and text.isdigit() and 0 <= int(text) <= 255:
        return str(int(text))
    raise BadInput(f"Security group rule protocol {value} not supported. Only protocol values "
                   f"[None, {', '.join(sorted(PROTOCOLS))}] and integer representations [0 to 255] are supported.",
                   kind="SecurityGroupRuleInvalidProtocol")


def _port(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise BadInput(f"Invalid value for port {value}", kind="SecurityGroupInvalidPortValue")
    return int(value)


def _ports(protocol: str | None, low: int | None, high: int | None) -> tuple[int | None, int | None]:
    if low is None and high is None:
        return None, None
    if protocol is None:
        raise BadInput("Must also specify protocol if port range is given.",
                       kind="SecurityGroupProtocolRequiredWithPorts")
    if protocol in PORT_PROTOCOLS:
        if low is None or high is None:
            low = high = low if low is not None else high
        for value in (low, high):
            if not 1 <= value <= 65535:
                raise BadInput(f"Invalid value for port {value}", kind="SecurityGroupInvalidPortValue")
        if low > high:
            raise BadInput("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                           kind="SecurityGroupInvalidPortRange")
        return low, high
    if protocol in ICMP_PROTOCOLS:
        if low is None and high is not None:
            raise BadInput(f"ICMP code (port-range-max) {high} is provided but ICMP type (port-range-min) is "
                           "missing.", kind="SecurityGroupMissingIcmpType")
        for field, attr, value in (("type", "port_range_min", low), ("code", "port_range_max", high)):
            if value is not None and not 0 <= value <= 255:
                raise BadInput(f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.",
                               kind="SecurityGroupInvalidIcmpValue")
        return low, high
    raise BadInput(f"Invalid protocol {protocol} for port range, only supported for TCP, UDP, UDPLITE, SCTP and "
                   "DCCP.", kind="SecurityGroupInvalidProtocolForPortRange")


def _prefix(value: Any, ethertype: str) -> str | None:
    if value is None:
        return None
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=False) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None:
        raise BadInput(f"Invalid input for remote_ip_prefix. Reason: '{value}' is not a valid IP subnet.")
    if f"IPv{net.version}" != ethertype:
        raise BadInput(f"Conflicting value ethertype {ethertype} for CIDR {value}",
                       kind="SecurityGroupRuleParameterConflict")
    return str(net)


def create_rule(session: Session, project_id: str, security_group_id: Any, *, direction: Any,
                ethertype: Any = "IPv4", protocol: Any = None, port_range_min: Any = None,
                port_range_max: Any = None, remote_ip_prefix: Any = None, remote_group_id: Any = None,
                description: Any = "", admin: bool = False) -> SecurityGroupRule:
    """A rule of a group the caller sees (another project's: 404), validated as Neutron does; an identical
    rule is SecurityGroupRuleExists (409)."""
    if not isinstance(security_group_id, str) or not security_group_id:
        raise BadInput("Invalid input for security_group_id. Reason: a security group id is required.")
    group = get_group(session, security_group_id, project_id, admin)
    if direction not in DIRECTIONS:
        raise BadInput(f"Invalid input for direction. Reason: {direction} is not in {list(DIRECTIONS)}.")
    ethertype = "IPv4" if ethertype is None else ethertype
    if isinstance(ethertype, str) and ethertype.lower() in ("ipv4", "ipv6"):
        ethertype = "IPv" + ethertype[-1]
    if ethertype not in ETHERTYPES:
        raise BadInput(f"Security group rule for ethertype '{ethertype}' not supported. Allowed values are "
                       f"{list(ETHERTYPES)}.", kind="SecurityGroupRuleInvalidEtherType")
    proto = _protocol(protocol)
    low, high = _ports(proto, _port(port_range_min, "port_range_min"), _port(port_range_max, "port_range_max"))
    if remote_ip_prefix is not None and remote_group_id is not None:
        raise BadInput("Only remote_ip_prefix or remote_group_id may be provided.",
                       kind="SecurityGroupRemoteGroupAndRemoteIpPrefix")
    prefix = _prefix(remote_ip_prefix, ethertype)
    remote = None
    if remote_group_id is not None:
        remote = get_group(session, str(remote_group_id), project_id, admin).id
    owner = group.project_id
    for rule in session.scalars(select(SecurityGroupRule).where(SecurityGroupRule.security_group_id == group.id)):
        if (rule.direction, rule.ethertype, rule.protocol, rule.port_range_min, rule.port_range_max,
                rule.remote_ip_prefix, rule.remote_group_id) == (direction, ethertype, proto, low, high, prefix,
                                                                 remote):
            raise NeutronConflict(f"Security group rule already exists. Rule id is {rule.id}.",
                                  kind="SecurityGroupRuleExists")
    quotas.check(session, owner, "security_group_rule")
    rule = SecurityGroupRule(security_group_id=group.id, project_id=owner, direction=direction, ethertype=ethertype,
                             protocol=proto, port_range_min=low, port_range_max=high, remote_ip_prefix=prefix,
                             remote_group_id=remote, description=_text(description, "description", 1024))
    session.add(rule)
    group.revision_number += 1
    session.flush()
    return rule


def delete_rule(session: Session, rule: SecurityGroupRule) -> None:
    group = session.get(SecurityGroup, rule.security_group_id)
    if group is not None:
        group.revision_number += 1
    session.delete(rule)
    session.flush()


def port_groups(session: Session, port_id: str) -> list[str]:
    return list(session.scalars(select(PortSecurityGroup.security_group_id).where(
        PortSecurityGroup.port_id == port_id)).all())


def set_port_groups(session: Session, port_id: str, group_ids: list[str]) -> None:
    session.execute(delete(PortSecurityGroup).where(PortSecurityGroup.port_id == port_id))
    for gid in dict.fromkeys(group_ids):
        session.add(PortSecurityGroup(port_id=port_id, security_group_id=gid))
    session.flush()
