"""Compute API: flavors, flavor management and extra specs (nova/api/openstack/compute/flavors.py,
flavors_extraspecs.py). Everyone may list and show public flavors; admins see private and disabled ones
(``is_public``), create, delete, describe (2.55) and set extra specs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX, query
from kvmfleet.api.compute.schemas import flavors as schemas
from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.compute.views import flavors as views
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, NotFoundError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import flavors as flavorops

router = APIRouter(prefix=PREFIX, tags=["flavors"])
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

MANAGE = "os_compute_api:os-flavor-manage:%s"
SPECS = "os_compute_api:os-flavor-extra-specs:%s"
policy.register({
    MANAGE % "create": policy.ADMIN, MANAGE % "update": policy.ADMIN, MANAGE % "delete": policy.ADMIN,
    SPECS % "index": policy.PROJECT_READER_OR_ADMIN, SPECS % "show": policy.PROJECT_READER_OR_ADMIN,
    SPECS % "create": policy.ADMIN, SPECS % "update": policy.ADMIN, SPECS % "delete": policy.ADMIN,
})


def _show_specs(ctx: RequestContext) -> bool:
    return ctx.microversion.matches("2.61") and policy.allowed(ctx, SPECS % "index")


def _filters(request: Request, ctx: RequestContext) -> flavorops.FlavorFilters:
    filters = flavorops.FlavorFilters()
    if ctx.is_admin:
        raw = query.single(request, "is_public")
        if raw is not None and raw.strip().lower() == "none":
            filters.is_public = None
        elif raw is not None:
            try:
                filters.is_public = query.boolean(raw, "is_public")
            except BadRequest:
                raise BadRequest(f"Invalid is_public filter [{raw}]") from None
    else:
        filters.is_public, filters.include_disabled = True, False
    for param, attr in (("minRam", "min_memory_mb"), ("minDisk", "min_root_gb")):
        raw = query.single(request, param)
        if raw is not None:
            try:
                setattr(filters, attr, int(raw))
            except ValueError:
                raise BadRequest(f"Invalid {param} filter [{raw}]") from None
    filters.name = query.single(request, "name")
    return filters


def _list(request: Request, ctx: RequestContext) -> tuple[list[Any], int | None]:
    """The page of flavors asked for, and the limit the client gave (for the next link)."""
    query.check(request, schemas.QUERY_PARAMS, strict=ctx.microversion.matches("2.75"))
    sort_key = query.single(request, "sort_key") or "flavorid"
    sort_dir = query.single(request, "sort_dir") or "asc"
    if sort_key not in schemas.VALID_SORT_KEYS or sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid input for query parameters sort_key/sort_dir. Value: {sort_key[:100]}/"
                         f"{sort_dir[:100]}. sort_key must be one of {', '.join(schemas.VALID_SORT_KEYS)}; "
                         "sort_dir asc or desc")
    limit, marker = query.limit_and_marker(request)
    filters = _filters(request, ctx)
    with get_store(request).read() as session:  # flavors have no lazy relationships to render later
        rows = flavorops.page(session, filters, sort_key, sort_dir, limit, marker)
    return rows, query.integer(request, "limit")


_LIST_DOC = query.doc(*schemas.QUERY_PARAMS)


@router.get("/flavors", summary="List flavors", openapi_extra=_LIST_DOC)
def index(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    rows, asked = _list(request, ctx)
    return views.index(request, ctx.microversion, rows, asked)


@router.get("/flavors/detail", summary="List flavors with details", openapi_extra=_LIST_DOC)
def detail(request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    rows, asked = _list(request, ctx)
    return views.detail(request, ctx.microversion, rows, asked, _show_specs(ctx))


@router.get("/flavors/{flavor_id}", summary="Show a flavor")
def show(flavor_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        flavor = flavorops.get(session, flavor_id)
        return {"flavor": views.show(request, ctx.microversion, flavor, _show_specs(ctx))}


@router.post("/flavors", summary="Create a flavor (admin)", openapi_extra=openapi_body(schemas._CREATE_V255))
def create(request: Request, ctx: RequestContext = CTX, body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(MANAGE % "create")
    validate(schemas.create_schema(ctx.microversion), body, t.FORMATS)
    vals = body["flavor"]
    rxtx = vals.get("rxtx_factor")
    if rxtx is not None and float(rxtx) != 1.0:
        raise BadRequest("rxtx_factor: only 1.0 is supported (there is no network QoS to apply it to)")
    kwargs = {
        "ram": schemas.to_int(vals["ram"], "ram", 1), "vcpus": schemas.to_int(vals["vcpus"], "vcpus", 1),
        "disk": schemas.to_int(vals["disk"], "disk"),
        "ephemeral": schemas.to_int(vals.get("OS-FLV-EXT-DATA:ephemeral", 0), "OS-FLV-EXT-DATA:ephemeral"),
        "swap": schemas.to_int(vals.get("swap", 0), "swap"),
        "flavor_id": vals.get("id"), "is_public": t.as_bool(vals.get("os-flavor-access:is_public", True)),
        "description": vals.get("description") if ctx.microversion.matches("2.55") else None,
    }

    def run(session: Any) -> dict[str, Any]:
        flavor = flavorops.create(session, vals["name"], **kwargs)
        return {"flavor": views.show(request, ctx.microversion, flavor, _show_specs(ctx))}

    return get_store(request).run_in_transaction(run)


@router.put("/flavors/{flavor_id}", summary="Update a flavor's description (admin, 2.55)",
            openapi_extra=openapi_body(schemas.UPDATE))
def update(flavor_id: str, request: Request, ctx: RequestContext = CTX,
           body: Any = BODY) -> dict[str, Any]:
    if not ctx.microversion.matches("2.55"):
        raise NotFoundError("The resource could not be found.")
    ctx.authorize(MANAGE % "update")
    validate(schemas.UPDATE, body, t.FORMATS)

    def run(session: Any) -> dict[str, Any]:
        flavor = flavorops.set_description(session, flavor_id, body["flavor"]["description"])
        return {"flavor": views.show(request, ctx.microversion, flavor, _show_specs(ctx))}

    return get_store(request).run_in_transaction(run)


@router.delete("/flavors/{flavor_id}", status_code=202, summary="Delete a flavor (admin)")
def delete(flavor_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize(MANAGE % "delete")
    get_store(request).run_in_transaction(lambda s: flavorops.delete(s, flavor_id))
    return Response(status_code=202)


# -- extra specs ------------------------------------------------------------------------------------


@router.get("/flavors/{flavor_id}/os-extra_specs", summary="List a flavor's extra specs")
def specs_index(flavor_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(SPECS % "index")
    with get_store(request).read() as session:
        specs = flavorops.get(session, flavor_id).extra_specs or {}
        return {"extra_specs": {str(k): str(v) for k, v in specs.items()}}


@router.post("/flavors/{flavor_id}/os-extra_specs", summary="Create or update extra specs (admin)",
             openapi_extra=openapi_body(schemas.EXTRA_SPECS_CREATE))
def specs_create(flavor_id: str, request: Request, ctx: RequestContext = CTX,
                 body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(SPECS % "create")
    validate(schemas.EXTRA_SPECS_CREATE, body, t.FORMATS)
    schemas.check_spec_values(body["extra_specs"])
    get_store(request).run_in_transaction(lambda s: flavorops.set_extra_specs(s, flavor_id, body["extra_specs"]))
    return body


@router.get("/flavors/{flavor_id}/os-extra_specs/{key}", summary="Show an extra spec")
def specs_show(flavor_id: str, key: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    ctx.authorize(SPECS % "show")
    with get_store(request).read() as session:
        return {key: flavorops.extra_spec(session, flavor_id, key)}


@router.put("/flavors/{flavor_id}/os-extra_specs/{key}", summary="Update an extra spec (admin)",
            openapi_extra=openapi_body(schemas.EXTRA_SPEC_UPDATE))
def specs_update(flavor_id: str, key: str, request: Request, ctx: RequestContext = CTX,
                 body: Any = BODY) -> dict[str, Any]:
    ctx.authorize(SPECS % "update")
    validate(schemas.EXTRA_SPEC_UPDATE, body, t.FORMATS)
    schemas.check_spec_values(body)
    if key not in body:
        raise BadRequest("Request body and URI mismatch")
    get_store(request).run_in_transaction(lambda s: flavorops.set_extra_specs(s, flavor_id, body))
    return body


@router.delete("/flavors/{flavor_id}/os-extra_specs/{key}", summary="Delete an extra spec (admin)")
def specs_delete(flavor_id: str, key: str, request: Request, ctx: RequestContext = CTX) -> Response:
    ctx.authorize(SPECS % "delete")
    get_store(request).run_in_transaction(lambda s: flavorops.delete_extra_spec(s, flavor_id, key))
    return Response(status_code=200)

