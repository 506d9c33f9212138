"""Compute API: os-hypervisors (nova/api/openstack/compute/hypervisors.py), admins only. Each compute host is
one hypervisor (compute node) whose figures come from its last host_facts and its allocations. Paging from
2.33; from 2.53 uuid ids, ``hypervisor_hostname_pattern`` and ``with_servers`` replace the search and
servers routes. ``/uptime`` asks the host for its ``uptime`` line (one short job), as Nova asks its
compute service."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from fastapi import APIRouter, Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.views import services as views
from kvmfleet.api.compute.views.links import collection_links
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.compute import services as svc
from kvmfleet.store.models import utcnow

router = APIRouter(prefix=PREFIX, tags=["hypervisors"])
CTX = Depends(context)  # the dependency, once (ruff B008)

RULE = "os_compute_api:os-hypervisors:%s"
policy.register({RULE % name: policy.ADMIN
                 for name in ("list", "list-detail", "statistics", "show", "uptime", "search", "servers")})
LIST_PARAMS_V253 = ("limit", "marker", "hypervisor_hostname_pattern", "with_servers")


def _list(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    v = ctx.microversion
    ctx.authorize(RULE % ("list-detail" if detail else "list"))
    if v.matches("2.53"):
        query.check(request, LIST_PARAMS_V253, strict=True)
    pattern = query.single(request, "hypervisor_hostname_pattern") if v.matches("2.53") else None
    with_servers = query.boolean(query.single(request, "with_servers"), "with_servers") if v.matches("2.53") else False
    paging = v.matches("2.33")
    limit = marker = None
    if paging:
        limit, marker = query.limit_and_marker(request)
    if pattern is not None and ("limit" in request.query_params or marker):
        raise BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not "
                         "supported.")
    now = utcnow()
    with get_store(request).read() as session:
        if pattern is not None:
            hosts = svc.search_nodes(session, pattern)
        else:
            hosts = svc.page_nodes(session, limit, marker, by_uuid=v.matches("2.53"))
        items = [views.hypervisor(v, h, now, detail=detail, stats=svc.node_stats(session, h) if detail else None,
                                  servers=svc.servers_on(session, h) if with_servers else None) for h in hosts]
    if with_servers and not v.matches("2.75"):
        for item in items:  # before 2.75 a host without servers has no 'servers' key
            if not item["servers"]:
                del item["servers"]
    out: dict[str, Any] = {"hypervisors": items}
    if paging and pattern is None:
        links = collection_links(request, "os-hypervisors/detail" if detail else "os-hypervisors", items, "id",
                                 query.integer(request, "limit"))
        if links:
            out["hypervisors_links"] = links
    return out


@router.get("/os-hypervisors", summary="List hypervisors (admin)", openapi_extra=query.doc(*LIST_PARAMS_V253))
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    return _list(request, ctx, detail=False)


@router.get("/os-hypervisors/detail", summary="List hypervisors with details (admin)",
            openapi_extra=query.doc(*LIST_PARAMS_V253))
def detail(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    return _list(request, ctx, detail=True)


@router.get("/os-hypervisors/statistics", summary="Show hypervisor statistics (admin, until 2.87)")
def statistics(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "statistics")
    with get_store(request).read() as session:
        return {"hypervisor_statistics": svc.statistics(session)}


def _checked_id(ctx: RequestContext, hypervisor_id: str) -> bool:
    """Nova's _validate_id: a uuid from 2.53 (else 400), an integer before (else 404)."""
    if ctx.microversion.matches("2.53"):
        try:
            uuidlib.UUID(hypervisor_id)
        except ValueError:
            raise BadRequest(f"Invalid uuid {hypervisor_id}") from None
        return True
    if not hypervisor_id.isdigit():
        raise NotFoundError(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
    return False


@router.get("/os-hypervisors/{hypervisor_id}", summary="Show a hypervisor (admin)", openapi_extra=query.doc("with_servers"))
def show(hypervisor_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "show")
    v = ctx.microversion
    if v.matches("2.53"):
        query.check(request, ("with_servers",), strict=True)
    with_servers = query.boolean(query.single(request, "with_servers"), "with_servers") if v.matches("2.53") else False
    by_uuid = _checked_id(ctx, hypervisor_id)
    with get_store(request).read() as session:
        host = svc.get_node(session, hypervisor_id, by_uuid)
        servers = svc.servers_on(session, host) if with_servers else None
        if servers is not None and not servers and not v.matches("2.75"):
            servers = None
        return {"hypervisor": views.hypervisor(v, host, utcnow(), detail=True, stats=svc.node_stats(session, host),
                                               servers=servers)}


@router.get("/os-hypervisors/{hypervisor_id}/uptime", summary="Show a hypervisor's uptime (admin, until 2.87)")
def uptime(hypervisor_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(RULE % "uptime")
    by_uuid = _checked_id(ctx, hypervisor_id)
    store = get_store(request)
    with store.transaction() as session:
        host = svc.get_node(session, hypervisor_id, by_uuid)
        view = views.hypervisor(ctx.microversion, host, utcnow(), detail=False, stats=None)
        name = host.name
    view["uptime"] = svc.uptime(store, name)  # asks the host (one short job), as Nova asks its compute
    return {"hypervisor": view}


def _legacy(request: Request, ctx: RequestContext, pattern: str, rule: str, servers: bool) -> dict[str, Any]:
    if ctx.microversion.matches("2.53"):
        raise NotFoundError("The resource could not be found.")
    ctx.authorize(RULE % rule)
    now = utcnow()
    with get_store(request).transaction() as session:
        hosts = svc.search_nodes(session, pattern)
        items = []
        for h in hosts:
            item = views.hypervisor(ctx.microversion, h, now, detail=False, stats=None,
                                    servers=svc.servers_on(session, h) if servers else None)
            if servers and not item["servers"]:
                del item["servers"]
            items.append(item)
    return {"hypervisors": items}


@router.get("/os-hypervisors/{pattern}/search", summary="Search hypervisors by name (admin, until 2.52)")
def search(pattern: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    return _legacy(request, ctx, pattern, "search", servers=False)


@router.get("/os-hypervisors/{pattern}/servers", summary="Servers of matching hypervisors (admin, until 2.52)")
def servers(pattern: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    return _legacy(request, ctx, pattern, "servers", servers=True)
