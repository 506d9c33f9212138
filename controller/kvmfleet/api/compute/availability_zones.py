"""Compute API: os-availability-zone (nova/api/openstack/compute/availability_zone.py). Everyone may list
the zones (a zone with an enabled host is available); admins see each available zone's hosts with the
state of their nova-compute service (``/detail``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.views import services as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.compute import services as svc
from kvmfleet.store.models import utcnow

router = APIRouter(prefix=PREFIX, tags=["availability zones"])
CTX = Depends(context)  # the dependency, once (ruff B008)

RULE = "os_compute_api:os-availability-zone:%s"
policy.register({RULE % "list": policy.ANY, RULE % "detail": policy.ADMIN})


def _zones(request: Request, detail: bool) -> dict[str, Any]:
    now = utcnow()
    with get_store(request).transaction() as session:
        return {"availabilityZoneInfo": [views.zone(z, now, detail) for z in svc.zones(session)]}


@router.get("/os-availability-zone", summary="List availability zones")
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "list")
    return _zones(request, detail=False)


@router.get("/os-availability-zone/detail", summary="List availability zones with their hosts (admin)")
def detail(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "detail")
    return _zones(request, detail=True)
