"""/identity/v3/projects (keystone/api/projects.py). A project's name is unique across domains here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kvmfleet.api.context import RequestContext, get_store
from kvmfleet.api.faults import BadRequest
from kvmfleet.api.identity import schemas, views
from kvmfleet.api.identity._common import BODY, CLEAN_URL, CTX, PREFIX, authorize, query_bool, query_str
from kvmfleet.api.validation import openapi_body, validate
from kvmfleet.identity import domains, projects

router = APIRouter(prefix=PREFIX + "/projects", dependencies=CLEAN_URL)


def _check_hierarchy(data: dict[str, Any], domain_id: str) -> None:
    """Projects here are flat: a parent can only be the project's domain; no project acts as a domain."""
    if data.get("is_domain"):
        raise BadRequest("Projects acting as domains are not supported: create a domain instead.")
    parent = data.get("parent_id")
    if parent is not None and parent != domain_id:
        raise BadRequest("Project hierarchies are not supported: parent_id can only be the project's domain.")


@router.get("")
def list_projects(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_projects")
    with get_store(request).session() as session:
        found = projects.list_projects(session, name=query_str(request, "name"),
                                       domain_id=query_str(request, "domain_id"),
                                       enabled=query_bool(request, "enabled"))
        return views.collection(request, "projects", [views.project(request, p) for p in found], "/projects")


@router.post("", status_code=201, openapi_extra=openapi_body(schemas.project_create))
def create_project(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:create_project")
    data = validate(schemas.project_create, body)["project"]
    # Keystone: without a domain_id the project goes to the token's domain (a project token: its project's)
    domain_id = data.get("domain_id") or (ctx.token.domain_id or ctx.token.project_domain_id
                                          or domains.DEFAULT_DOMAIN_ID)
    _check_hierarchy(data, domain_id)

    def run(session: Any) -> dict[str, Any]:
        p = projects.create_project(session, data["name"], domain_id=domain_id, description=data.get("description"),
                                    enabled=data.get("enabled", True))
        return {"project": views.project(request, p)}

    return get_store(request).run_in_transaction(run)


@router.get("/{project_id}")
def show_project(project_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_project", owner=ctx.project_id == project_id)
    with get_store(request).session() as session:
        return {"project": views.project(request, projects.get_project(session, project_id))}


@router.patch("/{project_id}", openapi_extra=openapi_body(schemas.project_update))
def update_project(project_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:update_project")
    data = validate(schemas.project_update, body)["project"]

    def run(session: Any) -> dict[str, Any]:
        current = projects.get_project(session, project_id)
        _check_hierarchy(data, current.domain_id)
        p = projects.update_project(session, project_id, name=data.get("name"), description=data.get("description"),
                                    enabled=data.get("enabled"), domain_id=data.get("domain_id"))
        return {"project": views.project(request, p)}

    return get_store(request).run_in_transaction(run)


@router.delete("/{project_id}", status_code=204)
def delete_project(project_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    authorize(ctx, "identity:delete_project")
    get_store(request).run_in_transaction(lambda session: projects.delete_project(session, project_id))
    return Response(status_code=204)
