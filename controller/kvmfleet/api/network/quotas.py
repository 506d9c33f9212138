"""/network/v2.0/quotas: Neutron's limits (defaults or the project's own) and each project's use of them
(kvmfleet.network.quotas, enforced at create), so `openstack quota show/set` work for the network service
too. A project reads its own quota; another project's is admin only (Neutron's 403); setting is admin's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import Forbidden, NotFoundError
from kvmfleet.api.network import PREFIX
from kvmfleet.api.network.bodies import resource
from kvmfleet.api.validation import json_body
from kvmfleet.network import quotas
from kvmfleet.store.models import Project

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({"get_quota": policy.PROJECT_READER_OR_ADMIN, "list_quotas": policy.ADMIN,
                 "update_quota": policy.ADMIN, "delete_quota": policy.ADMIN})
BODY = Depends(json_body)


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
    return {"quota": get_store(request).run_in_transaction(lambda s: quotas.limits(s, project_id))}


@router.put("/quotas/{project_id}", summary="Set a project's network quotas (admin)")
def update_quota(project_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("update_quota")
    _project(request, ctx, project_id)
    data = resource(body, "quota", set(quotas.SETTABLE) | {"force", "check_limit"})
    data.pop("force", None)
    data.pop("check_limit", None)
    return {"quota": get_store(request).run_in_transaction(lambda s: quotas.update(s, project_id, data))}


@router.delete("/quotas/{project_id}", status_code=204, summary="Reset a project's network quotas (admin)")
def delete_quota(project_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_quota")
    _project(request, ctx, project_id)
    get_store(request).run_in_transaction(lambda s: quotas.reset(s, project_id))
    return Response(status_code=204)


@router.get("/quotas/{project_id}/default", summary="Show the default network quotas")
def show_default(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _project(request, ctx, project_id)
    return {"quota": quotas.default_limits()}


@router.get("/quotas/{project_id}/details", summary="Show a project's network quotas with usage")
def show_details(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    _project(request, ctx, project_id)
    return {"quota": get_store(request).run_in_transaction(lambda s: quotas.details(s, project_id))}
