"""/identity/v3/roles, role grants on projects and domains, /role_assignments (keystone/api/roles.py,
projects.py and domains.py grant resources, role_assignments.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kvmfleet.api.context import RequestContext, get_store
from kvmfleet.api.identity import schemas, views
from kvmfleet.api.identity._common import BODY, CLEAN_URL, CTX, PREFIX, authorize, query_flag, query_str
from kvmfleet.api.validation import openapi_body, validate
from kvmfleet.identity import domains, projects, roles
from kvmfleet.store.models import Domain

router = APIRouter(prefix=PREFIX, dependencies=CLEAN_URL)


@router.get("/roles")
def list_roles(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_roles")
    with get_store(request).session() as session:
        found = roles.list_roles(session, name=query_str(request, "name"))
        return views.collection(request, "roles", [views.role(request, r) for r in found], "/roles")


@router.post("/roles", status_code=201, openapi_extra=openapi_body(schemas.role_create))
def create_role(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:create_role")
    data = validate(schemas.role_create, body)["role"]

    def run(session: Any) -> dict[str, Any]:
        r = roles.create_role(session, data["name"], data.get("description"))
        r.options = dict(data.get("options") or {})
        return {"role": views.role(request, r)}

    return get_store(request).run_in_transaction(run)


@router.get("/roles/{role_id}")
def show_role(role_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_role")
    with get_store(request).session() as session:
        return {"role": views.role(request, roles.get_role(session, role_id))}


@router.patch("/roles/{role_id}", openapi_extra=openapi_body(schemas.role_update))
def update_role(role_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:update_role")
    data = validate(schemas.role_update, body)["role"]

    def run(session: Any) -> dict[str, Any]:
        r = roles.update_role(session, role_id, name=data.get("name"), description=data.get("description"))
        if "options" in data:
            r.options = dict(data["options"] or {})
        return {"role": views.role(request, r)}

    return get_store(request).run_in_transaction(run)


@router.delete("/roles/{role_id}", status_code=204)
def delete_role(role_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    authorize(ctx, "identity:delete_role")
    get_store(request).run_in_transaction(lambda session: roles.delete_role(session, role_id))
    return Response(status_code=204)


# -- grants: /projects/{p}/users/{u}/roles[/{r}] and /domains/{d}/users/{u}/roles[/{r}] ---------------


def _target(kind: str, target_id: str) -> dict[str, str]:
    return {"project_id": target_id} if kind == "projects" else {"domain_id": target_id}


def _check_target_exists(session: Any, kind: str, target_id: str) -> None:
    if kind == "projects":
        projects.get_project(session, target_id)
    else:
        domains.get_domain(session, target_id)


def _grant_routes(kind: str) -> None:
    path = f"/{kind}/{{target_id}}/users/{{user_id}}/roles"

    @router.get(path, name=f"list_{kind}_user_roles")
    def list_grants(target_id: str, user_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
        authorize(ctx, "identity:list_grants")
        with get_store(request).session() as session:
            _check_target_exists(session, kind, target_id)
            from kvmfleet.identity import users

            users.get_user(session, user_id)
            found = roles.roles_on(session, user_id, **_target(kind, target_id))
            return views.collection(request, "roles", [views.role(request, r) for r in found],
                                    f"/{kind}/{target_id}/users/{user_id}/roles")

    @router.put(path + "/{role_id}", status_code=204, name=f"grant_{kind}_user_role")
    def grant(target_id: str, user_id: str, role_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
        authorize(ctx, "identity:create_grant")
        get_store(request).run_in_transaction(
            lambda session: roles.grant(session, user_id, role_id, **_target(kind, target_id)))
        return Response(status_code=204)

    def check(target_id: str, user_id: str, role_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
        authorize(ctx, "identity:check_grant")
        with get_store(request).session() as session:
            roles.check(session, user_id, role_id, **_target(kind, target_id))
        return Response(status_code=204)

    router.add_api_route(path + "/{role_id}", check, methods=["GET"], status_code=204, name=f"get_{kind}_grant")
    router.add_api_route(path + "/{role_id}", check, methods=["HEAD"], status_code=204, name=f"check_{kind}_grant")

    @router.delete(path + "/{role_id}", status_code=204, name=f"revoke_{kind}_user_role")
    def revoke(target_id: str, user_id: str, role_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
        authorize(ctx, "identity:revoke_grant")
        get_store(request).run_in_transaction(
            lambda session: roles.revoke(session, user_id, role_id, **_target(kind, target_id)))
        return Response(status_code=204)


_grant_routes("projects")
_grant_routes("domains")


@router.get("/role_assignments")
def list_role_assignments(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    """Filters user.id, scope.project.id, scope.domain.id, role.id; include_names; effective (implied
    roles expanded). Groups do not exist here: a group.id filter finds nothing."""
    authorize(ctx, "identity:list_role_assignments")
    include_names = query_flag(request, "include_names")
    with get_store(request).session() as session:
        if query_str(request, "group.id") or query_flag(request, "scope.system"):
            found = []
        else:
            found = roles.list_assignments(session, user_id=query_str(request, "user.id"),
                                           project_id=query_str(request, "scope.project.id"),
                                           domain_id=query_str(request, "scope.domain.id"),
                                           role_id=query_str(request, "role.id"),
                                           effective=query_flag(request, "effective"))
        by_id = {d.id: d for d in session.query(Domain)} if include_names else {}
        members = [views.assignment(request, a, include_names, by_id) for a in found]
        return views.collection(request, "role_assignments", members, "/role_assignments")
