"""Compute API: os-aggregates (nova/api/openstack/compute/aggregates.py), admins only: CRUD, and the
actions add_host, remove_host and set_metadata. An aggregate's availability zone moves its hosts into that
zone (kvmfleet.compute.aggregates). Aggregates are addressed by their integer id; 2.41 shows the uuid."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import aggregates as schemas
from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.compute.views import aggregates as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import aggregates as aggops
from kvmfleet.store.api import UNSET

router = APIRouter(prefix=PREFIX, tags=["aggregates"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:os-aggregates:%s"
policy.register({RULE % name: policy.ADMIN for name in ("index", "create", "show", "update", "delete", "add_host",
                                                       "remove_host", "set_metadata")})
MAX_ID = 0x7FFFFFFF


def _id(text: str) -> int:
    """Nova's validate_integer on the path id (400); ids beyond the column's range exist nowhere (404)."""
    if not text.isdigit():
        raise BadRequest(f"Invalid input received: id must be an integer, got {text[:100]!r}.")
    value = int(text)
    if value > MAX_ID:
        raise NotFoundError(f"Aggregate {value} could not be found.")
    return value


@router.get("/os-aggregates", summary="List aggregates (admin)")
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "index")
    with get_store(request).read() as session:
        return {"aggregates": [views.aggregate(ctx.microversion, a)["aggregate"] for a in aggops.list_all(session)]}


@router.post("/os-aggregates", summary="Create an aggregate (admin)", openapi_extra=openapi_body(schemas.CREATE))
def create(request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(RULE % "create")
    validate(schemas.CREATE, body, t.FORMATS)
    vals = body["aggregate"]

    def run(session: Any) -> dict[str, Any]:
        agg = aggops.create(session, vals["name"], vals.get("availability_zone"))
        return views.aggregate(ctx.microversion, agg, created=True)

    return get_store(request).run_in_transaction(run)


@router.get("/os-aggregates/{aggregate_id}", summary="Show an aggregate (admin)")
def show(aggregate_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "show")
    agg_id = _id(aggregate_id)
    with get_store(request).read() as session:
        return views.aggregate(ctx.microversion, aggops.get(session, agg_id))


@router.put("/os-aggregates/{aggregate_id}", summary="Update an aggregate's name or zone (admin)",
            openapi_extra=openapi_body(schemas.UPDATE))
def update(aggregate_id: str, request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(RULE % "update")
    validate(schemas.UPDATE, body, t.FORMATS)
    agg_id = _id(aggregate_id)
    vals = body["aggregate"]
    name = vals["name"].strip() if "name" in vals else None

    def run(session: Any) -> dict[str, Any]:
        agg = aggops.update(session, agg_id, name, vals.get("availability_zone", UNSET))
        return views.aggregate(ctx.microversion, agg)

    return get_store(request).run_in_transaction(run)


@router.delete("/os-aggregates/{aggregate_id}", summary="Delete an empty aggregate (admin)")
def delete(aggregate_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize(RULE % "delete")
    agg_id = _id(aggregate_id)
    get_store(request).run_in_transaction(lambda s: aggops.delete(s, agg_id))
    return Response(status_code=200)


@router.post("/os-aggregates/{aggregate_id}/action", summary="add_host, remove_host or set_metadata (admin)",
             openapi_extra=openapi_body(schemas.ACTION_DOC))
def action(aggregate_id: str, request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in schemas.ACTIONS:
        raise BadRequest("There is no such action: " + (", ".join(map(str, body))[:100] if isinstance(body, dict)
                                                         else "(none)"))
    name = next(iter(body))
    ctx.authorize(RULE % name)
    validate(schemas.ACTIONS[name], body, t.FORMATS)
    agg_id = _id(aggregate_id)

    def run(session: Any) -> dict[str, Any]:
        if name == "add_host":
            agg = aggops.add_host(session, agg_id, body[name]["host"])
        elif name == "remove_host":
            agg = aggops.remove_host(session, agg_id, body[name]["host"])
        else:
            agg = aggops.set_metadata(session, agg_id, body[name]["metadata"])
        return views.aggregate(ctx.microversion, agg)

    return get_store(request).run_in_transaction(run)
