"""Cinder v3 volume types (one per configured backend, read-only: the operator declares them in the
configuration), quota sets (volumes and gigabytes are enforced; Cinder's other keys are shown as -1 or
their defaults and never counted), absolute limits and availability zones."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import ApiError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.api.volume import PREFIX
from kvmfleet.api.volume.volumes import both, scope, type_id
from kvmfleet.compute import volumes
from kvmfleet.config import VolumeType, get_settings

router = APIRouter(prefix=PREFIX, tags=["volume types", "quotas"])
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "volume_extension:type_get": policy.ANY, "volume_extension:type_get_all": policy.ANY,
    "volume_extension:quotas:show": policy.PROJECT_READER_OR_ADMIN, "volume_extension:quotas:update": policy.ADMIN,
    "limits_extension:used_limits": policy.ANY, "volume_extension:availability_zone_list": policy.ANY,
})

# Cinder's quota keys that kvmfleet does not count (no snapshots, backups or groups): shown, never enforced
UNCOUNTED = {"snapshots": 10, "backups": 10, "backup_gigabytes": 1000, "groups": 10, "per_volume_gigabytes": -1}
QUOTA_UPDATE = {"type": "object", "properties": {"quota_set": {"type": "object", "properties": {
    "volumes": {"type": "integer", "minimum": -1}, "gigabytes": {"type": "integer", "minimum": -1},
    **{k: {"type": "integer", "minimum": -1} for k in UNCOUNTED}}, "additionalProperties": True}},
    "required": ["quota_set"], "additionalProperties": False}


def render_type(vt: VolumeType) -> dict[str, Any]:
    return {"id": type_id(vt.name), "name": vt.name,
            "description": f"libvirt {vt.pool_type} pool {vt.pool}" + (", shared by every host" if vt.shared
                                                                      else ", on each host"),
            "is_public": True, "os-volume-type-access:is_public": True, "qos_specs_id": None,
            "extra_specs": {"volume_backend_name": vt.name, "kvmfleet:pool": vt.pool,
                            "kvmfleet:shared": str(vt.shared).lower()}}


def _find_type(key: str) -> VolumeType:
    settings = get_settings().volume
    if key == "default":
        return settings.types[settings.default_type]
    for vt in settings.types.values():
        if key in (vt.name, type_id(vt.name)):
            return vt
    raise ApiError(f"Volume type {key} could not be found.", 404)


@both("get", "/types", summary="List volume types")
def types(request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("volume_extension:type_get_all")
    scope(ctx, project_id)
    return {"volume_types": [render_type(vt) for vt in get_settings().volume.types.values()]}


@both("get", "/types/{type_key}", summary="Show a volume type (or the default one)")
def show_type(type_key: str, request: Request, project_id: str | None = None,
              ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("volume_extension:type_get")
    scope(ctx, project_id)
    return {"volume_type": render_type(_find_type(type_key))}


def _quota_set(session: Any, target: str, usage: bool) -> dict[str, Any]:
    hard, used = volumes.limits(session, target), volumes.usage(session, target)
    out: dict[str, Any] = {"id": target}
    for name in volumes.RESOURCES:
        out[name] = {"limit": hard[name], "in_use": used[name], "reserved": 0, "allocated": 0} if usage else hard[name]
    for name, default in UNCOUNTED.items():
        out[name] = {"limit": default, "in_use": 0, "reserved": 0, "allocated": 0} if usage else default
    for vt in get_settings().volume.types:
        for name in ("volumes", "gigabytes", "snapshots"):
            out[f"{name}_{vt}"] = {"limit": -1, "in_use": 0, "reserved": 0, "allocated": 0} if usage else -1
    return out


def _target(ctx: RequestContext, target: str) -> str:
    if target != ctx.project_id and not ctx.is_admin:
        raise ApiError(f"Project {target} could not be found.", 404)
    return target


@both("get", "/os-quota-sets/{target_id}", summary="Show a project's volume quotas")
def show_quota(target_id: str, request: Request, project_id: str | None = None,
               ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("volume_extension:quotas:show")
    scope(ctx, project_id)
    usage = request.query_params.get("usage", "").lower() in ("1", "true", "yes")
    with get_store(request).read() as session:
        from kvmfleet.store.models import Project

        if session.get(Project, _target(ctx, target_id)) is None:
            raise ApiError(f"Project {target_id} could not be found.", 404)
        return {"quota_set": _quota_set(session, target_id, usage)}


@both("get", "/os-quota-sets/{target_id}/defaults", summary="Show the default volume quotas")
def default_quota(target_id: str, request: Request, project_id: str | None = None,
                  ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("volume_extension:quotas:show")
    settings = get_settings().volume
    return {"quota_set": {"id": target_id, "volumes": settings.volumes, "gigabytes": settings.gigabytes,
                          **UNCOUNTED}}


@both("put", "/os-quota-sets/{target_id}", summary="Update a project's volume quotas",
      openapi_extra=openapi_body(QUOTA_UPDATE))
def update_quota(target_id: str, request: Request, project_id: str | None = None, ctx: RequestContext = CTX,
                 body: Any = BODY) -> dict[str, Any]:
    ctx.authorize("volume_extension:quotas:update")
    validate(QUOTA_UPDATE, body)
    values = body["quota_set"]

    def record(session: Any) -> dict[str, Any]:
        from kvmfleet.store.models import Project

        if session.get(Project, target_id) is None:
            raise ApiError(f"Project {target_id} could not be found.", 404)
        volumes.set_limits(session, target_id, **{k: values[k] for k in volumes.RESOURCES if k in values})
        out = _quota_set(session, target_id, usage=False)
        out.pop("id")
        return {"quota_set": out}

    return get_store(request).run_in_transaction(record)


@both("get", "/limits", summary="Show absolute volume limits")
def limits(request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("limits_extension:used_limits")
    target = scope(ctx, project_id) or ctx.project_id
    with get_store(request).read() as session:
        hard = volumes.limits(session, target) if target else {"volumes": -1, "gigabytes": -1}
        used = volumes.usage(session, target) if target else {"volumes": 0, "gigabytes": 0}
    return {"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": hard["volumes"], "maxTotalVolumeGigabytes": hard["gigabytes"],
        "totalVolumesUsed": used["volumes"], "totalGigabytesUsed": used["gigabytes"],
        "maxTotalSnapshots": UNCOUNTED["snapshots"], "totalSnapshotsUsed": 0,
        "maxTotalBackups": UNCOUNTED["backups"], "totalBackupsUsed": 0,
        "maxTotalBackupGigabytes": UNCOUNTED["backup_gigabytes"], "totalBackupGigabytesUsed": 0}}}


@both("get", "/os-availability-zone", summary="List volume availability zones")
def availability_zones(request: Request, project_id: str | None = None, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("volume_extension:availability_zone_list")
    return {"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True}}]}
