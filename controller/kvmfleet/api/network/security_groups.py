"""/network/v2.0/security-groups and /security-group-rules (read-only): each project's ``default`` group
(kvmfleet.network.security_groups). A project sees its own, admins every project's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.network import PREFIX, views
from kvmfleet.api.network.query import collection, select_fields
from kvmfleet.network import security_groups as groups

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({
    "get_security_group": policy.PROJECT_READER_OR_ADMIN,
    "get_security_group_rule": policy.PROJECT_READER_OR_ADMIN,
})

GROUP_ATTRS = {"id", "name", "tenant_id", "project_id", "security_group_rules", "description", "created_at",
               "updated_at", "revision_number"}
RULE_ATTRS = {"id", "tenant_id", "project_id", "security_group_id", "direction", "ethertype", "protocol",
              "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "description",
              "created_at", "updated_at", "revision_number"}


def _scope(ctx: RequestContext) -> str | None:
    return None if ctx.is_admin else ctx.project_id


@router.get("/security-groups", summary="List security groups")
def list_groups(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group")

    def run(session: Session) -> list[dict[str, Any]]:
        return [views.security_group(g) for g in groups.list_groups(session, _scope(ctx))]

    return collection(request, "security_groups", get_store(request).run_in_transaction(run), GROUP_ATTRS)


@router.get("/security-groups/{group_id}", summary="Show a security group")
def show_group(group_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group")

    def run(session: Session) -> dict[str, Any] | None:
        found = [g for g in groups.list_groups(session, _scope(ctx)) if g.id == group_id]
        return views.security_group(found[0]) if found else None

    body = get_store(request).run_in_transaction(run)
    if body is None:
        raise NotFoundError(f"Security group {group_id} does not exist", kind="SecurityGroupNotFound")
    return {"security_group": select_fields(request, body)}


@router.get("/security-group-rules", summary="List security group rules")
def list_rules(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group_rule")

    def run(session: Session) -> list[dict[str, Any]]:
        return [views.rule(r) for r in groups.list_rules(session, _scope(ctx))]

    return collection(request, "security_group_rules", get_store(request).run_in_transaction(run), RULE_ATTRS)


@router.get("/security-group-rules/{rule_id}", summary="Show a security group rule")
def show_rule(rule_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_security_group_rule")

    def run(session: Session) -> dict[str, Any] | None:
        found = [r for r in groups.list_rules(session, _scope(ctx)) if r.id == rule_id]
        return views.rule(found[0]) if found else None

    body = get_store(request).run_in_transaction(run)
    if body is None:
        raise NotFoundError(f"Security group rule {rule_id} does not exist", kind="SecurityGroupRuleNotFound")
    return {"security_group_rule": select_fields(request, body)}
