"""Compute API: os-migrations (nova/api/openstack/compute/migrations.py), admins only.

    GET /os-migrations    {"migrations": [...], "migrations_links"? (2.59)}

Filters: host (either end; it wins over source_compute, as Nova's), status, instance_uuid,
migration_type, source_compute. From 2.23 each migration has its type, and an in-progress live migration
its links; from 2.59 its uuid, newest first, paged by ``limit`` and ``marker`` (a migration uuid; an
unknown one is 400) and filtered by ``changes-since``; from 2.66 by ``changes-before``. Before 2.59 the
paging and time parameters are ignored, as Nova's. Migrations of deleted servers are not listed (Nova
soft-deletes them with the server).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.schemas import migrations as schemas
from kvmfleet.api.compute.schemas.types import parse_isotime, validate_query
from kvmfleet.api.compute.views import migrations as views
from kvmfleet.api.compute.views.links import collection_links
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest
from kvmfleet.compute import migrations, queries
from kvmfleet.store.errors import NotFound

router = APIRouter(prefix=PREFIX, tags=["migrations"])
CTX = Depends(context)  # the dependencies, once (ruff B008)

RULE = "os_compute_api:os-migrations:%s"
policy.register({RULE % "index": policy.ADMIN})


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def _filters(request: Request, ctx: RequestContext) -> dict[str, Any]:
    """Nova's _index search options, as keyword arguments of kvmfleet.compute.migrations.query."""
    v = ctx.microversion
    validate_query(schemas.index_query(v), _params(request))
    kw: dict[str, Any] = {name: query.single(request, name)
                          for name in ("host", "status", "instance_uuid", "migration_type", "source_compute")}
    if kw["host"]:
        kw["source_compute"] = None  # Nova's migration_get_all_by_filters: host, elif source_compute
    if v.matches("2.59"):
        kw["limit"], kw["marker"] = query.limit_and_marker(request)
        for key, name in (("changes-since", "changes_since"), ("changes-before", "changes_before")):
            text = query.single(request, key)
            if text is not None and (key == "changes-since" or v.matches("2.66")):
                kw[name] = parse_isotime(text)
        if kw.get("changes_since") and kw.get("changes_before") and kw["changes_before"] < kw["changes_since"]:
            raise BadRequest("The value of changes-since must be less than or equal to changes-before.")
    return kw


@router.get("/os-migrations", summary="List migrations (admin)", openapi_extra=query.doc(*schemas.QUERY_PARAMS))
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "index")
    v = ctx.microversion
    kw = _filters(request, ctx)
    with get_store(request).read() as session:
        if kw.get("limit") == 0:
            rows = []  # Nova answers an empty page before it looks at the marker
        else:
            deleted = [i.uuid for i in queries.list_instances(session, queries.ServerQuery(deleted=True))]
            try:
                rows = migrations.query(session, hidden=deleted, **kw)
            except NotFound as exc:
                if "marker" not in exc.details:
                    raise
                raise BadRequest(f"Marker {kw['marker']} could not be found.") from exc
        out: dict[str, Any] = {"migrations": [views.migration(request, r, v) for r in rows]}
    if v.matches("2.59"):
        links = collection_links(request, "os-migrations", out["migrations"], "uuid", query.integer(request, "limit"))
        if links:
            out["migrations_links"] = links
    return out
