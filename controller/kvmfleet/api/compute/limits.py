"""Compute API: /limits (nova/api/openstack/compute/limits.py): the caller's project's absolute limits and
usage, per microversion; admins may ask for another project's (``tenant_id``). No rate limits (rate: [])."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet import quota
from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.views import quota_sets as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest

router = APIRouter(prefix=PREFIX, tags=["limits"])
CTX = Depends(context)  # the dependency, once (ruff B008)

RULE = "os_compute_api:limits"
OTHER_PROJECT = "os_compute_api:limits:other_project"
policy.register({RULE: policy.ANY, OTHER_PROJECT: policy.ADMIN})


@router.get("/limits", summary="Show rate and absolute limits", openapi_extra=query.doc("tenant_id"))
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE)
    query.check(request, ("tenant_id",), strict=ctx.microversion.matches("2.75"))
    project_id = ctx.project_id
    if "tenant_id" in request.query_params:
        project_id = query.single(request, "tenant_id")
        ctx.authorize(OTHER_PROJECT)
    if not project_id:
        raise BadRequest("A project-scoped token (or tenant_id) is required to show limits.")
    with get_store(request).read() as session:
        detail = quota.detail(session, project_id, missing_ok=True)
    return views.limits(ctx.microversion, detail)
