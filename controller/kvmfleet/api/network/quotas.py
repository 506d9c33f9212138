"""/network/v2.0/quotas (read-only): Neutron's default limits and each project's use of them
(kvmfleet.network.quotas), so `openstack quota show` answers for the network service too. A project
reads its own quota; another project's is admin only (Neutron's 403)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import Forbidden, NotFoundError
from kvmfleet.api.network import PREFIX
from kvmfleet.network import quotas
from kvmfleet.store.models import Project

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({"get_quota": policy.PROJECT_READER_OR_ADMIN, "list_quotas": policy.ADMIN})


def _project(request: Request, ctx: RequestContext, project_id: str) -> str:
    ctx.authorize("get_quota")
    if not ctx.is_admin and project_id != ctx.project_id:
        raise Forbidden("Only admin is authorized to access quotas for another project")
    found = get_store(request).run_in_transaction(lambda s: s.get(Project, project_id) is not None)
    if not found:
        raise NotFoundError(f"Project {project_id} could not be found.", kind="ProjectNotFound")
    return project_id


@router.get("/quotas", summary="List projects with non-default quotas (none: quotas are Neutron's defaults)")
def list_quotas(ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("list_quotas")
    return {"quotas": []}


@router.get("/quotas/{project_id}", summary="Show a project's network quotas")
def show_quota(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _project(request, ctx, project_id)
    return {"quota": quotas.limits()}


@router.get("/quotas/{project_id}/default", summary="Show the default network quotas")
def show_default(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _project(request, ctx, project_id)
    return {"quota": quotas.limits()}


@router.get("/quotas/{project_id}/details", summary="Show a project's network quotas with usage")
def show_details(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _project(request, ctx, project_id)
    return {"quota": get_store(request).run_in_transaction(lambda s: quotas.details(s, project_id))}
