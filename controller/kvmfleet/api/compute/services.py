"""Compute API: os-services (nova/api/openstack/compute/services.py), admins only. Each compute host is one
``nova-compute`` service; disabling it (with a reason) keeps the scheduler from choosing the host, forcing
it down (2.11) fences it. Before 2.53: ``PUT /os-services/{enable,disable,disable-log-reason,force-down}``
naming host and binary in the body; from 2.53: ``PUT /os-services/{uuid}``."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.schemas import services as schemas
from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.compute.views import services as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import services as svc
from kvmfleet.store.models import utcnow

router = APIRouter(prefix=PREFIX, tags=["services"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:os-services:%s"
policy.register({RULE % "list": policy.ADMIN, RULE % "update": policy.ADMIN, RULE % "delete": policy.ADMIN})


def _is_uuid(text: str) -> bool:
    try:
        uuidlib.UUID(text)
    except ValueError:
        return False
    return True


@router.get("/os-services", summary="List compute services (admin)", openapi_extra=query.doc(*schemas.QUERY_PARAMS))
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "list")
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    now = utcnow()
    with get_store(request).read() as session:
        hosts = svc.list_services(session, query.single(request, "host"), query.single(request, "binary"))
        return {"services": [views.service(ctx.microversion, h, now) for h in hosts]}


def _update_v21(request: Request, ctx: RequestContext, action: str, body: Any) -> dict[str, Any]:
    actions = {"enable", "disable", "disable-log-reason"} | ({"force-down"} if ctx.microversion.matches("2.11") else set())
    if action not in actions:
        raise NotFoundError("Unknown action")
    validate(schemas.UPDATE_V211 if ctx.microversion.matches("2.11") else schemas.UPDATE, body, t.FORMATS)
    host_name, binary = body["host"], body["binary"]
    if action == "force-down":
        if "forced_down" not in body:
            raise BadRequest("Missing forced_down field")
        forced = t.as_bool(body["forced_down"])
        get_store(request).run_in_transaction(
            lambda s: svc.set_forced_down(s, svc.find_host(s, host_name, binary), forced))
        return {"service": {"host": host_name, "binary": binary, "forced_down": forced}}
    reason = None
    if action == "disable-log-reason":
        if "disabled_reason" not in body:
            raise BadRequest("Missing disabled reason field")
        reason = body["disabled_reason"]
    enabled = action == "enable"
    get_store(request).run_in_transaction(
        lambda s: svc.set_status(s, svc.find_host(s, host_name, binary), enabled, reason))
    out: dict[str, Any] = {"host": host_name, "binary": binary, "status": "enabled" if enabled else "disabled"}
    if reason:
        out["disabled_reason"] = reason
    return {"service": out}


def _update_v253(request: Request, ctx: RequestContext, service_id: str, body: Any) -> dict[str, Any]:
    if not _is_uuid(service_id):
        raise BadRequest(f"Invalid uuid {service_id}")
    validate(schemas.UPDATE_V253, body, t.FORMATS)
    if "status" not in body and "forced_down" not in body:
        raise BadRequest("No updates were requested. Fields 'status' or 'forced_down' should be specified.")
    if body.get("status") == "enabled" and body.get("disabled_reason"):
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")

    def run(session: Any) -> dict[str, Any]:
        host = svc.get_by_id(session, service_id, by_uuid=True)
        if "status" in body:
            svc.set_status(session, host, body["status"] == "enabled", body.get("disabled_reason"))
        if "forced_down" in body:
            svc.set_forced_down(session, host, t.as_bool(body["forced_down"]))
        return {"service": views.service(ctx.microversion, host, utcnow())}

    return get_store(request).run_in_transaction(run)


@router.put("/os-services/{service_id}", summary="Enable, disable or force down a compute service (admin)",
            openapi_extra=openapi_body(schemas.UPDATE_V211))
def update(service_id: str, request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(RULE % "update")
    if ctx.microversion.matches("2.53"):
        return _update_v253(request, ctx, service_id, body)
    return _update_v21(request, ctx, service_id, body)


@router.delete("/os-services/{service_id}", status_code=204, summary="Delete a compute service (admin)")
def delete(service_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize(RULE % "delete")
    by_uuid = ctx.microversion.matches("2.53")
    if by_uuid and not _is_uuid(service_id):
        raise BadRequest(f"Invalid uuid {service_id}")
    if not by_uuid and not service_id.isdigit():
        raise BadRequest(f"Invalid input for field/attribute id. Value: {service_id}. id must be an integer.")

    def run(session: Any) -> None:
        svc.delete_service(session, svc.get_by_id(session, service_id, by_uuid))

    get_store(request).run_in_transaction(run)
    return Response(status_code=204)
