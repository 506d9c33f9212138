"""Compute API: a server's interfaces (nova/api/openstack/compute/attach_interfaces.py and
schemas/attach_interfaces.py): `openstack server add/remove port|network`.

    GET    /servers/{id}/os-interface            {"interfaceAttachments": [...]}
    POST   /servers/{id}/os-interface            200 {"interfaceAttachment": {...}} once hot-plugged
    GET    /servers/{id}/os-interface/{port_id}  {"interfaceAttachment": {...}}
    DELETE /servers/{id}/os-interface/{port_id}  202, unplugged and the port released

The attach runs in the request (as Nova's, which waits for the compute host): a host that cannot plug the
NIC answers 500 with what failed, and nothing stays (the port made for it is deleted). ``tag`` is shown
from 2.70 (always null).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.servers import find
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import ApiError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import interfaces
from kvmfleet.compute.errors import OperationFailed

router = APIRouter(prefix=PREFIX, tags=["interfaces"])
CTX = Depends(context)
BODY = Depends(json_body)

RULE = "os_compute_api:os-attach-interfaces:%s"
policy.register({RULE % "list": policy.PROJECT_READER_OR_ADMIN, RULE % "show": policy.PROJECT_READER_OR_ADMIN,
                 RULE % "create": policy.PROJECT_MEMBER_OR_ADMIN, RULE % "delete": policy.PROJECT_MEMBER_OR_ADMIN})

_UUID = {"type": "string", "format": "uuid"}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"interfaceAttachment": {
        "type": "object",
        "properties": {
            "net_id": _UUID, "port_id": _UUID,
            "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                "type": "object", "properties": {"ip_address": {"type": "string", "format": "ipv4"}},
                "required": ["ip_address"], "additionalProperties": False}},
            "tag": {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/]*$"},
        },
        "additionalProperties": False}},
    "additionalProperties": False,
}


def render(v: Any, att: dict[str, Any]) -> dict[str, Any]:
    out = dict(att)
    if v.matches("2.70"):
        out["tag"] = None
    return out


@router.get("/servers/{server_id}/os-interface", summary="List a server's interfaces")
def index(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "list")
        return {"interfaceAttachments": [render(ctx.microversion, a) for a in interfaces.describe(session, inst)]}


@router.get("/servers/{server_id}/os-interface/{port_id}", summary="Show an interface")
def show(server_id: str, port_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "show")
        for att in interfaces.describe(session, inst):
            if att["port_id"] == port_id:
                return {"interfaceAttachment": render(ctx.microversion, att)}
    raise ApiError(f"Port {port_id} is not attached", 404)


@router.post("/servers/{server_id}/os-interface", summary="Attach an interface",
             openapi_extra=openapi_body(CREATE_SCHEMA))
def create(server_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    validate(CREATE_SCHEMA, body)
    params = body.get("interfaceAttachment") or {}
    if params.get("net_id") and params.get("port_id"):
        raise ApiError("Must not input both network_id and port_id", 400)
    fixed = (params.get("fixed_ips") or [{}])[0].get("ip_address")
    if fixed and not params.get("net_id"):
        raise ApiError("Must input network_id when request IP address", 400)
    if not params.get("net_id") and not params.get("port_id"):
        raise ApiError("Automatic network allocation is not supported: give net_id or port_id.", 400)
    store = get_store(request)
    with store.read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "create")
        uuid = inst.uuid
    try:
        att = interfaces.attach(store, uuid, None, network_id=params.get("net_id"), port_id=params.get("port_id"),
                                fixed_ip=fixed, admin=ctx.is_admin, user_id=ctx.user_id, request_id=ctx.request_id)
    except OperationFailed as exc:
        raise ApiError(f"Failed to attach network adapter device to {uuid}: {exc.msg}", 500) from None
    return {"interfaceAttachment": render(ctx.microversion, att)}


@router.delete("/servers/{server_id}/os-interface/{port_id}", status_code=202, summary="Detach an interface")
def delete(server_id: str, port_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    store = get_store(request)
    with store.read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "delete")
        uuid = inst.uuid
    try:
        interfaces.detach(store, uuid, port_id, user_id=ctx.user_id, request_id=ctx.request_id)
    except OperationFailed as exc:
        raise ApiError(f"Failed to detach network adapter device from {uuid}: {exc.msg}", 500) from None
    return Response(status_code=202)
