"""/identity/v3/services, /endpoints, /regions: the catalog as Keystone's catalog API lists it (read
only: the services are kvmfleet's own, on its one port)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from kvmfleet.api.context import RequestContext
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.identity import views
from kvmfleet.api.identity._common import CLEAN_URL, CTX, PREFIX, authorize, query_str
from kvmfleet.identity import catalog

router = APIRouter(prefix=PREFIX, dependencies=CLEAN_URL)


def _service(request: Request, svc: catalog.Service) -> dict[str, Any]:
    return {"id": svc.id, "type": svc.type, "name": svc.name, "enabled": True, "description": svc.description,
            "links": {"self": f"{views.v3(request)}/services/{svc.id}"}}


def _endpoint(request: Request, ep: dict[str, Any]) -> dict[str, Any]:
    return {**ep, "links": {"self": f"{views.v3(request)}/endpoints/{ep['id']}"}}


def _region(request: Request) -> dict[str, Any]:
    name = catalog.region()
    return {"id": name, "description": "", "parent_region_id": None,
            "links": {"self": f"{views.v3(request)}/regions/{name}"}}


@router.get("/services")
def list_services(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_services")
    wanted = query_str(request, "type")
    members = [_service(request, s) for s in catalog.SERVICES if wanted is None or s.type == wanted]
    return views.collection(request, "services", members, "/services")


@router.get("/services/{service_id}")
def show_service(service_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_service")
    svc = catalog.find_service(service_id)
    if svc is None:
        raise NotFoundError(f"Could not find service: {service_id}.")
    return {"service": _service(request, svc)}


@router.get("/endpoints")
def list_endpoints(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_endpoints")
    filters = {k: query_str(request, k) for k in ("interface", "service_id", "region_id")}
    members = [_endpoint(request, ep) for ep in catalog.endpoints(views.base(request))
               if all(v is None or ep[k] == v for k, v in filters.items())]
    return views.collection(request, "endpoints", members, "/endpoints")


@router.get("/endpoints/{endpoint_id}")
def show_endpoint(endpoint_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_endpoint")
    for ep in catalog.endpoints(views.base(request)):
        if ep["id"] == endpoint_id:
            return {"endpoint": _endpoint(request, ep)}
    raise NotFoundError(f"Could not find endpoint: {endpoint_id}.")


@router.get("/regions")
def list_regions(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:list_regions")
    return views.collection(request, "regions", [_region(request)], "/regions")


@router.get("/regions/{region_id}")
def show_region(region_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    authorize(ctx, "identity:get_region")
    if region_id != catalog.region():
        raise NotFoundError(f"Could not find region: {region_id}.")
    return {"region": _region(request)}
