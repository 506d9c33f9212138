"""Compute API: a server's security groups (nova/api/openstack/compute/security_groups.py,
ServerSecurityGroupController), the proxy view of what the network API holds.

    GET /servers/{id}/os-security-groups   {"security_groups": [{id, name, description, tenant_id, rules}]}

A server with a NIC is in its project's ``default`` group (kvmfleet.network.security_groups), the
group `server show` names; one without a NIC is in none. The rules are Nova's rendering of that group's
(allow-everything) rules.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.servers import find
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.compute.common import instance_networks
from kvmfleet.network import security_groups
from kvmfleet.store.models import Project

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({"os_compute_api:os-security-groups:list": policy.PROJECT_READER_OR_ADMIN})


def _rule(rule: security_groups.Rule) -> dict[str, Any]:
    # Nova's _format_security_group_rule: ingress rules only; protocol/ports null mean "any".
    return {"id": rule.id, "parent_group_id": rule.security_group_id, "ip_protocol": None, "from_port": None,
            "to_port": None, "group": {}, "ip_range": {"cidr": "0.0.0.0/0" if rule.ethertype == "IPv4" else "::/0"}}


def _group(group: security_groups.SecurityGroup) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "description": group.description, "tenant_id": group.project_id,
            "rules": [_rule(r) for r in group.rules if r.direction == "ingress"]}


@router.get("/servers/{server_id}/os-security-groups")
def list_server_security_groups(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("os_compute_api:os-security-groups:list")
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        if not instance_networks(inst):
            return {"security_groups": []}
        project = session.get(Project, inst.project_id)
        return {"security_groups": [_group(security_groups.default_group(project))]}
