"""Compute API: os-instance-actions (nova/api/openstack/compute/instance_actions.py).

    GET /servers/{id}/os-instance-actions               {"instanceActions": [...], "links"? (2.58)}
    GET /servers/{id}/os-instance-actions/{request_id}  {"instanceAction": {..., "events": [...]}}

From 2.21 the actions of a deleted server stay readable, as Nova's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import instance_actions as schemas
from kvmfleet.api.compute.schemas.types import int_param, parse_isotime, validate_query
from kvmfleet.api.compute.servers import scope
from kvmfleet.api.compute.views import instance_actions as views
from kvmfleet.api.compute.views.servers import MAX_LIMIT, ServerView
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.compute import queries
from kvmfleet.store.errors import NotFound

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

RULE = "os_compute_api:os-instance-actions:%s"
policy.register({RULE % "list": policy.PROJECT_READER_OR_ADMIN, RULE % "show": policy.PROJECT_READER_OR_ADMIN,
                 RULE % "events": policy.ADMIN, RULE % "events:details": policy.ADMIN})


def _instance(session: Any, ctx: RequestContext, server_id: str) -> Any:
    return queries.get_instance(session, server_id, scope(ctx), deleted=ctx.microversion.matches("2.21"))


@router.get("/servers/{server_id}/os-instance-actions")
def list_actions(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    v = ctx.microversion
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    validate_query(schemas.index_query(v), params)
    kw: dict[str, Any] = {}
    limit = None
    if v.matches("2.58"):
        limit = min(MAX_LIMIT, int_param(params["limit"][0], "limit", minimum=0)) if "limit" in params else MAX_LIMIT
        kw = {"limit": limit, "marker": (params.get("marker") or [None])[0]}
        for key, name in (("changes-since", "changes_since"), ("changes-before", "changes_before")):
            if key in params:
                kw[name] = parse_isotime(params[key][0])
        if kw.get("changes_since") and kw.get("changes_before") and kw["changes_before"] < kw["changes_since"]:
            raise BadRequest("The value of changes-since must be less than or equal to changes-before.")
    with get_store(request).read() as session:
        inst = _instance(session, ctx, server_id)
        ctx.authorize(RULE % "list")
        rows = queries.list_actions(session, inst.uuid, **kw)
        out: dict[str, Any] = {"instanceActions": [views.action(r, v) for r in rows]}
        if v.matches("2.58") and rows and limit and len(rows) == limit:
            view = ServerView(request, ctx, queries.Related())
            out["links"] = [view.next_link(f"servers/{server_id}/os-instance-actions",
                                           list(request.query_params.multi_items()), rows[-1].request_id)]
        return out


@router.get("/servers/{server_id}/os-instance-actions/{request_id}")
def show_action(server_id: str, request_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = _instance(session, ctx, server_id)
        ctx.authorize(RULE % "show")
        try:
            row = queries.get_action(session, inst.uuid, request_id)
        except NotFound:
            raise NotFoundError(f"Action {request_id} not found") from None
        return views.show(row, inst.project_id, ctx.microversion, ctx.is_admin)
