"""/network/v2.0/security-groups and /security-group-rules (kvmfleet.network.secgroups): each project's
``default`` group (made on first need, with Neutron's default rules) and the groups and rules it makes. A
project sees its own, admins every project's; another project's group or rule is a 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.network import PREFIX, views
from kvmfleet.api.network.bodies import project_of, resource
from kvmfleet.api.network.query import collection, select_fields
from kvmfleet.api.validation import json_body
from kvmfleet.network import secgroups
from kvmfleet.network.errors import BadInput

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "get_security_group": policy.PROJECT_READER_OR_ADMIN,
    "create_security_group": policy.PROJECT_MEMBER_OR_ADMIN,
    "update_security_group": policy.PROJECT_MEMBER_OR_ADMIN,
    "delete_security_group": policy.PROJECT_MEMBER_OR_ADMIN,
    "get_security_group_rule": policy.PROJECT_READER_OR_ADMIN,
    "create_security_group_rule": policy.PROJECT_MEMBER_OR_ADMIN,
    "delete_security_group_rule": policy.PROJECT_MEMBER_OR_ADMIN,
})

GROUP_ATTRS = {"id", "name", "tenant_id", "project_id", "security_group_rules", "description", "created_at",
               "updated_at", "revision_number", "stateful", "tags"}
RULE_ATTRS = {"id", "tenant_id", "project_id", "security_group_id", "direction", "ethertype", "protocol",
              "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "description",
              "created_at", "updated_at", "revision_number"}
GROUP_CREATE = {"name", "description", "stateful", "tenant_id", "project_id", "tags"}
GROUP_UPDATE = {"name", "description"}
RULE_CREATE = {"security_group_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
               "remote_ip_prefix", "remote_group_id", "description", "tenant_id", "project_id",
               "remote_address_group_id"}


@router.get("/security-groups", summary="List security groups")
def list_groups(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group")

    def run(session: Session) -> list[dict[str, Any]]:
        return [views.security_group(g) for g in secgroups.list_groups(session, ctx.project_id, ctx.is_admin)]

    return collection(request, "security_groups", get_store(request).run_in_transaction(run), GROUP_ATTRS)


@router.get("/security-groups/{group_id}", summary="Show a security group")
def show_group(group_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group")

    def run(session: Session) -> dict[str, Any]:
        return views.security_group(secgroups.get_group(session, group_id, ctx.project_id, ctx.is_admin))

    return {"security_group": select_fields(request, get_store(request).run_in_transaction(run))}


@router.post("/security-groups", status_code=201, summary="Create a security group")
def create_group(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("create_security_group")
    data = resource(body, "security_group", GROUP_CREATE)
    data.pop("tags", None)

    def run(session: Session) -> dict[str, Any]:
        project = project_of(session, ctx, data)
        group = secgroups.create_group(session, project, name=data.get("name", ""),
                                       description=data.get("description", ""), stateful=data.get("stateful", True))
        return views.security_group(group)

    return {"security_group": get_store(request).run_in_transaction(run)}


@router.put("/security-groups/{group_id}", summary="Update a security group")
def update_group(group_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("update_security_group")
    data = resource(body, "security_group", GROUP_UPDATE)

    def run(session: Session) -> dict[str, Any]:
        group = secgroups.get_group(session, group_id, ctx.project_id, ctx.is_admin)
        group = secgroups.update_group(session, group, name=data.get("name"), description=data.get("description"))
        return views.security_group(group)

    return {"security_group": get_store(request).run_in_transaction(run)}


@router.delete("/security-groups/{group_id}", status_code=204, summary="Delete a security group")
def delete_group(group_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_security_group")

    def run(session: Session) -> None:
        secgroups.delete_group(session, secgroups.get_group(session, group_id, ctx.project_id, ctx.is_admin))

    get_store(request).run_in_transaction(run)
    return Response(status_code=204)


@router.get("/security-group-rules", summary="List security group rules")
def list_rules(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group_rule")

    def run(session: Session) -> list[dict[str, Any]]:
        return [views.rule(r) for r in secgroups.list_rules(session, ctx.project_id, ctx.is_admin)]

    return collection(request, "security_group_rules", get_store(request).run_in_transaction(run), RULE_ATTRS)


@router.get("/security-group-rules/{rule_id}", summary="Show a security group rule")
def show_rule(rule_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group_rule")

    def run(session: Session) -> dict[str, Any]:
        return views.rule(secgroups.get_rule(session, rule_id, ctx.project_id, ctx.is_admin))

    return {"security_group_rule": select_fields(request, get_store(request).run_in_transaction(run))}


@router.post("/security-group-rules", status_code=201, summary="Create a security group rule")
def create_rule(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("create_security_group_rule")
    data = resource(body, "security_group_rule", RULE_CREATE)
    if data.pop("remote_address_group_id", None) is not None:
        raise BadInput("Invalid input for remote_address_group_id: kvmfleet has no address groups.")

    def run(session: Session) -> dict[str, Any]:
        project_of(session, ctx, data)  # the rule belongs to its group's project
        rule = secgroups.create_rule(
            session, ctx.project_id or "", data.get("security_group_id"), direction=data.get("direction"),
            ethertype=data.get("ethertype", "IPv4"), protocol=data.get("protocol"),
            port_range_min=data.get("port_range_min"), port_range_max=data.get("port_range_max"),
            remote_ip_prefix=data.get("remote_ip_prefix"), remote_group_id=data.get("remote_group_id"),
            description=data.get("description", ""), admin=ctx.is_admin)
        return views.rule(rule)

    return {"security_group_rule": get_store(request).run_in_transaction(run)}


@router.delete("/security-group-rules/{rule_id}", status_code=204, summary="Delete a security group rule")
def delete_rule(rule_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_security_group_rule")

    def run(session: Session) -> None:
        secgroups.delete_rule(session, secgroups.get_rule(session, rule_id, ctx.project_id, ctx.is_admin))

    get_store(request).run_in_transaction(run)
    return Response(status_code=204)
