"""Networks as the controller sees them. Two kinds:

- the provider network ``default`` (read-only, derived: model.py): the hosts' libvirt networks, each
  instance's NICs and the IPv4 addresses the hosts' DHCP leases gave them (below);
- tenant networks, subnets, ports, security groups and rules, rows of the store: tenant.py (networks,
  subnets, ports and what kvmfleet.compute calls), ipam.py (CIDRs, pools, race-free addresses and MACs),
  secgroups.py (groups, rules, each project's default group), quotas.py (Neutron's quotas, enforced),
  errors.py (Neutron's errors with their status and type).

For the servers API and views (kvmfleet.compute, kvmfleet.api.compute):

    ports_for(session, instances) -> {uuid: [Port(id, mac, ip or None, network_id, network_name, host, ...)]}
    get_network(session, id_or_name, project_id) -> Network (store NotFound otherwise)

For the Network API (kvmfleet.api.network): list_networks, list_subnets, list_ports, get_port,
security_groups, quotas. Lease refresh: refresh_leases (one job over the hosts) and periodic_refresh
(kvmfleet serve's job). See model.py for how Neutron's model maps onto kvmfleet's.
"""

from __future__ import annotations

from kvmfleet.network.leases import LeaseReport, periodic_refresh, refresh_leases
from kvmfleet.network.model import (
    DEFAULT_NETWORK,
    Network,
    Port,
    Subnet,
    get_network,
    get_port,
    list_networks,
    list_ports,
    list_subnets,
    network_id,
    port_id,
    ports_for,
    subnet_id,
)

__all__ = [
    "DEFAULT_NETWORK",
    "LeaseReport",
    "Network",
    "Port",
    "Subnet",
    "get_network",
    "get_port",
    "list_networks",
    "list_ports",
    "list_subnets",
    "network_id",
    "periodic_refresh",
    "port_id",
    "ports_for",
    "refresh_leases",
    "subnet_id",
]
