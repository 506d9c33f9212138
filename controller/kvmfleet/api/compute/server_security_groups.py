"""Compute API: a server's security groups (nova/api/openstack/compute/security_groups.py,
ServerSecurityGroupController and SecurityGroupActionController), the proxy view of what the network API
holds.

    GET  /servers/{id}/os-security-groups   {"security_groups": [{id, name, description, tenant_id, rules}]}
    POST /servers/{id}/action               {"addSecurityGroup": {"name": N}} / {"removeSecurityGroup": ...}

A server's groups are those of its tenant ports (Port.device_id == its uuid); a server whose NICs are all
on the provider network ``default`` is in its project's ``default`` group, the group `server show` names;
one without a NIC is in none. add/removeSecurityGroup apply to every tenant port of the server (202); an
unknown group is a 404, a server without tenant ports (or with port security off) a 400, as Nova answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.servers import find
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest
from kvmfleet.compute.common import instance_networks
from kvmfleet.network import tenant
from kvmfleet.store.network_models import PortSecurityGroup, SecurityGroup, SecurityGroupRule

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

LIST = "os_compute_api:os-security-groups:list"
ADD = "os_compute_api:os-security-groups:add"
REMOVE = "os_compute_api:os-security-groups:remove"
policy.register({LIST: policy.PROJECT_READER_OR_ADMIN, ADD: policy.PROJECT_MEMBER_OR_ADMIN,
                 REMOVE: policy.PROJECT_MEMBER_OR_ADMIN})
ACTIONS = {"addSecurityGroup": ADD, "removeSecurityGroup": REMOVE}


def _rule(session: Session, rule: SecurityGroupRule) -> dict[str, Any]:
    # Nova's _format_security_group_rule: ingress rules only; a remote group is named, else the CIDR.
    group: dict[str, Any] = {}
    ip_range: dict[str, Any] = {}
    if rule.remote_group_id:
        remote = session.get(SecurityGroup, rule.remote_group_id)
        group = {"name": remote.name if remote else None, "tenant_id": rule.project_id}
    else:
        ip_range = {"cidr": rule.remote_ip_prefix or ("0.0.0.0/0" if rule.ethertype == "IPv4" else "::/0")}
    return {"id": rule.id, "parent_group_id": rule.security_group_id, "ip_protocol": rule.protocol,
            "from_port": rule.port_range_min, "to_port": rule.port_range_max, "group": group, "ip_range": ip_range}


def _group(session: Session, group: SecurityGroup) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "description": group.description, "tenant_id": group.project_id,
            "rules": [_rule(session, r) for r in group.rules if r.direction == "ingress"]}


def server_groups(session: Session, inst: Any) -> list[SecurityGroup]:
    ports = tenant.server_ports(session, inst.uuid)
    if not ports:
        return [tenant.ensure_default_group(session, inst.project_id)] if instance_networks(inst) else []
    ids = session.scalars(select(PortSecurityGroup.security_group_id).where(
        PortSecurityGroup.port_id.in_([p.id for p in ports]))).all()
    groups = [session.get(SecurityGroup, gid) for gid in dict.fromkeys(ids)]
    return sorted((g for g in groups if g is not None), key=lambda g: (g.created_at, g.id))


@router.get("/servers/{server_id}/os-security-groups")
def list_server_security_groups(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(LIST)

    def run(session: Session) -> dict[str, Any]:
        inst = find(session, ctx, server_id)
        return {"security_groups": [_group(session, g) for g in server_groups(session, inst)]}

    return get_store(request).run_in_transaction(run)


def action(request: Request, ctx: RequestContext, server_id: str, name: str, body: dict[str, Any]) -> Response:
    """addSecurityGroup / removeSecurityGroup (server_actions' dispatch calls this)."""
    ctx.authorize(ACTIONS[name])
    args = body.get(name)
    if not isinstance(args, dict) or not isinstance(args.get("name"), str) or not args["name"].strip():
        raise BadRequest("Security group name cannot be empty")
    wanted = args["name"].strip()

    def run(session: Session) -> None:
        inst = find(session, ctx, server_id)
        group = tenant.find_security_group(session, wanted, inst.project_id)
        ports = tenant.server_ports(session, inst.uuid)
        if not ports:
            raise BadRequest(f"Server {server_id} has no port on a tenant network: security groups apply to "
                             "tenant ports (its NICs on the provider network default are in the default group).")
        if not all(p.port_security_enabled for p in ports):
            raise BadRequest("Network requires port_security_enabled and subnet associated in order to apply "
                             "security groups.")
        holding = [p for p in ports if group.id in [g.id for g in p.security_groups]]
        if name == "addSecurityGroup":
            if len(holding) == len(ports):
                raise BadRequest(f"Security group {wanted} is already associated with the instance {server_id}")
            for port in ports:
                tenant.add_port_group(session, port, group.id)
        else:
            if not holding:
                raise BadRequest(f"Security group {wanted} not associated with the instance {server_id}")
            for port in holding:
                tenant.remove_port_group(session, port, group.id)

    get_store(request).run_in_transaction(run)
    return Response(status_code=202)
