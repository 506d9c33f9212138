"""/network/v2.0/subnets: the provider network's subnets (as the hosts report them, read-only) and the
tenant networks' IPv4 subnets (kvmfleet.network.tenant), listed together. A subnet is visible with its
network; only the network's owner (or an admin) adds one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from kvmfleet import network
from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.network import PREFIX, views
from kvmfleet.api.network.bodies import no_update, project_of, resource
from kvmfleet.api.network.query import collection, select_fields
from kvmfleet.api.validation import json_body
from kvmfleet.network import tenant
from kvmfleet.network.errors import BadInput, PolicyNotAuthorized, ReadOnly
from kvmfleet.network.model import owner_project

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "get_subnet": policy.PROJECT_READER_OR_ADMIN,
    "create_subnet": policy.PROJECT_MEMBER_OR_ADMIN,
    "update_subnet": policy.PROJECT_MEMBER_OR_ADMIN,
    "delete_subnet": policy.PROJECT_MEMBER_OR_ADMIN,
})

SUBNET_ATTRS = {"id", "name", "tenant_id", "project_id", "network_id", "ip_version", "subnetpool_id", "enable_dhcp",
                "ipv6_ra_mode", "ipv6_address_mode", "gateway_ip", "cidr", "allocation_pools", "host_routes",
                "dns_nameservers", "description", "created_at", "updated_at", "revision_number", "tags"}
CREATE = {"name", "description", "network_id", "ip_version", "cidr", "gateway_ip", "allocation_pools",
          "dns_nameservers", "host_routes", "enable_dhcp", "tenant_id", "project_id", "subnetpool_id",
          "ipv6_ra_mode", "ipv6_address_mode", "prefixlen", "use_default_subnetpool", "tags", "service_types"}
UPDATE = {"name", "description", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes",
          "enable_dhcp", "cidr", "ip_version", "network_id", "subnetpool_id"}


def _derived(session: Session) -> list[dict[str, Any]]:
    owner = owner_project(session)
    return [views.subnet(s, owner) for s in network.list_subnets(session)]


def _refuse_derived(session: Session, subnet_id: str) -> None:
    if any(s.id == subnet_id for s in network.list_subnets(session)):
        raise ReadOnly(tenant.READ_ONLY)


def _owned(session: Session, ctx: RequestContext, subnet_id: str) -> Any:
    sub = tenant.get_subnet(session, subnet_id, ctx.project_id, ctx.is_admin)
    if not ctx.is_admin and sub.project_id != ctx.project_id:
        raise PolicyNotAuthorized("update_subnet")
    return sub


@router.get("/subnets", summary="List subnets")
def list_subnets(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_subnet")

    def run(session: Session) -> list[dict[str, Any]]:
        rows = [views.tenant_subnet(s) for s in tenant.list_subnets(session, ctx.project_id, ctx.is_admin)]
        return _derived(session) + rows

    return collection(request, "subnets", get_store(request).run_in_transaction(run), SUBNET_ATTRS)


@router.get("/subnets/{subnet_id}", summary="Show a subnet")
def show_subnet(subnet_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_subnet")

    def run(session: Session) -> dict[str, Any]:
        found = [s for s in _derived(session) if s["id"] == subnet_id]
        if found:
            return found[0]
        return views.tenant_subnet(tenant.get_subnet(session, subnet_id, ctx.project_id, ctx.is_admin))

    return {"subnet": select_fields(request, get_store(request).run_in_transaction(run))}


@router.post("/subnets", status_code=201, summary="Create a subnet")
def create_subnet(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("create_subnet")
    data = resource(body, "subnet", CREATE)
    for key in ("subnetpool_id", "ipv6_ra_mode", "ipv6_address_mode", "prefixlen", "use_default_subnetpool"):
        if data.pop(key, None) not in (None, False):
            raise BadInput(f"Invalid input for {key}: kvmfleet has no subnet pools and no IPv6 subnets.")
    data.pop("tags", None)
    data.pop("service_types", None)
    gateway: Any = data.get("gateway_ip", tenant.UNSET)

    def run(session: Session) -> dict[str, Any]:
        project = project_of(session, ctx, data)
        sub = tenant.create_subnet(
            session, project, data.get("network_id"), cidr=data.get("cidr"), name=data.get("name", ""),
            description=data.get("description", ""), ip_version=data.get("ip_version", 4), gateway_ip=gateway,
            allocation_pools=data.get("allocation_pools"), dns_nameservers=data.get("dns_nameservers"),
            host_routes=data.get("host_routes"), enable_dhcp=data.get("enable_dhcp", True), admin=ctx.is_admin)
        return views.tenant_subnet(sub)

    return {"subnet": get_store(request).run_in_transaction(run)}


@router.put("/subnets/{subnet_id}", summary="Update a subnet")
def update_subnet(subnet_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("update_subnet")
    data = resource(body, "subnet", UPDATE)
    no_update(data, "cidr", "ip_version", "network_id", "subnetpool_id")

    def run(session: Session) -> dict[str, Any]:
        _refuse_derived(session, subnet_id)
        return views.tenant_subnet(tenant.update_subnet(session, _owned(session, ctx, subnet_id), data))

    return {"subnet": get_store(request).run_in_transaction(run)}


@router.delete("/subnets/{subnet_id}", status_code=204, summary="Delete a subnet")
def delete_subnet(subnet_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_subnet")

    def run(session: Session) -> None:
        _refuse_derived(session, subnet_id)
        tenant.delete_subnet(session, _owned(session, ctx, subnet_id))

    get_store(request).run_in_transaction(run)
    return Response(status_code=204)
