"""Cinder v3 volumes (cinder/api/v3/volumes.py, cinder/api/v2/views/volumes.py, cinder/api/schemas/volumes.py):
list (summary and detail, with Cinder's filters and sorting by created_at), show, create (202, status
creating; the host side runs in the background), update (name, description, metadata), delete (202,
refused while attached) and the ``os-extend`` action (202; in-use volumes from 3.42).

Each route answers with and without the project id in the path; a project id that is not the token's
is a 404 for everyone but an admin, and another project's volume is a 404.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from kvmfleet.api import policy
from kvmfleet.api.compute.views.links import base_url
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import ApiError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.api.volume import PREFIX
from kvmfleet.compute import volume_ops, volumes
from kvmfleet.store.volume_models import Volume

router = APIRouter(prefix=PREFIX, tags=["volumes"])
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "volume:create": policy.PROJECT_MEMBER_OR_ADMIN, "volume:get": policy.PROJECT_READER_OR_ADMIN,
    "volume:get_all": policy.PROJECT_READER_OR_ADMIN, "volume:update": policy.PROJECT_MEMBER_OR_ADMIN,
    "volume:delete": policy.PROJECT_MEMBER_OR_ADMIN, "volume:extend": policy.PROJECT_MEMBER_OR_ADMIN,
    "volume:extend_attached_volume": policy.PROJECT_MEMBER_OR_ADMIN,
    "volume_extension:volume_host_attribute": policy.ADMIN,
})

_NAME = {"type": ["string", "null"], "maxLength": 255}
_METADATA = {"type": "object", "patternProperties": {"^[a-zA-Z0-9-_:. /]{1,255}$": {"type": "string", "maxLength": 255}},
             "additionalProperties": False, "maxProperties": 128}
_SIZE = {"type": ["integer", "string", "null"], "pattern": "^[0-9]+$", "minimum": 1}
CREATE = {"type": "object", "properties": {"volume": {"type": "object", "properties": {
    "name": _NAME, "display_name": _NAME, "description": _NAME, "display_description": _NAME,
    "size": _SIZE, "volume_type": {"type": ["string", "null"], "maxLength": 255},
    "availability_zone": {"type": ["string", "null"], "maxLength": 255},
    "imageRef": {"type": ["string", "null"]}, "image_id": {"type": ["string", "null"]},
    "snapshot_id": {"type": ["string", "null"]}, "source_volid": {"type": ["string", "null"]},
    "backup_id": {"type": ["string", "null"]}, "consistencygroup_id": {"type": ["string", "null"]},
    "group_id": {"type": ["string", "null"]}, "multiattach": {"type": "boolean"},
    "metadata": {"oneOf": [_METADATA, {"type": "null"}]}}, "additionalProperties": False}},
    "required": ["volume"], "additionalProperties": False}
UPDATE = {"type": "object", "properties": {"volume": {"type": "object", "properties": {
    "name": _NAME, "display_name": _NAME, "description": _NAME, "display_description": _NAME,
    "metadata": _METADATA}, "additionalProperties": False}}, "required": ["volume"], "additionalProperties": False}
EXTEND = {"type": "object", "properties": {"new_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$",
                                                        "minimum": 1}},
          "required": ["new_size"], "additionalProperties": False}
ACTION = {"type": "object", "properties": {"os-extend": EXTEND}, "minProperties": 1, "maxProperties": 1}

FILTERS = ("name", "status", "metadata", "bootable", "availability_zone", "volume_type", "all_tenants",
           "project_id", "limit", "marker", "sort", "sort_key", "sort_dir", "with_count", "offset")


def both(method: str, path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler at the path with and without the project id (the project-less one first)."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        getattr(router, method)(path, **kwargs)(fn)
        getattr(router, method)("/{project_id}" + path, include_in_schema=False, **kwargs)(fn)
        return fn
    return wrap


def scope(ctx: RequestContext, project_id: str | None, all_tenants: bool = False) -> str | None:
    """The project the request is limited to (None: every project, an admin asking for all_tenants)."""
    if project_id is not None and project_id != ctx.project_id:
        if not ctx.is_admin:
            raise ApiError(f"Project {project_id} could not be found.", 404)
        return project_id
    return ctx.scope_project(all_tenants)


def isotime(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def type_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kvmfleet:volume-type:{name}"))


def links(request: Request, project_id: str, ident: str) -> list[dict[str, str]]:
    base = base_url(request)
    return [{"rel": "self", "href": f"{base}/volume/v3/{project_id}/volumes/{ident}"},
            {"rel": "bookmark", "href": f"{base}/volume/{project_id}/volumes/{ident}"}]


def attachments(vol: Volume) -> list[dict[str, Any]]:
    att = vol.attachment
    if att is None or vol.status not in ("in-use", "detaching", "extending"):
        return []
    return [{"id": vol.id, "attachment_id": att.id, "volume_id": vol.id, "server_id": att.instance_uuid,
             "host_name": att.host, "device": att.device, "attached_at": isotime(att.attached_at)}]


def render(request: Request, ctx: RequestContext, vol: Volume) -> dict[str, Any]:
    v = ctx.microversion
    attached = attachments(vol)
    out: dict[str, Any] = {
        "id": vol.id, "name": vol.name, "description": vol.description, "status": vol.status, "size": vol.size_gb,
        "availability_zone": vol.availability_zone, "created_at": isotime(vol.created_at),
        "updated_at": isotime(vol.updated_at), "volume_type": vol.volume_type, "snapshot_id": None,
        "source_volid": None, "metadata": dict(vol.metadata_ or {}), "bootable": str(bool(vol.bootable)).lower(),
        "encrypted": False, "multiattach": False, "replication_status": None, "consistencygroup_id": None,
        "attachments": attached, "user_id": vol.user_id, "links": links(request, vol.project_id, vol.id),
        "os-vol-tenant-attr:tenant_id": vol.project_id, "os-vol-mig-status-attr:migstat": None,
        "os-vol-mig-status-attr:name_id": None,
    }
    if ctx.is_admin:  # Cinder's host@backend#pool
        pool = _types().get(vol.volume_type)
        out["os-vol-host-attr:host"] = f"{vol.host or 'shared'}@{vol.volume_type}#{pool.pool if pool else '?'}"
    if v.matches("3.13"):
        out["group_id"] = None
    if v.matches("3.21"):
        out["provider_id"] = None
    if v.matches("3.48"):
        out["shared_targets"], out["service_uuid"] = False, None
    if v.matches("3.61") and ctx.is_admin:
        out["cluster_name"] = None
    if v.matches("3.63"):
        out["volume_type_id"] = type_id(vol.volume_type)
    if v.matches("3.65"):
        out["consumes_quota"] = True
    if vol.image_id:
        out["volume_image_metadata"] = {"image_id": vol.image_id}
    return out


def _types() -> dict[str, Any]:
    from kvmfleet.config import get_settings

    return dict(get_settings().volume.types)


def _get(session: Any, ctx: RequestContext, project_id: str | None, volume_id: str) -> Volume:
    vol = session.get(Volume, volume_id)
    limit_to = scope(ctx, project_id, all_tenants=True)
    if vol is None or (limit_to is not None and vol.project_id != limit_to):
        raise ApiError(f"Volume {volume_id} could not be found.", 404)
    return vol


def _listing(request: Request, ctx: RequestContext, project_id: str | None, detail: bool) -> dict[str, Any]:
    ctx.authorize("volume:get_all")
    q = request.query_params
    all_tenants = q.get("all_tenants", "").lower() in ("1", "true", "yes")
    limit_to = scope(ctx, project_id, all_tenants)
    if ctx.is_admin and q.get("project_id") and all_tenants:
        limit_to = q["project_id"]
    with get_store(request).read() as session:
        query = select(Volume)
        if limit_to is not None:
            query = query.where(Volume.project_id == limit_to)
        for key, column in (("name", Volume.name), ("status", Volume.status), ("volume_type", Volume.volume_type),
                            ("availability_zone", Volume.availability_zone)):
            if q.get(key) is not None:
                query = query.where(column == q[key])
        if q.get("bootable") is not None:
            query = query.where(Volume.bootable.is_(q["bootable"].lower() in ("1", "true", "yes")))
        desc = q.get("sort_dir", "desc").lower() != "asc" and not q.get("sort", "").endswith(":asc")
        rows = session.scalars(query.order_by(Volume.created_at.desc() if desc else Volume.created_at,
                                              Volume.id)).all()
        marker = q.get("marker")
        if marker:
            ids = [r.id for r in rows]
            if marker not in ids:
                raise ApiError(f"Marker {marker} could not be found.", 400)
            rows = rows[ids.index(marker) + 1:]
        limit = q.get("limit")
        if limit is not None:
            if not limit.isdigit():
                raise ApiError(f"Invalid input received: limit must be an integer, got {limit!r}", 400)
            rows = rows[:int(limit)]
        if detail:
            items = [render(request, ctx, r) for r in rows]
        else:
            items = [{"id": r.id, "name": r.name, "links": links(request, r.project_id, r.id)} for r in rows]
    out: dict[str, Any] = {"volumes": items}
    if ctx.microversion.matches("3.45") and q.get("with_count", "").lower() in ("1", "true", "yes"):
        out["count"] = len(items)
    return out


@both("get", "/volumes", summary="List volumes")
def index(request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> dict[str, Any]:
    return _listing(request, ctx, project_id, detail=False)


@both("get", "/volumes/detail", summary="List volumes with details")
def detail(request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> dict[str, Any]:
    return _listing(request, ctx, project_id, detail=True)


@both("get", "/volumes/{volume_id}", summary="Show a volume")
def show(volume_id: str, request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("volume:get")
    with get_store(request).read() as session:
        return {"volume": render(request, ctx, _get(session, ctx, project_id, volume_id))}


@both("post", "/volumes", status_code=202, summary="Create a volume", openapi_extra=openapi_body(CREATE))
def create(request: Request, project_id: str | None = None, ctx: RequestContext = CTX,
           body: Any = BODY) -> JSONResponse:
    ctx.authorize("volume:create")
    validate(CREATE, body)
    params = body["volume"]
    owner = scope(ctx, project_id)
    if owner is None:
        raise ApiError("a volume is created in a project: use a project-scoped token", 400)
    for unsupported in ("snapshot_id", "source_volid", "backup_id", "consistencygroup_id", "group_id"):
        if params.get(unsupported):
            raise ApiError(f"Invalid input received: {unsupported} is not supported by kvmfleet "
                           "(no snapshots, backups or groups)", 400)
    if params.get("multiattach"):
        raise ApiError("Invalid input received: multiattach volumes are not supported", 400)
    az = params.get("availability_zone")
    if az and az != "nova":
        raise ApiError(f"Invalid input received: Availability zone '{az}' is invalid.", 400)
    if params.get("size") is None and not (params.get("imageRef") or params.get("image_id")):
        raise ApiError("Invalid input received: size is required when creating a volume from nothing", 400)
    store = get_store(request)
    image_id = params.get("imageRef") or params.get("image_id")

    def record(session: Any) -> dict[str, Any]:
        size = params.get("size")
        if size is None and image_id:
            from kvmfleet.store.models import Image

            image = session.get(Image, image_id)
            size = max(1, int((image.min_disk if image else 0) or 0),
                       -(-int((image.virtual_size or image.size) if image else 0) // 1024 ** 3))
        vol = volumes.record_create(session, project_id=owner, user_id=ctx.user_id, size=size,
                                    name=params.get("name", params.get("display_name")),
                                    description=params.get("description", params.get("display_description")),
                                    type_name=params.get("volume_type"), image_id=image_id,
                                    metadata=params.get("metadata"))
        return {"volume": render(request, ctx, vol)}

    out = store.run_in_transaction(record)
    volume_ops.submit(store, out["volume"]["id"])
    return JSONResponse(out, status_code=202)


@both("put", "/volumes/{volume_id}", summary="Update a volume", openapi_extra=openapi_body(UPDATE))
def update(volume_id: str, request: Request, project_id: str | None = None, ctx: RequestContext = CTX,
           body: Any = BODY) -> dict[str, Any]:
    ctx.authorize("volume:update")
    validate(UPDATE, body)
    params = body["volume"]

    def record(session: Any) -> dict[str, Any]:
        vol = _get(session, ctx, project_id, volume_id)
        for key, alias in (("name", "display_name"), ("description", "display_description")):
            if key in params or alias in params:
                setattr(vol, key, params.get(key, params.get(alias)))
        if "metadata" in params:
            vol.metadata_ = dict(params["metadata"])
        session.flush()
        return {"volume": render(request, ctx, vol)}

    return get_store(request).run_in_transaction(record)


@both("delete", "/volumes/{volume_id}", status_code=202, summary="Delete a volume")
def delete(volume_id: str, request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("volume:delete")
    store = get_store(request)
    cascade = request.query_params.get("cascade", "").lower() in ("1", "true", "yes")
    store.run_in_transaction(lambda s: volumes.record_delete(s, _get(s, ctx, project_id, volume_id), cascade=cascade))
    volume_ops.submit(store, volume_id)
    return Response(status_code=202)


@both("post", "/volumes/{volume_id}/action", status_code=202, summary="Act on a volume (os-extend)",
      openapi_extra=openapi_body(ACTION))
def action(volume_id: str, request: Request, project_id: str | None = None, ctx: RequestContext = CTX,
           body: Any = BODY) -> Response:
    if not isinstance(body, dict) or len(body) != 1:
        raise ApiError("Invalid input received: the body must name exactly one action", 400)
    (name, params), = body.items()
    if name != "os-extend":
        raise ApiError(f"There is no such action: {name}", 400)
    validate(ACTION, body)
    store = get_store(request)

    def record(session: Any) -> None:
        vol = _get(session, ctx, project_id, volume_id)
        if vol.status == "in-use":
            if not ctx.microversion.matches("3.42"):
                raise ApiError(f"Invalid volume: Volume {vol.id} status must be available to extend "
                               "(in-use from microversion 3.42)", 400)
            ctx.authorize("volume:extend_attached_volume")
        else:
            ctx.authorize("volume:extend")
        volumes.record_extend(session, vol, params["new_size"])

    store.run_in_transaction(record)
    volume_ops.submit(store, volume_id)
    return Response(status_code=202)
