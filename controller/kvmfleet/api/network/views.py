"""Neutron v2.0 bodies for the resources kvmfleet serves, with the attributes of the extensions it lists
(kvmfleet.api.network.extensions): project-id, external-net, provider and binding (admin only, as
Neutron's policies show them), net-mtu, security-group, port-security, stateful-security-group,
standard-attr-description, -timestamp and -revisions; plus the empty lists every Neutron body carries
(tags, availability_zones, allowed_address_pairs, extra_dhcp_opts) that clients read without asking.

Two kinds of objects: the provider network ``default`` and its ports, derived from the hosts and the
servers (kvmfleet.network.model, read-only), and tenant rows of the store (kvmfleet.store.network_models).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kvmfleet.network.model import Network, Port, Subnet
from kvmfleet.store import network_models as rows


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
        "mtu": net.mtu, "tags": [], "availability_zones": [], "availability_zone_hints": [],
        "port_security_enabled": True, **_std(net.created_at, description=_describe(net)),
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
        "dns_nameservers": [], "tags": [], **_std(None),
    }


def port(p: Port, security_group: str, admin: bool) -> dict[str, Any]:
    body = {
        "id": p.id, "name": "", "network_id": p.network_id, "tenant_id": p.project_id, "project_id": p.project_id,
        "mac_address": p.mac, "admin_state_up": True, "status": p.status, "device_id": p.instance_uuid,
        "device_owner": f"compute:{p.availability_zone}",
        "fixed_ips": [{"subnet_id": p.subnet_id, "ip_address": p.ip}] if p.ip else [],
        "security_groups": [security_group], "binding:vnic_type": "normal", "port_security_enabled": True,
        "allowed_address_pairs": [], "extra_dhcp_opts": [], "tags": [],
        **_std(p.created_at, p.updated_at),
    }
    if admin:
        body.update({"binding:host_id": p.host or "", "binding:vif_type": "bridge" if p.host else "unbound",
                     "binding:vif_details": {}, "binding:profile": {}})
    return body


def _row_std(row: Any) -> dict[str, Any]:
    return {"description": row.description or "", "created_at": stamp(row.created_at),
            "updated_at": stamp(row.updated_at or row.created_at), "revision_number": row.revision_number}


def tenant_network(net: rows.Network, admin: bool) -> dict[str, Any]:
    body = {
        "id": net.id, "name": net.name, "tenant_id": net.project_id, "project_id": net.project_id,
        "admin_state_up": net.admin_state_up, "status": net.status, "subnets": [s.id for s in net.subnets],
        "shared": net.shared, "router:external": net.external, "mtu": net.mtu, "tags": [],
        "availability_zones": [], "availability_zone_hints": [], "port_security_enabled": True, **_row_std(net),
    }
    if admin:
        body.update({"provider:network_type": net.network_type,
                     "provider:physical_network": net.physical_network or None,
                     "provider:segmentation_id": net.segmentation_id})
    return body


def tenant_subnet(sub: rows.Subnet) -> dict[str, Any]:
    return {
        "id": sub.id, "name": sub.name, "tenant_id": sub.project_id, "project_id": sub.project_id,
        "network_id": sub.network_id, "ip_version": sub.ip_version, "subnetpool_id": None,
        "enable_dhcp": sub.enable_dhcp, "ipv6_ra_mode": None, "ipv6_address_mode": None,
        "gateway_ip": sub.gateway_ip, "cidr": sub.cidr, "allocation_pools": list(sub.allocation_pools or []),
        "host_routes": list(sub.host_routes or []), "dns_nameservers": list(sub.dns_nameservers or []),
        "tags": [], **_row_std(sub),
    }


def tenant_port(port: rows.Port, admin: bool) -> dict[str, Any]:
    body = {
        "id": port.id, "name": port.name, "network_id": port.network_id, "tenant_id": port.project_id,
        "project_id": port.project_id, "mac_address": port.mac_address, "admin_state_up": port.admin_state_up,
        "status": port.status, "device_id": port.device_id, "device_owner": port.device_owner,
        "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in port.fixed_ips],
        "security_groups": [g.id for g in port.security_groups], "binding:vnic_type": "normal",
        "port_security_enabled": port.port_security_enabled, "allowed_address_pairs": [], "extra_dhcp_opts": [],
        "tags": [], **_row_std(port),
    }
    if admin:
        body.update({"binding:host_id": port.binding_host or "",
                     "binding:vif_type": "bridge" if port.binding_host else "unbound",
                     "binding:vif_details": {}, "binding:profile": {}})
    return body


def rule(r: rows.SecurityGroupRule) -> dict[str, Any]:
    return {"id": r.id, "tenant_id": r.project_id, "project_id": r.project_id,
            "security_group_id": r.security_group_id, "direction": r.direction, "ethertype": r.ethertype,
            "protocol": r.protocol, "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
            "remote_ip_prefix": r.remote_ip_prefix, "remote_group_id": r.remote_group_id, **_row_std(r)}


def security_group(g: rows.SecurityGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "tenant_id": g.project_id, "project_id": g.project_id,
            "security_group_rules": [rule(r) for r in g.rules], "stateful": g.stateful, "tags": [],
            **_row_std(g)}
