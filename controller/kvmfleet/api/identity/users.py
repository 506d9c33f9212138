"""/identity/v3/users (keystone/api/users.py): CRUD, a user's projects, changing one's own password."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kvmfleet.api.context import RequestContext, get_store
from kvmfleet.api.identity import schemas, views
from kvmfleet.api.identity._common import BODY, CLEAN_URL, CTX, PREFIX, authorize, query_bool, query_str
from kvmfleet.api.validation import openapi_body, validate
from kvmfleet.identity import domains, projects, users

router = APIRouter(prefix=PREFIX + "/users", dependencies=CLEAN_URL)


@router.get("")
def list_users(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_users")
    with get_store(request).session() as session:
        found = users.list_users(session, name=query_str(request, "name"), domain_id=query_str(request, "domain_id"),
                                 enabled=query_bool(request, "enabled"))
        return views.collection(request, "users", [views.user(request, u) for u in found], "/users")


@router.post("", status_code=201, openapi_extra=openapi_body(schemas.user_create))
def create_user(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:create_user")
    data = validate(schemas.user_create, body)["user"]
    domain_id = data.get("domain_id") or (ctx.token.domain_id or ctx.token.project_domain_id
                                          or domains.DEFAULT_DOMAIN_ID)

    def run(session: Any) -> dict[str, Any]:
        u = users.create_user(session, data["name"], password=data.get("password"), domain_id=domain_id,
                              enabled=data.get("enabled", True), default_project_id=data.get("default_project_id"),
                              email=data.get("email"), description=data.get("description"),
                              options=data.get("options"))
        return {"user": views.user(request, u)}

    return get_store(request).run_in_transaction(run)


@router.get("/{user_id}")
def show_user(user_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_user", owner=ctx.user_id == user_id)
    with get_store(request).session() as session:
        return {"user": views.user(request, users.get_user(session, user_id))}


@router.patch("/{user_id}", openapi_extra=openapi_body(schemas.user_update))
def update_user(user_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:update_user")
    data = validate(schemas.user_update, body)["user"]
    changes = {k: data[k] for k in ("password", "default_project_id", "email", "description") if k in data}

    def run(session: Any) -> dict[str, Any]:
        u = users.update_user(session, user_id, name=data.get("name"), enabled=data.get("enabled"),
                              domain_id=data.get("domain_id"), **changes)
        return {"user": views.user(request, u)}

    return get_store(request).run_in_transaction(run)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    authorize(ctx, "identity:delete_user")
    get_store(request).run_in_transaction(lambda session: users.delete_user(session, user_id))
    return Response(status_code=204)


@router.get("/{user_id}/projects")
def list_user_projects(user_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_user_projects", owner=ctx.user_id == user_id)
    with get_store(request).session() as session:
        users.get_user(session, user_id)
        found = projects.list_projects(session, ids=projects.user_project_ids(session, user_id))
        return views.collection(request, "projects", [views.project(request, p) for p in found],
                                f"/users/{user_id}/projects")


@router.post("/{user_id}/password", status_code=204, openapi_extra=openapi_body(schemas.user_password))
def change_password(user_id: str, request: Request, body: Any = BODY) -> Response:
    """No token needed (Keystone leaves this route unenforced): the original password authenticates.
    Every token of the user is revoked."""
    data = validate(schemas.user_password, body)["user"]
    get_store(request).run_in_transaction(
        lambda session: users.change_own_password(session, user_id, data["original_password"], data["password"]))
    return Response(status_code=204)
