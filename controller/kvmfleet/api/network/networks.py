"""/network/v2.0/networks and /subnets (read-only): the hosts' libvirt networks, shared by every project
(see kvmfleet.network.model). Provider attributes only for admins, as Neutron's policy has it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from kvmfleet import network
from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.network import PREFIX, views
from kvmfleet.api.network.query import collection, select_fields
from kvmfleet.network.model import owner_project

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({
    "get_network": policy.PROJECT_READER_OR_ADMIN,
    "get_subnet": policy.PROJECT_READER_OR_ADMIN,
})

NETWORK_ATTRS = {"id", "name", "tenant_id", "project_id", "admin_state_up", "status", "subnets", "shared",
                 "router:external", "mtu", "description", "created_at", "updated_at", "revision_number",
                 "provider:network_type", "provider:physical_network", "provider:segmentation_id"}
SUBNET_ATTRS = {"id", "name", "tenant_id", "project_id", "network_id", "ip_version", "subnetpool_id", "enable_dhcp",
                "ipv6_ra_mode", "ipv6_address_mode", "gateway_ip", "cidr", "allocation_pools", "host_routes",
                "dns_nameservers", "description", "created_at", "updated_at", "revision_number"}


@router.get("/networks", summary="List networks")
def list_networks(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_network")

    def run(session: Session) -> list[dict[str, Any]]:
        owner = owner_project(session)
        return [views.network(n, owner, ctx.is_admin) for n in network.list_networks(session)]

    return collection(request, "networks", get_store(request).run_in_transaction(run), NETWORK_ATTRS)


@router.get("/networks/{network_id}", summary="Show a network")
def show_network(network_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_network")

    def run(session: Session) -> dict[str, Any] | None:
        found = [n for n in network.list_networks(session) if n.id == network_id]
        return views.network(found[0], owner_project(session), ctx.is_admin) if found else None

    body = get_store(request).run_in_transaction(run)
    if body is None:
        raise NotFoundError(f"Network {network_id} could not be found.", kind="NetworkNotFound")
    return {"network": select_fields(request, body)}


@router.get("/subnets", summary="List subnets")
def list_subnets(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_subnet")

    def run(session: Session) -> list[dict[str, Any]]:
        owner = owner_project(session)
        return [views.subnet(s, owner) for s in network.list_subnets(session)]

    return collection(request, "subnets", get_store(request).run_in_transaction(run), SUBNET_ATTRS)


@router.get("/subnets/{subnet_id}", summary="Show a subnet")
def show_subnet(subnet_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_subnet")

    def run(session: Session) -> dict[str, Any] | None:
        found = [s for s in network.list_subnets(session) if s.id == subnet_id]
        return views.subnet(found[0], owner_project(session)) if found else None

    body = get_store(request).run_in_transaction(run)
    if body is None:
        raise NotFoundError(f"Subnet {subnet_id} could not be found.", kind="SubnetNotFound")
    return {"subnet": select_fields(request, body)}
