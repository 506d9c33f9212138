"""Compute API: server metadata (nova/api/openstack/compute/server_metadata.py).

    GET  /servers/{id}/metadata            {"metadata": {...}}
    POST /servers/{id}/metadata            merge, 200 {"metadata": all}
    PUT  /servers/{id}/metadata            replace, 200 {"metadata": all}
    GET  /servers/{id}/metadata/{key}      {"meta": {key: value}}
    PUT  /servers/{id}/metadata/{key}      {"meta": {key: value}} (key must match the URL)
    DELETE /servers/{id}/metadata/{key}    204
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import server_metadata as schemas
from kvmfleet.api.compute.schemas.types import FORMATS
from kvmfleet.api.compute.server_actions import conflict
from kvmfleet.api.compute.servers import find
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import server_updates
from kvmfleet.compute.errors import InvalidInstanceState

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

RULE = "os_compute_api:server-metadata:%s"
policy.register({
    RULE % "index": policy.PROJECT_READER_OR_ADMIN, RULE % "show": policy.PROJECT_READER_OR_ADMIN,
    RULE % "create": policy.PROJECT_MEMBER_OR_ADMIN, RULE % "update_all": policy.PROJECT_MEMBER_OR_ADMIN,
    RULE % "update": policy.PROJECT_MEMBER_OR_ADMIN, RULE % "delete": policy.PROJECT_MEMBER_OR_ADMIN,
})
NOT_FOUND = "Metadata item was not found"


def _meta(inst: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (inst.metadata_ or {}).items()}


def _set(request: Request, ctx: RequestContext, server_id: str, rule: str, items: dict[str, str],
         replace: bool, action: str = "update metadata") -> dict[str, str]:
    with get_store(request).transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(rule)
        try:
            return server_updates.set_metadata(session, inst, items, replace=replace, action=action)
        except InvalidInstanceState as exc:
            raise conflict(exc, action, server_id) from exc


@router.get("/servers/{server_id}/metadata")
def list_metadata(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "index")
        return {"metadata": _meta(inst)}


@router.post("/servers/{server_id}/metadata", openapi_extra=openapi_body(schemas.CREATE))
def create_metadata(server_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    validate(schemas.CREATE, body, FORMATS)
    return {"metadata": _set(request, ctx, server_id, RULE % "create", body["metadata"], replace=False)}


@router.put("/servers/{server_id}/metadata", openapi_extra=openapi_body(schemas.UPDATE_ALL))
def replace_metadata(server_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    validate(schemas.UPDATE_ALL, body, FORMATS)
    return {"metadata": _set(request, ctx, server_id, RULE % "update_all", body["metadata"], replace=True)}


@router.get("/servers/{server_id}/metadata/{key}")
def show_metadata_item(server_id: str, key: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "show")
        meta = _meta(inst)
        if key not in meta:
            raise NotFoundError(NOT_FOUND)
        return {"meta": {key: meta[key]}}


@router.put("/servers/{server_id}/metadata/{key}", openapi_extra=openapi_body(schemas.UPDATE))
def update_metadata_item(server_id: str, key: str, request: Request, body: Any = BODY,
                         ctx: RequestContext = CTX) -> dict[str, Any]:
    validate(schemas.UPDATE, body, FORMATS)
    item = body["meta"]
    if key not in item:
        raise BadRequest("Request body and URI mismatch")
    _set(request, ctx, server_id, RULE % "update", item, replace=False)
    return {"meta": item}


@router.delete("/servers/{server_id}/metadata/{key}", status_code=204)
def delete_metadata_item(server_id: str, key: str, request: Request, ctx: RequestContext = CTX) -> Response:
    with get_store(request).transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "delete")
        if key not in _meta(inst):
            raise NotFoundError(NOT_FOUND)
        try:
            server_updates.delete_metadata(session, inst, key)
        except InvalidInstanceState as exc:
            raise conflict(exc, "delete metadata", server_id) from exc
    return Response(status_code=204)
