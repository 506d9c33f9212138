"""`kvmfleet network|subnet|port|security-group` commands: tenant networks, subnets, ports, security groups
and rules, on the store directly through the functions the Network API calls (kvmfleet.network.tenant,
secgroups), as an operator (admin): a network, port or group is named by id or, where unique, by name.
Output is Neutron's body of each resource (``-f json``) or a table."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select

from kvmfleet.cli.host import FORMAT_OPTION, Format, emit, errors_as_one_line

network_app = typer.Typer(no_args_is_help=True)
subnet_app = typer.Typer(no_args_is_help=True)
port_app = typer.Typer(no_args_is_help=True)
security_group_app = typer.Typer(no_args_is_help=True)
POOLS_OPTION = typer.Option(None, "--allocation-pool", help="START-END (repeatable).")
DNS_OPTION = typer.Option(None, "--dns-nameserver", help="Repeatable.")
FIXED_IP_OPTION = typer.Option(None, "--fixed-ip", help="subnet=ID,ip-address=IP (repeatable).")
GROUPS_OPTION = typer.Option(None, "--security-group", help="Name or id (repeatable).")
PROJECT_OPTION = typer.Option(None, "--project", envvar="KVMFLEET_PROJECT",
                              help="Project name or id (default: the CLI's default project).")
NETWORK_COLUMNS = [("id", "ID"), ("name", "Name"), ("project_id", "Project"), ("provider:network_type", "Type"),
                   ("provider:segmentation_id", "Segment"), ("shared", "Shared"), ("subnets", "Subnets")]
SUBNET_COLUMNS = [("id", "ID"), ("name", "Name"), ("network_id", "Network"), ("cidr", "CIDR"),
                  ("gateway_ip", "Gateway")]
PORT_COLUMNS = [("id", "ID"), ("name", "Name"), ("network_id", "Network"), ("mac_address", "MAC Address"),
                ("fixed_ips", "Fixed IPs"), ("device_id", "Device"), ("status", "Status")]
GROUP_COLUMNS = [("id", "ID"), ("name", "Name"), ("project_id", "Project"), ("description", "Description")]
RULE_COLUMNS = [("id", "ID"), ("direction", "Direction"), ("ethertype", "Ethertype"), ("protocol", "Protocol"),
                ("port_range_min", "Port min"), ("port_range_max", "Port max"), ("remote_ip_prefix", "Remote IP"),
                ("remote_group_id", "Remote group")]


def _store() -> Any:
    from kvmfleet.store import get_store

    return get_store()


def _project_id(session: Any, project: str | None) -> str:
    from kvmfleet.compute.common import project_for

    return project_for(session, project).id


def _find(session: Any, model: Any, key: str, not_found: Any) -> Any:
    """A row by id, else the one row of that name (several: the id is needed)."""
    from kvmfleet.network.errors import NeutronConflict

    row = session.get(model, key)
    if row is not None:
        return row
    rows = session.scalars(select(model).where(model.name == key)).all()
    if len(rows) > 1:
        raise NeutronConflict(f"{len(rows)} rows are named {key!r}: use the id.")
    if not rows:
        raise not_found(key)
    return rows[0]


def _network(session: Any, key: str) -> Any:
    from kvmfleet.network.errors import NetworkNotFound
    from kvmfleet.store.network_models import Network

    return _find(session, Network, key, NetworkNotFound)


def _flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for key in ("subnets", "fixed_ips"):
            if isinstance(row.get(key), list):
                row[key] = ", ".join(f"{i['ip_address']}" if isinstance(i, dict) else str(i) for i in row[key])
    return rows


# -- networks ---------------------------------------------------------------------------------------


@network_app.command("create")
def network_create(name: str = typer.Argument(..., help="Name."),
                   network_type: str = typer.Option(None, "--provider-network-type",
                                                    help="vxlan (default), vlan, flat."),
                   physical_network: str = typer.Option(None, "--provider-physical-network"),
                   segment: int = typer.Option(None, "--provider-segment", help="VNI or VLAN id."),
                   shared: bool = typer.Option(False, "--share/--no-share"),
                   external: bool = typer.Option(False, "--external/--internal"),
                   mtu: int = typer.Option(None, "--mtu"), description: str = typer.Option("", "--description"),
                   project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Create a tenant network (a VXLAN with a VNI of network.vni_ranges unless a segment is named)."""
    from kvmfleet.api.network import views
    from kvmfleet.network import tenant

    with errors_as_one_line(), _store().transaction() as s:
        net = tenant.create_network(s, _project_id(s, project), name=name, description=description, shared=shared,
                                    external=external, network_type=network_type, physical_network=physical_network,
                                    segmentation_id=segment, mtu=mtu, admin=True)
        emit(views.tenant_network(net, True), fmt)


@network_app.command("list")
def network_list(project: str = typer.Option(None, "--project", help="Only this project's."),
                 fmt: Format = FORMAT_OPTION) -> None:
    """List tenant networks (the provider network default is each host's libvirt network: `host list`)."""
    from kvmfleet.api.network import views
    from kvmfleet.network import tenant

    with errors_as_one_line(), _store().transaction() as s:
        nets = tenant.list_networks(s, None, True)
        if project:
            pid = _project_id(s, project)
            nets = [n for n in nets if n.project_id == pid]
        emit(_flat([views.tenant_network(n, True) for n in nets]), fmt, NETWORK_COLUMNS)


@network_app.command("show")
def network_show(network: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a network."""
    from kvmfleet.api.network import views

    with errors_as_one_line(), _store().transaction() as s:
        emit(views.tenant_network(_network(s, network), True), fmt)


@network_app.command("delete")
def network_delete(network: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a network with its subnets and unbound ports (refused while a server has a port on it)."""
    from kvmfleet.network import tenant

    with errors_as_one_line(), _store().transaction() as s:
        tenant.delete_network(s, _network(s, network))


# -- subnets ----------------------------------------------------------------------------------------


@subnet_app.command("create")
def subnet_create(name: str = typer.Argument(..., help="Name."),
                  network: str = typer.Option(..., "--network", help="Network name or id."),
                  cidr: str = typer.Option(..., "--cidr", help="IPv4 CIDR, e.g. 10.0.0.0/24."),
                  gateway: str = typer.Option(None, "--gateway", help="Gateway address, or 'none' (default: the "
                                              "first host)."),
                  pools: list[str] = POOLS_OPTION, dns: list[str] = DNS_OPTION,
                  dhcp: bool = typer.Option(True, "--dhcp/--no-dhcp"),
                  fmt: Format = FORMAT_OPTION) -> None:
    """Create an IPv4 subnet of a network (for the network's project)."""
    from kvmfleet.api.network import views
    from kvmfleet.network import tenant

    gateway_ip: Any = tenant.UNSET if gateway is None else (None if gateway.lower() == "none" else gateway)
    allocation = [dict(zip(("start", "end"), p.split("-", 1), strict=False)) for p in pools] if pools else None
    with errors_as_one_line(), _store().transaction() as s:
        net = _network(s, network)
        sub = tenant.create_subnet(s, net.project_id, net.id, cidr=cidr, name=name, gateway_ip=gateway_ip,
                                   allocation_pools=allocation, dns_nameservers=list(dns) if dns else None,
                                   enable_dhcp=dhcp, admin=True)
        emit(views.tenant_subnet(sub), fmt)


@subnet_app.command("list")
def subnet_list(network: str = typer.Option(None, "--network", help="Only this network's."),
                fmt: Format = FORMAT_OPTION) -> None:
    """List tenant subnets."""
    from kvmfleet.api.network import views
    from kvmfleet.network import tenant

    with errors_as_one_line(), _store().transaction() as s:
        subs = tenant.list_subnets(s, None, True)
        if network:
            nid = _network(s, network).id
            subs = [x for x in subs if x.network_id == nid]
        emit([views.tenant_subnet(x) for x in subs], fmt, SUBNET_COLUMNS)


@subnet_app.command("delete")
def subnet_delete(subnet: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a subnet (refused while a port holds an address of it)."""
    from kvmfleet.network import tenant
    from kvmfleet.network.errors import SubnetNotFound
    from kvmfleet.store.network_models import Subnet

    with errors_as_one_line(), _store().transaction() as s:
        tenant.delete_subnet(s, _find(s, Subnet, subnet, SubnetNotFound))


# -- ports ------------------------------------------------------------------------------------------


@port_app.command("create")
def port_create(network: str = typer.Option(..., "--network", help="Network name or id."),
                name: str = typer.Option("", "--name"),
                fixed_ip: list[str] = FIXED_IP_OPTION,
                mac: str = typer.Option(None, "--mac-address"),
                groups: list[str] = GROUPS_OPTION,
                no_security: bool = typer.Option(False, "--disable-port-security"),
                project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Create a port (its address: the given one, or the first free one of the network's subnets)."""
    from kvmfleet.api.network import views
    from kvmfleet.network import tenant

    fixed = None
    if fixed_ip:
        fixed = []
        for spec in fixed_ip:
            parts = dict(p.split("=", 1) for p in spec.split(",") if "=" in p)
            fixed.append({k: v for k, v in (("subnet_id", parts.get("subnet")),
                                            ("ip_address", parts.get("ip-address"))) if v})
    with errors_as_one_line(), _store().transaction() as s:
        port = tenant.create_port(s, _project_id(s, project), _network(s, network).id, name=name, fixed_ips=fixed,
                                  mac_address=mac, security_groups=list(groups) if groups else None,
                                  port_security_enabled=False if no_security else None, admin=True)
        emit(views.tenant_port(port, True), fmt)


@port_app.command("list")
def port_list(project: str = typer.Option(None, "--project", help="Only this project's."),
              network: str = typer.Option(None, "--network", help="Only this network's."),
              fmt: Format = FORMAT_OPTION) -> None:
    """List tenant ports."""
    from kvmfleet.api.network import views
    from kvmfleet.network import tenant

    with errors_as_one_line(), _store().transaction() as s:
        ports = tenant.list_ports(s, _project_id(s, project) if project else None, True)
        if network:
            nid = _network(s, network).id
            ports = [p for p in ports if p.network_id == nid]
        emit(_flat([views.tenant_port(p, True) for p in ports]), fmt, PORT_COLUMNS)


@port_app.command("show")
def port_show(port: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a port."""
    from kvmfleet.api.network import views
    from kvmfleet.network.errors import PortNotFound
    from kvmfleet.store.network_models import Port

    with errors_as_one_line(), _store().transaction() as s:
        emit(views.tenant_port(_find(s, Port, port, PortNotFound), True), fmt)


@port_app.command("delete")
def port_delete(port: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a port (refused while a server holds it)."""
    from kvmfleet.network import tenant
    from kvmfleet.network.errors import PortNotFound
    from kvmfleet.store.network_models import Port

    with errors_as_one_line(), _store().transaction() as s:
        tenant.delete_port(s, _find(s, Port, port, PortNotFound))


# -- security groups --------------------------------------------------------------------------------


def _group(session: Any, key: str) -> Any:
    from kvmfleet.network.errors import SecurityGroupNotFound
    from kvmfleet.store.network_models import SecurityGroup

    return _find(session, SecurityGroup, key, SecurityGroupNotFound)


@security_group_app.command("create")
def group_create(name: str = typer.Argument(..., help="Name."), description: str = typer.Option("", "--description"),
                 project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Create a security group (with Neutron's egress-to-anywhere rules)."""
    from kvmfleet.api.network import views
    from kvmfleet.network import secgroups

    with errors_as_one_line(), _store().transaction() as s:
        group = secgroups.create_group(s, _project_id(s, project), name=name, description=description)
        emit(views.security_group(group), fmt)


@security_group_app.command("list")
def group_list(project: str = typer.Option(None, "--project", help="Only this project's (its default group is "
                                           "made if missing)."), fmt: Format = FORMAT_OPTION) -> None:
    """List security groups."""
    from kvmfleet.api.network import views
    from kvmfleet.network import secgroups

    with errors_as_one_line(), _store().transaction() as s:
        pid = _project_id(s, project) if project else None
        emit([views.security_group(g) for g in secgroups.list_groups(s, pid, pid is None)], fmt, GROUP_COLUMNS)


@security_group_app.command("show")
def group_show(group: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a security group with its rules."""
    from kvmfleet.api.network import views

    with errors_as_one_line(), _store().transaction() as s:
        body = views.security_group(_group(s, group))
        if fmt is Format.json:
            emit(body, fmt)
        else:
            emit({k: v for k, v in body.items() if k != "security_group_rules"}, fmt)
            emit(body["security_group_rules"], fmt, RULE_COLUMNS)


@security_group_app.command("delete")
def group_delete(group: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a security group (not a project's default one, nor one a port is in)."""
    from kvmfleet.network import secgroups

    with errors_as_one_line(), _store().transaction() as s:
        secgroups.delete_group(s, _group(s, group))


@security_group_app.command("rule-create")
def rule_create(group: str = typer.Argument(..., help="Security group name or id."),
                direction: str = typer.Option("ingress", "--direction", help="ingress or egress."),
                ethertype: str = typer.Option("IPv4", "--ethertype", help="IPv4 or IPv6."),
                protocol: str = typer.Option(None, "--protocol", help="tcp, udp, icmp, a number, or any."),
                port: str = typer.Option(None, "--port", help="PORT or MIN:MAX (tcp/udp); TYPE[:CODE] for icmp."),
                remote_ip: str = typer.Option(None, "--remote-ip", help="CIDR."),
                remote_group: str = typer.Option(None, "--remote-group", help="Security group name or id."),
                fmt: Format = FORMAT_OPTION) -> None:
    """Add a rule to a security group."""
    from kvmfleet.api.network import views
    from kvmfleet.network import secgroups

    low, _, high = (port or "").partition(":")
    with errors_as_one_line(), _store().transaction() as s:
        grp = _group(s, group)
        remote = _group(s, remote_group).id if remote_group else None
        rule = secgroups.create_rule(s, grp.project_id, grp.id, direction=direction, ethertype=ethertype,
                                     protocol=protocol, port_range_min=low or None,
                                     port_range_max=(high or low) if port and protocol not in ("icmp", "1") else
                                     (high or None), remote_ip_prefix=remote_ip, remote_group_id=remote)
        emit(views.rule(rule), fmt)


@security_group_app.command("rule-delete")
def rule_delete(rule: str = typer.Argument(..., help="Rule id.")) -> None:
    """Delete a security group rule."""
    from kvmfleet.network import secgroups

    with errors_as_one_line(), _store().transaction() as s:
        secgroups.delete_rule(s, secgroups.get_rule(s, rule, None, True))
