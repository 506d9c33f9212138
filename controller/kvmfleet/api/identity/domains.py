"""/identity/v3/domains (keystone/api/domains.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kvmfleet.api.context import RequestContext, get_store
from kvmfleet.api.identity import schemas, views
from kvmfleet.api.identity._common import BODY, CLEAN_URL, CTX, PREFIX, authorize, query_bool, query_str
from kvmfleet.api.validation import openapi_body, validate
from kvmfleet.identity import domains

router = APIRouter(prefix=PREFIX + "/domains", dependencies=CLEAN_URL)


def _own_domain(ctx: RequestContext, domain_id: str) -> bool:
    """Keystone lets a token read its own domain, or its project's domain."""
    token = ctx.token
    return token is not None and domain_id in (token.domain_id, token.project_domain_id)


@router.get("")
def list_domains(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_domains")
    with get_store(request).session() as session:
        found = domains.list_domains(session, name=query_str(request, "name"), enabled=query_bool(request, "enabled"))
        return views.collection(request, "domains", [views.domain(request, d) for d in found], "/domains")


@router.post("", status_code=201, openapi_extra=openapi_body(schemas.domain_create))
def create_domain(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:create_domain")
    data = validate(schemas.domain_create, body)["domain"]

    def run(session: Any) -> dict[str, Any]:
        d = domains.create_domain(session, data["name"], data.get("description"), data.get("enabled", True))
        return {"domain": views.domain(request, d)}

    return get_store(request).run_in_transaction(run)


@router.get("/{domain_id}")
def show_domain(domain_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_domain", owner=_own_domain(ctx, domain_id))
    with get_store(request).session() as session:
        return {"domain": views.domain(request, domains.get_domain(session, domain_id))}


@router.patch("/{domain_id}", openapi_extra=openapi_body(schemas.domain_update))
def update_domain(domain_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:update_domain")
    data = validate(schemas.domain_update, body)["domain"]

    def run(session: Any) -> dict[str, Any]:
        d = domains.update_domain(session, domain_id, name=data.get("name"), description=data.get("description"),
                                  enabled=data.get("enabled"))
        return {"domain": views.domain(request, d)}

    return get_store(request).run_in_transaction(run)


@router.delete("/{domain_id}", status_code=204)
def delete_domain(domain_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    authorize(ctx, "identity:delete_domain")
    get_store(request).run_in_transaction(lambda session: domains.delete_domain(session, domain_id))
    return Response(status_code=204)
