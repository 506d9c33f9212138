"""Compute API: a server's volume attachments (nova/api/openstack/compute/volumes.py, the
VolumeAttachmentController, and schemas/volumes.py).

    GET    /servers/{id}/os-volume_attachments              {"volumeAttachments": [...]}
    POST   /servers/{id}/os-volume_attachments              200 {"volumeAttachment": {...}}: the volume is
                                                            attaching; it is in-use once hot-plugged
    GET    /servers/{id}/os-volume_attachments/{volume_id}  {"volumeAttachment": {...}}
    DELETE /servers/{id}/os-volume_attachments/{volume_id}  202: detaching, then available

An attachment's ``device`` is the guest's disk (/dev/vdb...), null until the host has plugged it (Nova
reserves the name first; kvmfleet asks libvirt for the next free one). ``tag`` (2.49) is accepted and
shown from 2.70; ``delete_on_termination`` from 2.79. Swapping a volume (PUT) is not supported.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.servers import find
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import ApiError
from kvmfleet.api.microversion import MAX
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import volume_ops, volumes
from kvmfleet.store.errors import NotFound
from kvmfleet.store.volume_models import VolumeAttachment

router = APIRouter(prefix=PREFIX, tags=["volume attachments"])
CTX = Depends(context)
BODY = Depends(json_body)

RULE = "os_compute_api:os-volumes-attachments:%s"
policy.register({RULE % "index": policy.PROJECT_READER_OR_ADMIN, RULE % "show": policy.PROJECT_READER_OR_ADMIN,
                 RULE % "create": policy.PROJECT_MEMBER_OR_ADMIN, RULE % "delete": policy.PROJECT_MEMBER_OR_ADMIN})

_UUID = {"type": "string", "format": "uuid"}
_DEVICE = {"type": ["string", "null"], "pattern": "(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$"}


def create_schema(v: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"volumeId": _UUID, "device": _DEVICE}
    if v.matches("2.49"):
        props["tag"] = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/]*$"}
    if v.matches("2.79"):
        props["delete_on_termination"] = {"type": "boolean"}
    return {"type": "object", "properties": {"volumeAttachment": {
        "type": "object", "properties": props, "required": ["volumeId"], "additionalProperties": False}},
        "required": ["volumeAttachment"], "additionalProperties": False}


def render(v: Any, att: VolumeAttachment) -> dict[str, Any]:
    out: dict[str, Any] = {"id": att.volume_id, "volumeId": att.volume_id, "serverId": att.instance_uuid,
                           "device": att.device}
    if v.matches("2.70"):
        out["tag"] = None
    if v.matches("2.79"):
        out["delete_on_termination"] = att.delete_on_termination
    return out


@router.get("/servers/{server_id}/os-volume_attachments", summary="List a server's volume attachments")
def index(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "index")
        rows = volumes.attachments_of(session, inst.uuid)
        q = request.query_params
        offset = int(q["offset"]) if q.get("offset", "").isdigit() else 0
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else None
        rows = rows[offset:offset + limit if limit is not None else None]
        return {"volumeAttachments": [render(ctx.microversion, a) for a in rows]}


@router.get("/servers/{server_id}/os-volume_attachments/{volume_id}", summary="Show a volume attachment")
def show(server_id: str, volume_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "show")
        for att in volumes.attachments_of(session, inst.uuid):
            if att.volume_id == volume_id:
                return {"volumeAttachment": render(ctx.microversion, att)}
    raise ApiError(f"Volume {volume_id} is not attached to server {server_id}", 404)


@router.post("/servers/{server_id}/os-volume_attachments", summary="Attach a volume to a server",
             openapi_extra=openapi_body(create_schema(MAX)))
def create(server_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    v = ctx.microversion
    validate(create_schema(v), body)
    params = body["volumeAttachment"]
    store = get_store(request)

    def record(session: Any) -> dict[str, Any]:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "create")
        try:
            vol = volumes.find_volume(session, params["volumeId"], inst.project_id)
        except NotFound:
            raise ApiError(f"Volume {params['volumeId']} could not be found.", 404) from None
        att = volumes.record_attach(session, vol, inst.uuid, project_id=inst.project_id,
                                    device=params.get("device"),
                                    delete_on_termination=bool(params.get("delete_on_termination", False)))
        return {"volumeAttachment": render(v, att)}

    out = store.run_in_transaction(record)
    volume_ops.submit(store, params["volumeId"])
    return out


@router.delete("/servers/{server_id}/os-volume_attachments/{volume_id}", status_code=202,
               summary="Detach a volume from a server")
def delete(server_id: str, volume_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    store = get_store(request)

    def record(session: Any) -> None:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "delete")
        volumes.record_detach(session, inst, volume_id)

    store.run_in_transaction(record)
    volume_ops.submit(store, volume_id)
    return Response(status_code=202)
