"""Resources kvmfleet has none of yet (roadmap 5), listed empty so clients that look (openstacksdk's
floating IP logic, `openstack server show`) get an answer: floating IPs and routers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.network import PREFIX
from kvmfleet.api.network.query import collection

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({"get_floatingip": policy.PROJECT_READER_OR_ADMIN, "get_router": policy.PROJECT_READER_OR_ADMIN})

FLOATINGIP_ATTRS = {"id", "floating_ip_address", "floating_network_id", "router_id", "port_id", "fixed_ip_address",
                    "status", "tenant_id", "project_id", "description", "created_at", "updated_at"}
ROUTER_ATTRS = {"id", "name", "status", "admin_state_up", "tenant_id", "project_id", "external_gateway_info",
                "description", "created_at", "updated_at"}


@router.get("/floatingips", summary="List floating IPs (none)")
def list_floatingips(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_floatingip")
    return collection(request, "floatingips", [], FLOATINGIP_ATTRS)


@router.get("/floatingips/{floatingip_id}", summary="Show a floating IP")
def show_floatingip(floatingip_id: str, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_floatingip")
    raise NotFoundError(f"Floating IP {floatingip_id} could not be found", kind="FloatingIPNotFound")


@router.get("/routers", summary="List routers (none)")
def list_routers(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_router")
    return collection(request, "routers", [], ROUTER_ATTRS)


@router.get("/routers/{router_id}", summary="Show a router")
def show_router(router_id: str, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_router")
    raise NotFoundError(f"Router {router_id} could not be found", kind="RouterNotFound")
