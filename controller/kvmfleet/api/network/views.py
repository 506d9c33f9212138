"""Neutron v2.0 bodies for the resources kvmfleet serves, with the attributes of the extensions it lists
(kvmfleet.api.network.extensions): project-id, external-net, provider and binding (admin only, as
Neutron's policies show them), net-mtu, security-group, standard-attr-description, -timestamp and
-revisions. Nothing else: a field Neutron adds only with an extension kvmfleet does not honour is absent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kvmfleet.network.model import Network, Port, Subnet
from kvmfleet.network.security_groups import Rule, SecurityGroup


def stamp(when: dt.datetime | None) -> str | None:
    """Neutron's standard-attr-timestamp format: 2016-03-08T20:19:41Z."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.replace(microsecond=0).isoformat() + "Z"


def _std(created: dt.datetime | None, updated: dt.datetime | None = None, description: str = "") -> dict[str, Any]:
    return {"description": description, "created_at": stamp(created), "updated_at": stamp(updated or created),
            "revision_number": 0}


def network(net: Network, owner: str, admin: bool) -> dict[str, Any]:
    body = {
        "id": net.id, "name": net.name, "tenant_id": owner, "project_id": owner, "admin_state_up": True,
        "status": net.status, "subnets": [s.id for s in net.subnets], "shared": True, "router:external": False,
        "mtu": net.mtu, **_std(net.created_at, description=_describe(net)),
    }
    if admin:
        # each host's network is its own segment behind NAT: Neutron's "local" type
        body.update({"provider:network_type": "local", "provider:physical_network": None,
                     "provider:segmentation_id": None})
    return body


def _describe(net: Network) -> str:
    mode = net.forward_mode or "nat"
    return f"libvirt network {net.name} ({mode}) on each host: guests on different hosts are not on one segment"


def subnet(sub: Subnet, owner: str) -> dict[str, Any]:
    return {
        "id": sub.id, "name": sub.name, "tenant_id": owner, "project_id": owner, "network_id": sub.network_id,
        "ip_version": sub.ip_version, "subnetpool_id": None, "enable_dhcp": sub.enable_dhcp,
        "ipv6_ra_mode": None, "ipv6_address_mode": None, "gateway_ip": sub.gateway_ip, "cidr": sub.cidr,
        "allocation_pools": [{"start": a, "end": b} for a, b in sub.allocation_pools], "host_routes": [],
        "dns_nameservers": [], **_std(None),
    }


def port(p: Port, security_group: str, admin: bool) -> dict[str, Any]:
    body = {
        "id": p.id, "name": "", "network_id": p.network_id, "tenant_id": p.project_id, "project_id": p.project_id,
        "mac_address": p.mac, "admin_state_up": True, "status": p.status, "device_id": p.instance_uuid,
        "device_owner": f"compute:{p.availability_zone}",
        "fixed_ips": [{"subnet_id": p.subnet_id, "ip_address": p.ip}] if p.ip else [],
        "security_groups": [security_group], "binding:vnic_type": "normal",
        **_std(p.created_at, p.updated_at),
    }
    if admin:
        body.update({"binding:host_id": p.host or "", "binding:vif_type": "bridge" if p.host else "unbound",
                     "binding:vif_details": {}, "binding:profile": {}})
    return body


def rule(r: Rule) -> dict[str, Any]:
    return {"id": r.id, "tenant_id": r.project_id, "project_id": r.project_id,
            "security_group_id": r.security_group_id, "direction": r.direction, "ethertype": r.ethertype,
            "protocol": None, "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
            "remote_group_id": None, **_std(r.created_at)}


def security_group(g: SecurityGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "tenant_id": g.project_id, "project_id": g.project_id,
            "security_group_rules": [rule(r) for r in g.rules], **_std(g.created_at, description=g.description)}
