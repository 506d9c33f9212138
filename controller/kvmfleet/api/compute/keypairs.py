"""Compute API: os-keypairs (nova/api/openstack/compute/keypairs.py). Key pairs belong to users: each
user sees and manages its own; from 2.10 an admin may name another user (``user_id``). Another user's
key pair is a 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.schemas import keypairs as schemas
from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.compute.views import keypairs as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import Forbidden
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import keypairs as keypairops

router = APIRouter(prefix=PREFIX, tags=["keypairs"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:os-keypairs:%s"
# Nova's rule is "admin or user_id:%(user_id)s": ANY here, the owner check is _user() below.
policy.register({RULE % name: policy.ANY for name in ("index", "create", "delete", "show")})


def _user(ctx: RequestContext, action: str, requested: str | None) -> str:
    """The user whose key pairs are meant: the caller's own, or (admins) the one named."""
    ctx.authorize(RULE % action)
    user_id = requested or ctx.user_id
    if user_id != ctx.user_id and not ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow {RULE % action} to be performed.")
    return user_id


def _requested_user(request: Request, ctx: RequestContext) -> str | None:
    return query.single(request, "user_id") if ctx.microversion.matches("2.10") else None


@router.get("/os-keypairs", summary="List key pairs", openapi_extra=query.doc("user_id", "limit", "marker"))
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    v = ctx.microversion
    query.check(request, schemas.query_params(v, listing=True), strict=v.matches("2.75"))
    user_id = _user(ctx, "index", _requested_user(request, ctx))
    limit = marker = None
    if v.matches("2.35"):
        limit, marker = query.limit_and_marker(request)
    with get_store(request).read() as session:
        rows = keypairops.list_keypairs(session, user_id, limit, marker)
    return views.index(request, v, rows, query.integer(request, "limit"))


@router.post("/os-keypairs", summary="Create or import a key pair",
             openapi_extra=openapi_body(schemas.CREATE_V210))
def create(request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> JSONResponse:
    v = ctx.microversion
    validate(schemas.create_schema(v), body, t.FORMATS)
    params = body["keypair"]
    user_id = _user(ctx, "create", params.get("user_id") if v.matches("2.10") else None)
    key_type = params.get("type", "ssh")

    def run(session: Any) -> dict[str, Any]:
        if "public_key" in params:
            keypair = keypairops.import_keypair(session, user_id, ctx.project_id, params["name"],
                                                params["public_key"], key_type)
            return views.create(v, keypair, None)
        keypair, private_key = keypairops.generate_keypair(session, user_id, ctx.project_id, params["name"],
                                                           key_type)
        return views.create(v, keypair, private_key)

    return JSONResponse(get_store(request).run_in_transaction(run), status_code=201 if v.matches("2.2") else 200)


@router.get("/os-keypairs/{name}", summary="Show a key pair", openapi_extra=query.doc("user_id"))
def show(name: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    v = ctx.microversion
    query.check(request, schemas.query_params(v, listing=False), strict=v.matches("2.75"))
    user_id = _user(ctx, "show", _requested_user(request, ctx))
    with get_store(request).read() as session:
        return views.show(v, keypairops.get_keypair(session, user_id, name))


@router.delete("/os-keypairs/{name}", status_code=204, summary="Delete a key pair", openapi_extra=query.doc("user_id"))
def delete(name: str, request: Request, ctx: RequestContext = CTX) -> Response:
    v = ctx.microversion
    query.check(request, schemas.query_params(v, listing=False), strict=v.matches("2.75"))
    user_id = _user(ctx, "delete", _requested_user(request, ctx))
    get_store(request).run_in_transaction(lambda s: keypairops.delete_keypair(s, user_id, name))
    return Response(status_code=204 if v.matches("2.2") else 202)
