"""/network/v2.0/ports (read-only): each server's NICs, with the MAC its domain has and the IPv4 address
its host's DHCP lease gave it. A project sees its own servers' ports (admins every project's); another
project's port is a 404. Binding details only for admins, as Neutron's policy has it."""

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
from kvmfleet.network.security_groups import group_id

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)

policy.register({"get_port": policy.PROJECT_READER_OR_ADMIN})

PORT_ATTRS = {"id", "name", "network_id", "tenant_id", "project_id", "mac_address", "admin_state_up", "status",
              "device_id", "device_owner", "fixed_ips", "security_groups", "binding:vnic_type", "description",
              "created_at", "updated_at", "revision_number", "binding:host_id", "binding:vif_type",
              "binding:vif_details", "binding:profile"}


def _scope(request: Request, ctx: RequestContext) -> str | None:
    """Admins see every project's ports (Neutron's admin list); others their project's."""
    return None if ctx.is_admin else ctx.project_id


@router.get("/ports", summary="List ports (filter device_id=<server> for a server's NICs)")
def list_ports(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_port")
    devices = request.query_params.getlist("device_id") or None

    def run(session: Session) -> list[dict[str, Any]]:
        ports = network.list_ports(session, _scope(request, ctx), devices)
        return [views.port(p, group_id(p.project_id), ctx.is_admin) for p in ports]

    return collection(request, "ports", get_store(request).run_in_transaction(run), PORT_ATTRS)


@router.get("/ports/{port_id}", summary="Show a port")
def show_port(port_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_port")

    def run(session: Session) -> dict[str, Any] | None:
        found = [p for p in network.list_ports(session, _scope(request, ctx)) if p.id == port_id]
        return views.port(found[0], group_id(found[0].project_id), ctx.is_admin) if found else None

    body = get_store(request).run_in_transaction(run)
    if body is None:
        raise NotFoundError(f"Port {port_id} could not be found.", kind="PortNotFound")
    return {"port": select_fields(request, body)}
