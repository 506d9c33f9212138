"""Compute API: os-quota-sets (nova/api/openstack/compute/quota_sets.py). Readers see their own project's
limits (detail: with usage), anyone the defaults, admins any project's and may change or reset them.
Quotas are counted, never reserved (reserved is always 0); per-user quotas are not kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet import quota
from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.schemas import quota_sets as schemas
from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.compute.schemas.flavors import to_int
from kvmfleet.api.compute.views import quota_sets as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, Forbidden
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.store.models import Project

router = APIRouter(prefix=PREFIX, tags=["quota sets"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:os-quota-sets:%s"
policy.register({
    RULE % "show": policy.PROJECT_READER_OR_ADMIN, RULE % "detail": policy.PROJECT_READER_OR_ADMIN,
    RULE % "defaults": policy.ANY, RULE % "update": policy.ADMIN, RULE % "delete": policy.ADMIN,
})
_DOC = query.doc(*schemas.QUERY_PARAMS)


def _authorize(ctx: RequestContext, action: str, project_id: str) -> None:
    """Nova's rule targets the project in the path: a non-admin may act on its own project only."""
    ctx.authorize(RULE % action)
    if not ctx.is_admin and project_id != ctx.project_id and policy.RULES[RULE % action] != policy.ANY:
        raise Forbidden(f"Policy doesn't allow {RULE % action} to be performed.")


def _project(session: Any, project_id: str) -> Project:
    """Nova's verify_project_id: an unknown project is a bad request."""
    project = session.get(Project, project_id)
    if project is None:
        raise BadRequest(f"Project ID {project_id} is not a valid project.")
    return project


def _no_user_quotas(request: Request) -> None:
    if query.single(request, "user_id"):
        raise BadRequest("Per-user quotas are not supported: quotas are per project.")


@router.get("/os-quota-sets/{project_id}", summary="Show a project's quotas", openapi_extra=_DOC)
def show(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _authorize(ctx, "show", project_id)
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    with get_store(request).read() as session:
        limits = quota.all_limits(session, _project(session, project_id))
    return views.quota_set(ctx.microversion, limits, project_id)


@router.get("/os-quota-sets/{project_id}/detail", summary="Show a project's quotas and usage", openapi_extra=_DOC)
def detail(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _authorize(ctx, "detail", project_id)
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    with get_store(request).read() as session:
        values = quota.detail(session, _project(session, project_id), user_id=query.single(request, "user_id"))
    return views.quota_set(ctx.microversion, values, project_id)


@router.get("/os-quota-sets/{project_id}/defaults", summary="Show the default quotas")
def defaults(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _authorize(ctx, "defaults", project_id)
    with get_store(request).read() as session:
        _project(session, project_id)
        values = quota.all_default_limits(session)
    return views.quota_set(ctx.microversion, values, project_id)


@router.put("/os-quota-sets/{project_id}", summary="Update a project's quotas (admin)",
            openapi_extra={**openapi_body(schemas.UPDATE_DOC), **_DOC})
def update(project_id: str, request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    _authorize(ctx, "update", project_id)
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    _no_user_quotas(request)
    validate(schemas.update_schema(ctx.microversion), body, t.FORMATS)
    values = body["quota_set"]
    force = t.as_bool(values.get("force", False))
    wanted = {k: to_int(v, k, -1) for k, v in values.items() if k != "force" and (v or v == 0)}

    def run(session: Any) -> dict[str, int]:
        return quota.update_limits(session, _project(session, project_id), wanted, force=force)

    return views.quota_set(ctx.microversion, get_store(request).run_in_transaction(run), None)


@router.delete("/os-quota-sets/{project_id}", status_code=202, summary="Revert a project's quotas to the defaults",
               openapi_extra=_DOC)
def delete(project_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    _authorize(ctx, "delete", project_id)
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    _no_user_quotas(request)

    def run(session: Any) -> None:
        project = session.get(Project, project_id)
        if project is not None:  # Nova answers 202 for any project id
            quota.reset_limits(session, project)

    get_store(request).run_in_transaction(run)
    return Response(status_code=202)
