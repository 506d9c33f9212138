"""/network/v2.0/ports: the NICs of servers on the provider network ``default`` (the MAC its domain has and
the IPv4 address its host's DHCP lease gave it; read-only: kvmfleet.network.model) and the tenant ports
(kvmfleet.network.tenant), listed together. A project sees its own ports (admins every project's);
another project's port is a 404. Binding details only for admins, as Neutron's policy has it."""

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
from kvmfleet.network.security_groups import group_id

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

policy.register({
    "get_port": policy.PROJECT_READER_OR_ADMIN,
    "create_port": policy.PROJECT_MEMBER_OR_ADMIN,
    "update_port": policy.PROJECT_MEMBER_OR_ADMIN,
    "delete_port": policy.PROJECT_MEMBER_OR_ADMIN,
})

PORT_ATTRS = {"id", "name", "network_id", "tenant_id", "project_id", "mac_address", "admin_state_up", "status",
              "device_id", "device_owner", "fixed_ips", "security_groups", "binding:vnic_type", "description",
              "created_at", "updated_at", "revision_number", "binding:host_id", "binding:vif_type",
              "binding:vif_details", "binding:profile", "port_security_enabled", "allowed_address_pairs",
              "extra_dhcp_opts", "tags"}
CREATE = {"name", "description", "network_id", "mac_address", "fixed_ips", "security_groups",
          "port_security_enabled", "admin_state_up", "device_id", "device_owner", "tenant_id", "project_id",
          "binding:host_id", "binding:vnic_type", "binding:profile", "allowed_address_pairs", "extra_dhcp_opts",
          "tags", "dns_name"}
UPDATE = {"name", "description", "security_groups", "port_security_enabled", "admin_state_up", "fixed_ips",
          "device_id", "device_owner", "binding:host_id", "binding:vnic_type", "binding:profile", "mac_address",
          "network_id", "allowed_address_pairs", "extra_dhcp_opts"}


def _scope(ctx: RequestContext) -> str | None:
    """Admins see every project's ports (Neutron's admin list); others their project's."""
    return None if ctx.is_admin else ctx.project_id


def _unsupported(data: dict[str, Any]) -> None:
    if data.pop("binding:vnic_type", "normal") != "normal":
        raise BadInput("Invalid input for binding:vnic_type: kvmfleet ports are 'normal' only.")
    for key in ("binding:profile", "allowed_address_pairs", "extra_dhcp_opts"):
        if data.pop(key, None):
            raise BadInput(f"Invalid input for {key}: kvmfleet does not support it (it must be empty).")
    data.pop("tags", None)
    data.pop("dns_name", None)


def _derived(session: Session, ctx: RequestContext, devices: list[str] | None = None) -> list[dict[str, Any]]:
    ports = network.list_ports(session, _scope(ctx), devices)
    return [views.port(p, group_id(p.project_id), ctx.is_admin) for p in ports]


def _refuse_derived(session: Session, ctx: RequestContext, port_id: str) -> None:
    if any(p["id"] == port_id for p in _derived(session, ctx)):
        raise ReadOnly(tenant.READ_ONLY)


@router.get("/ports", summary="List ports (filter device_id=<server> for a server's NICs)")
def list_ports(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_port")
    devices = request.query_params.getlist("device_id") or None

    def run(session: Session) -> list[dict[str, Any]]:
        rows = [views.tenant_port(p, ctx.is_admin) for p in tenant.list_ports(session, ctx.project_id, ctx.is_admin)]
        return _derived(session, ctx, devices) + rows

    return collection(request, "ports", get_store(request).run_in_transaction(run), PORT_ATTRS)


@router.get("/ports/{port_id}", summary="Show a port")
def show_port(port_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("get_port")

    def run(session: Session) -> dict[str, Any]:
        found = [p for p in _derived(session, ctx) if p["id"] == port_id]
        if found:
            return found[0]
        return views.tenant_port(tenant.get_port(session, port_id, ctx.project_id, ctx.is_admin), ctx.is_admin)

    return {"port": select_fields(request, get_store(request).run_in_transaction(run))}


@router.post("/ports", status_code=201, summary="Create a port")
def create_port(request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("create_port")
    data = resource(body, "port", CREATE)
    _unsupported(data)
    host = data.pop("binding:host_id", None)
    if host is not None and not isinstance(host, str):
        raise BadInput(f"Invalid input for binding:host_id. Reason: '{host}' is not a valid string.")
    if host and not ctx.is_admin:
        raise PolicyNotAuthorized("create_port:binding:host_id")

    def run(session: Session) -> dict[str, Any]:
        project = project_of(session, ctx, data)
        port = tenant.create_port(
            session, project, data.get("network_id"), name=data.get("name", ""), fixed_ips=data.get("fixed_ips"),
            mac_address=data.get("mac_address"), security_groups=data.get("security_groups"),
            port_security_enabled=data.get("port_security_enabled"), admin=ctx.is_admin,
            device_id=data.get("device_id", ""), device_owner=data.get("device_owner", ""),
            description=data.get("description", ""), admin_state_up=data.get("admin_state_up", True),
            binding_host=host or None)
        return views.tenant_port(port, ctx.is_admin)

    return {"port": get_store(request).run_in_transaction(run)}


@router.put("/ports/{port_id}", summary="Update a port")
def update_port(port_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize("update_port")
    data = resource(body, "port", UPDATE)
    _unsupported(data)
    no_update(data, "mac_address", "network_id")

    def run(session: Session) -> dict[str, Any]:
        _refuse_derived(session, ctx, port_id)
        port = tenant.get_port(session, port_id, ctx.project_id, ctx.is_admin)
        return views.tenant_port(tenant.update_port(session, port, data, ctx.is_admin), ctx.is_admin)

    return {"port": get_store(request).run_in_transaction(run)}


@router.delete("/ports/{port_id}", status_code=204, summary="Delete a port")
def delete_port(port_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize("delete_port")

    def run(session: Session) -> None:
        _refuse_derived(session, ctx, port_id)
        tenant.delete_port(session, tenant.get_port(session, port_id, ctx.project_id, ctx.is_admin))

    get_store(request).run_in_transaction(run)
    return Response(status_code=204)
