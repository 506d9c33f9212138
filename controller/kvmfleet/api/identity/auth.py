"""/identity/v3/auth/*: tokens (issue, validate, check, revoke), and the token's projects, domains and
catalog (keystone/api/auth.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from kvmfleet.api.context import RequestContext, get_store
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.identity import schemas, views
from kvmfleet.api.identity._common import BODY, CLEAN_URL, CTX, PREFIX, authorize
from kvmfleet.api.validation import openapi_body, validate
from kvmfleet.identity import auth as identity_auth
from kvmfleet.identity import catalog, domains, projects, roles, tokens
from kvmfleet.identity.errors import AuthFailed

router = APIRouter(prefix=PREFIX + "/auth", dependencies=CLEAN_URL)


def _nocatalog(request: Request) -> bool:
    return "nocatalog" in request.query_params


@router.post("/tokens", status_code=201, openapi_extra=openapi_body(schemas.token_issue))
def issue_token(request: Request, body: Any = BODY) -> JSONResponse:
    """Password or token (rescope) authentication; the token is in X-Subject-Token, shown only here."""
    validate(schemas.token_issue, body)
    store = get_store(request)
    token, info = identity_auth.authenticate(store, body["auth"])
    with store.session() as session:
        payload = views.token(request, session, info, include_catalog=not _nocatalog(request))
    return JSONResponse(payload, status_code=201, headers={"X-Subject-Token": token})


def _subject(request: Request, ctx: RequestContext) -> tokens.TokenInfo:
    """The X-Subject-Token's info; the caller must be allowed to see it. Invalid: 404."""
    subject = request.headers.get("x-subject-token")
    try:
        info = tokens.validate(get_store(request), subject)
    except AuthFailed:
        raise NotFoundError("Could not find token.") from None
    # Keystone's service_admin_or_token_subject: admin, a service user, or the token's own user
    authorize(ctx, "identity:validate_token", owner=info.user_id == ctx.user_id or "service" in ctx.roles)
    return info


@router.get("/tokens")
def validate_token(request: Request, ctx: RequestContext = CTX) -> JSONResponse:
    info = _subject(request, ctx)
    with get_store(request).session() as session:
        payload = views.token(request, session, info, include_catalog=not _nocatalog(request))
    return JSONResponse(payload, headers={"X-Subject-Token": request.headers.get("x-subject-token", "")})


@router.head("/tokens", status_code=200)
def check_token(request: Request, ctx: RequestContext = CTX) -> Response:
    _subject(request, ctx)
    return Response(status_code=200)


@router.delete("/tokens", status_code=204)
def revoke_token(request: Request, ctx: RequestContext = CTX) -> Response:
    info = _subject(request, ctx)
    store = get_store(request)
    store.run_in_transaction(lambda session: tokens.revoke_in(session, info))
    return Response(status_code=204)


@router.get("/catalog")
def auth_catalog(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_auth_catalog")
    if ctx.token.scope == "unscoped":
        from kvmfleet.api.faults import Forbidden

        raise Forbidden("The authenticated token must be scoped to retrieve the catalog.")
    return {"catalog": catalog.token_catalog(views.base(request)),
            "links": {"self": f"{views.v3(request)}/auth/catalog", "previous": None, "next": None}}


@router.get("/projects")
def auth_projects(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    """The enabled projects the token's user holds a role on."""
    authorize(ctx, "identity:get_auth_projects")
    with get_store(request).session() as session:
        ids = projects.user_project_ids(session, ctx.user_id)
        found = [p for p in projects.list_projects(session, ids=ids, enabled=True)]
        members = [views.project(request, p) for p in found]
    return views.collection(request, "projects", members, "/auth/projects")


@router.get("/domains")
def auth_domains(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    """The enabled domains the token's user holds a role on."""
    authorize(ctx, "identity:get_auth_domains")
    with get_store(request).session() as session:
        held = {a.domain.id for a in roles.list_assignments(session, user_id=ctx.user_id) if a.domain is not None}
        members = [views.domain(request, d) for d in domains.list_domains(session, enabled=True) if d.id in held]
    return views.collection(request, "domains", members, "/auth/domains")
