"""Compute API: os-server-groups (nova/api/openstack/compute/server_groups.py). Groups belong to projects:
members see their project's, admins any (``all_projects`` on the list). Another project's group is a 404.
Creating one counts against the project's server_groups quota (403 past it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.schemas import server_groups as schemas
from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.compute.schemas.flavors import to_int
from kvmfleet.api.compute.views import server_groups as views
from kvmfleet.api.compute.views.links import MAX_LIMIT
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import server_groups as groupops

router = APIRouter(prefix=PREFIX, tags=["server groups"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:os-server-groups:%s"
policy.register({
    RULE % "create": policy.PROJECT_MEMBER_OR_ADMIN, RULE % "delete": policy.PROJECT_MEMBER_OR_ADMIN,
    RULE % "index": policy.PROJECT_READER_OR_ADMIN, RULE % "index:all_projects": policy.ADMIN,
    RULE % "show": policy.PROJECT_READER_OR_ADMIN,
})


def _scope(ctx: RequestContext) -> str | None:
    """Admins reach every project's groups by id; others only their project's."""
    return None if ctx.is_admin else ctx.project_id


@router.get("/os-server-groups", summary="List server groups", openapi_extra=query.doc(*schemas.QUERY_PARAMS))
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "index")
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    project_id = ctx.project_id
    if "all_projects" in request.query_params and ctx.is_admin:  # Nova: present, whatever its value
        ctx.authorize(RULE % "index:all_projects")
        project_id = None
    limit = query.integer(request, "limit")
    offset = query.integer(request, "offset") or 0
    with get_store(request).read() as session:
        groups = groupops.page(session, project_id, min(limit or MAX_LIMIT, MAX_LIMIT), offset)
        return views.index(ctx.microversion, groups)


@router.post("/os-server-groups", summary="Create a server group", openapi_extra=openapi_body(schemas.CREATE_V264))
def create(request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(RULE % "create")
    v = ctx.microversion
    validate(schemas.create_schema(v), body, t.FORMATS)
    vals = body["server_group"]
    max_per_host = None
    if v.matches("2.64"):
        policy_name = vals["policy"]
        rules = vals.get("rules") or {}
        if policy_name != "anti-affinity" and rules:
            raise BadRequest("Only anti-affinity policy supports rules.")
        if "max_server_per_host" in rules:
            max_per_host = to_int(rules["max_server_per_host"], "max_server_per_host", 1)
    else:
        policy_name = vals["policies"][0]
    if ctx.project_id is None:
        raise BadRequest("A project-scoped token is required to create a server group.")

    def run(session: Any) -> dict[str, Any]:
        group = groupops.create(session, vals["name"], policy_name, ctx.project_id, ctx.user_id, max_per_host)
        return {"server_group": views.show(v, group)}

    return get_store(request).run_in_transaction(run)


@router.get("/os-server-groups/{group_id}", summary="Show a server group")
def show(group_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "show")
    with get_store(request).read() as session:
        return {"server_group": views.show(ctx.microversion, groupops.get(session, group_id, _scope(ctx)))}


@router.delete("/os-server-groups/{group_id}", status_code=204, summary="Delete a server group")
def delete(group_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize(RULE % "delete")
    get_store(request).run_in_transaction(lambda s: groupops.delete(s, group_id, _scope(ctx)))
    return Response(status_code=204)
