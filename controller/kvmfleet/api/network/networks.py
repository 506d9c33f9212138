"""/network/v2.0/networks: the provider network ``default`` (each host's libvirt network, shared by every
project, read-only: kvmfleet.network.model) and the tenant networks (kvmfleet.network.tenant), listed
together. A project sees its own, shared and external networks; another project's private network is a
404. Provider attributes, ``shared`` and ``router:external`` only for admins, as Neutron's policy has it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from kvmfleet import network
from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest
from kvmfleet.api.network import PREFIX, views
from kvmfleet.api.network.bodies import project_of, resource
from kvmfleet.api.network.query import collection, select_fields
from kvmfleet.api.validation import json_body
from kvmfleet.network import tenant
from kvmfleet.network.errors import PolicyNotAuthorized, ReadOnly
from kvmfleet.network.model import owner_project

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "get_network": policy.PROJECT_READER_OR_ADMIN,
    "create_network": policy.PROJECT_MEMBER_OR_ADMIN,
    "update_network": policy.PROJECT_MEMBER_OR_ADMIN,
    "delete_network": policy.PROJECT_MEMBER_OR_ADMIN,
})

NETWORK_ATTRS = {"id", "name", "tenant_id", "project_id", "admin_state_up", "status", "subnets", "shared",
                 "router:external", "mtu", "description", "created_at", "updated_at", "revision_number",
                 "provider:network_type", "provider:physical_network", "provider:segmentation_id", "tags",
                 "availability_zones", "availability_zone_hints", "port_security_enabled"}
CREATE = {"name", "description", "admin_state_up", "shared", "router:external", "provider:network_type",
          "provider:physical_network", "provider:segmentation_id", "mtu", "tenant_id", "project_id",
          "port_security_enabled", "availability_zone_hints", "tags"}
UPDATE = {"name", "description", "admin_state_up", "shared", "router:external", "mtu", "port_security_enabled",
          "provider:network_type", "provider:physical_network", "provider:segmentation_id"}


def derived(session: Session, ctx: RequestContext) -> list[dict[str, Any]]:
    owner = owner_project(session)
    return [views.network(n, owner, ctx.is_admin) for n in network.list_networks(session)]


def refuse_derived(session: Session, network_id: str) -> None:
    if any(n.id == network_id for n in network.list_networks(session)):
        raise ReadOnly(tenant.READ_ONLY)


@router.get("/networks", summary="List networks")
def list_networks(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_network")

    def run(session: Session) -> list[dict[str, Any]]:
        rows = [views.tenant_network(n, ctx.is_admin) for n in tenant.list_networks(session, ctx.project_id,
                                                                                    ctx.is_admin)]
        return derived(session, ctx) + rows

    return collection(request, "networks", get_store(request).run_in_transaction(run), NETWORK_ATTRS)


@router.get("/networks/{network_id}", summary="Show a network")
def show_network(network_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_network")

    def run(session: Session) -> dict[str, Any]:
        found = [n for n in derived(session, ctx) if n["id"] == network_id]
        if found:
            return found[0]
        return views.tenant_network(tenant.get_network(session, network_id, ctx.project_id, ctx.is_admin),
                                    ctx.is_admin)

    return {"network": select_fields(request, get_store(request).run_in_transaction(run))}


@router.post("/networks", status_code=201, summary="Create a network")
def create_network(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("create_network")
    data = resource(body, "network", CREATE)
    if data.get("port_security_enabled") is False:
        raise BadRequest("kvmfleet networks have port security; disable it per port (an admin's choice).")

    def run(session: Session) -> dict[str, Any]:
        project = project_of(session, ctx, data)
        net = tenant.create_network(
            session, project, name=data.get("name", ""), description=data.get("description", ""),
            admin_state_up=data.get("admin_state_up", True), shared=data.get("shared", False),
            external=data.get("router:external", False), network_type=data.get("provider:network_type"),
            physical_network=data.get("provider:physical_network"),
            segmentation_id=data.get("provider:segmentation_id"), mtu=data.get("mtu"), admin=ctx.is_admin)
        return views.tenant_network(net, ctx.is_admin)

    return {"network": get_store(request).run_in_transaction(run)}


@router.put("/networks/{network_id}", summary="Update a network")
def update_network(network_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX
                   ) -> dict[str, Any]:
    ctx.authorize("update_network")
    data = resource(body, "network", UPDATE)
    data.pop("port_security_enabled", None)

    def run(session: Session) -> dict[str, Any]:
        refuse_derived(session, network_id)
        net = _owned(session, ctx, network_id)
        return views.tenant_network(tenant.update_network(session, net, data, ctx.is_admin), ctx.is_admin)

    return {"network": get_store(request).run_in_transaction(run)}


@router.delete("/networks/{network_id}", status_code=204, summary="Delete a network")
def delete_network(network_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_network")

    def run(session: Session) -> None:
        refuse_derived(session, network_id)
        tenant.delete_network(session, _owned(session, ctx, network_id))

    get_store(request).run_in_transaction(run)
    return Response(status_code=204)


def _owned(session: Session, ctx: RequestContext, network_id: str) -> Any:
    """A network the caller may change: its project's (any for an admin). A shared one of another project
    is visible but not the caller's: Neutron's 403."""
    net = tenant.get_network(session, network_id, ctx.project_id, ctx.is_admin)
    if not ctx.is_admin and net.project_id != ctx.project_id:
        raise PolicyNotAuthorized("update_network")
    return net
