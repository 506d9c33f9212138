"""Compute API: servers (nova/api/openstack/compute/servers.py): list, detail, show, create, update, delete.

Handlers authenticate, validate, authorise, call kvmfleet.compute (queries, server_inputs, server_updates,
tasks) and render kvmfleet.api.compute.views.servers. A create or delete is a persisted task answered
with 202/204 before any host is touched; the service's workers do the work.

A request the scheduler cannot place now is refused at once with 400 badRequest naming the filter, and
nothing is stored (kvmfleet keeps the CLI's behaviour rather than Nova's 202-then-ERROR).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import servers as schemas
from kvmfleet.api.compute.schemas.types import FORMATS, as_bool, int_param, parse_isotime, validate_query
from kvmfleet.api.compute.views.servers import MAX_LIMIT, ServerView, base_url
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, Forbidden
from kvmfleet.api.microversion import MAX
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import queries
from kvmfleet.store.states import VmState

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)

RULE = "os_compute_api:servers:%s"
REQUESTED_DESTINATION = "compute:servers:create:requested_destination"
policy.register({
    RULE % "index": policy.PROJECT_READER_OR_ADMIN,
    RULE % "detail": policy.PROJECT_READER_OR_ADMIN,
    RULE % "index:get_all_tenants": policy.ADMIN,
    RULE % "detail:get_all_tenants": policy.ADMIN,
    RULE % "allow_all_filters": policy.ADMIN,
    RULE % "show": policy.PROJECT_READER_OR_ADMIN,
    RULE % "show:host_status": policy.ADMIN,
    RULE % "create": policy.PROJECT_MEMBER_OR_ADMIN,
    RULE % "create:forced_host": policy.ADMIN,
    REQUESTED_DESTINATION: policy.ADMIN,
    RULE % "create:attach_network": policy.PROJECT_MEMBER_OR_ADMIN,
    RULE % "delete": policy.PROJECT_MEMBER_OR_ADMIN,
    RULE % "update": policy.PROJECT_MEMBER_OR_ADMIN,
})

ADMIN_ONLY_SORT_KEYS = ("host", "node")


def scope(ctx: RequestContext) -> str | None:
    """Where a server is looked up: any project for an admin, the token's project for everyone else."""
    return None if ctx.is_admin else ctx.project_id


def find(session: Any, ctx: RequestContext, server_id: str) -> Any:
    return queries.get_instance(session, server_id, scope(ctx))


# -- list ---------------------------------------------------------------------------------------


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def server_query(ctx: RequestContext, params: dict[str, list[str]], detail: bool) -> queries.ServerQuery:
    """Nova's _get_servers: validate, drop what the caller may not filter on, authorise all_tenants."""
    v = ctx.microversion
    validate_query(schemas.index_query(v), params)
    admin_filters = ctx.is_admin  # allow_all_filters
    opts = dict(params)
    if not admin_filters:
        allowed = set(schemas.allowed_filters(v)) | set(schemas.PAGING_SORTING)
        opts = {k: val for k, val in opts.items() if k in allowed}
    for key in opts:
        if key in schemas.JOINED_TABLE_PARAMS or key.startswith("_"):
            raise BadRequest(f"Invalid filter field: {key}.")
    q = queries.ServerQuery()
    if "status" in opts:
        vm_states, task_states = queries.states_for_statuses(opts["status"])
        if not vm_states:
            if v.matches("2.38"):
                raise BadRequest("Invalid status value")
            q.vm_states, q.task_states = [], None
        else:
            q.vm_states = vm_states
            q.task_states = task_states
    for key, attr in (("changes-since", "changes_since"), ("changes-before", "changes_before")):
        text = _first(opts, key)
        if text is not None:
            try:
                setattr(q, attr, parse_isotime(text))
            except ValueError:
                raise BadRequest(f"Invalid filter field: {key}.") from None
    if q.changes_since and q.changes_before and q.changes_before < q.changes_since:
        raise BadRequest("The value of changes-since must be less than or equal to changes-before.")
    deleted_text = _first(opts, "deleted")
    if deleted_text is not None:
        q.deleted = as_bool(deleted_text)
    elif q.changes_since or q.changes_before:
        q.deleted = None  # recently deleted servers are listed too, as the api-ref says
    if q.vm_states == ["deleted"]:
        if not ctx.is_admin:
            raise Forbidden("Only administrators may list deleted instances")
        q.deleted = True
    all_tenants = "all_tenants" in opts and (_first(opts, "all_tenants") == ""
                                             or strict_bool(_first(opts, "all_tenants")))
    if all_tenants:
        ctx.authorize(RULE % ("detail:get_all_tenants" if detail else "index:get_all_tenants"))
        q.project_id = _first(opts, "project_id") or _first(opts, "tenant_id")
    else:
        q.project_id = ctx.project_id
    q.name = _first(opts, "name") or _first(opts, "display_name")
    q.image = _first(opts, "image") or _first(opts, "image_ref")
    q.flavor = _first(opts, "flavor")
    q.reservation_id = _first(opts, "reservation_id")
    q.ip, q.ip6 = _first(opts, "ip"), _first(opts, "ip6")
    if v.matches("2.73") and "locked" in opts:
        q.locked = strict_bool(_first(opts, "locked"))
    if v.matches("2.26"):
        q.tags = [t for key in ("tags", "tags-any") for t in (_first(opts, key) or "").split(",") if t] or None
    if admin_filters:
        q.host, q.node = _first(opts, "host"), _first(opts, "node")
        q.user_id, q.uuid = _first(opts, "user_id"), _first(opts, "uuid")
        q.availability_zone, q.key_name = _first(opts, "availability_zone"), _first(opts, "key_name")
        if "vm_state" in opts and q.vm_states is None:
            known = {state.value for state in VmState}
            q.vm_states = [s for s in opts["vm_state"] if s in known]  # an unknown state matches nothing
            if opts["vm_state"] == ["deleted"]:
                q.deleted = True
    q.limit, q.marker = _paging(params)
    q.sort_keys, q.sort_dirs = _sorting(ctx, params)
    return q


_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


def strict_bool(text: str | None) -> bool:
    """oslo's bool_from_string(strict=True): 400 for anything but the usual words."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"Unrecognized value '{text}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', "
                     "'off', 'on', 't', 'true', 'y', 'yes'")


def _paging(params: dict[str, list[str]]) -> tuple[int, str | None]:
    limit = MAX_LIMIT
    text = _first(params, "limit")
    if text is not None:
        limit = min(MAX_LIMIT, int_param(text, "limit", minimum=0))
    return limit, _first(params, "marker")


def _sorting(ctx: RequestContext, params: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    keys = [k.strip() for k in params.get("sort_key", [])] or ["created_at"]
    dirs = [d.strip() for d in params.get("sort_dir", [])] or ["desc"]
    ignored = schemas.ignored_sort_keys(ctx.microversion)
    out_keys, out_dirs = [], []
    for i, key in enumerate(keys):
        if key in ignored:
            continue
        if key in ADMIN_ONLY_SORT_KEYS and not ctx.is_admin:
            raise Forbidden(f"Only administrators can sort servers by {key}")
        out_keys.append(key)
        if i < len(dirs):
            out_dirs.append(dirs[i])
    for d in out_dirs:
        if d.lower() not in ("asc", "desc"):
            raise BadRequest(f"Unknown sort direction, must be 'desc' or 'asc': {d}")
    return out_keys or ["created_at"], out_dirs or ["desc"]


def _list(request: Request, ctx: RequestContext, detail: bool) -> Response:
    ctx.authorize(RULE % ("detail" if detail else "index"))
    params = _params(request)
    q = server_query(ctx, params, detail)
    pairs = list(request.query_params.multi_items())
    store, cache = get_store(request), request.app.state.page_cache
    with store.read() as session:
        # The same page for the same asker is served from the cache while the store is unchanged
        # (kvmfleet.api.page_cache): everything the rendering reads from the request is in the key.
        before = store.fingerprint(session) if cache else None
        key = None
        if before is not None:
            key = (before, detail, ctx.project_id, ctx.roles, str(ctx.microversion), base_url(request),
                   tuple(sorted(pairs)))
            body = cache.get(key)
            if body is not None:
                return Response(body, media_type="application/json")
        if q.vm_states == []:
            instances: list[Any] = []  # an unknown status (before 2.38) or vm_state matches nothing
        else:
            instances = queries.list_instances(session, q)
        view = ServerView(request, ctx, queries.related(session, instances) if detail else queries.Related())
        page = view.detail(instances, pairs, q.limit) if detail else view.index(instances, pairs, q.limit)
        body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if key is not None and store.fingerprint(session) == before:
            cache.put(key, body)
    return Response(body, media_type="application/json")


def _query_doc(*names: str) -> dict[str, Any]:
    """Document the common list filters in the served OpenAPI document (so they are fuzzed too)."""
    return {"parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                           for n in names]}


LIST_DOC = _query_doc("name", "status", "image", "flavor", "host", "ip", "changes-since", "changes-before",
                      "all_tenants", "project_id", "reservation_id", "locked", "tags", "vm_state", "deleted",
                      "limit", "marker", "sort_key", "sort_dir")


@router.get("/servers", openapi_extra=LIST_DOC)
def list_servers(request: Request, ctx: RequestContext = CTX) -> Response:
    return _list(request, ctx, detail=False)


@router.get("/servers/detail", openapi_extra=LIST_DOC)
def list_servers_detail(request: Request, ctx: RequestContext = CTX) -> Response:
    return _list(request, ctx, detail=True)


@router.get("/servers/{server_id}")
def show_server(server_id: str, request: Request, ctx: RequestContext = CTX) -> dict[str, Any]:
    with get_store(request).read() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "show")
        return ServerView(request, ctx, queries.related(session, [inst])).show(inst)


# -- create -------------------------------------------------------------------------------------

_UNSUPPORTED = {
    "personality": "Injected files (personality) are not supported.",
    "accessIPv4": "accessIPv4 is not supported: addresses come from the network's DHCP service.",
    "accessIPv6": "accessIPv6 is not supported: addresses come from the network's DHCP service.",
    "tags": "Server tags are not supported.",
    "trusted_image_certificates": "Trusted image certificates are not supported.",
    "block_device_mapping": "Block device mappings are not supported: servers boot from their image.",
    "hypervisor_hostname": "hypervisor_hostname is not supported: request a host with 'host'.",
}


def _check_supported(server: dict[str, Any]) -> None:
    for key, message in _UNSUPPORTED.items():
        if server.get(key) not in (None, [], ""):
            raise BadRequest(message)
    if server.get("OS-DCF:diskConfig") == "AUTO":
        raise BadRequest("OS-DCF:diskConfig AUTO is not supported: disks are presented as the image made them.")
    if boot_volume(server) is not None:
        return
    bdms = server.get("block_device_mapping_v2") or []
    image_ref = server.get("imageRef") or ""
    for bdm in bdms:
        plain = (bdm.get("source_type") == "image" and bdm.get("destination_type", "local") == "local"
                 and str(bdm.get("boot_index")) == "0" and (bdm.get("uuid") or bdm.get("image_id")) == image_ref
                 and not set(bdm) - {"source_type", "destination_type", "boot_index", "uuid", "image_id",
                                     "delete_on_termination", "device_name", "disk_bus", "device_type"})
        if not plain or len(bdms) > 1:
            raise BadRequest("Block device mappings other than booting the local disk from imageRef, or from a "
                             "new volume made from an image (source_type image, destination_type volume, "
                             "boot_index 0), are not supported.")
    if not image_ref:
        raise BadRequest("Missing imageRef attribute")


_BFV_KEYS = {"source_type", "destination_type", "boot_index", "uuid", "volume_size", "delete_on_termination",
             "device_name", "disk_bus", "device_type", "volume_type", "tag"}


def boot_volume(server: dict[str, Any]) -> dict[str, Any] | None:
    """Boot from a new volume (`openstack server create --boot-from-volume SIZE`): the one mapping
    source_type image -> destination_type volume at boot_index 0. {image, size, delete_on_termination,
    volume_type} or None."""
    bdms = server.get("block_device_mapping_v2") or []
    if len(bdms) != 1:
        return None
    bdm = bdms[0]
    if not (bdm.get("source_type") == "image" and bdm.get("destination_type") == "volume"
            and str(bdm.get("boot_index")) == "0"):
        return None
    if set(bdm) - _BFV_KEYS:
        raise BadRequest(f"Block device mapping keys {', '.join(sorted(set(bdm) - _BFV_KEYS))} are not supported.")
    if bdm.get("disk_bus", "virtio") != "virtio" or bdm.get("device_type", "disk") != "disk":
        raise BadRequest("A boot volume is a virtio disk.")
    image = bdm.get("uuid")
    if not image or (server.get("imageRef") and server["imageRef"] != image):
        raise BadRequest("Boot from volume: the mapping's uuid names the image (and imageRef, if given, is the same)")
    if bdm.get("volume_size") in (None, ""):
        raise BadRequest("Boot from volume: volume_size is required for a volume made from an image")
    return {"image": image, "size": bdm["volume_size"], "delete_on_termination": bool(bdm.get("delete_on_termination")),
            "volume_type": bdm.get("volume_type")}


def _create_request(session: Any, ctx: RequestContext, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The CreateRequest for a validated POST /servers body, every reference resolved (400s as Nova)."""
    from kvmfleet.compute import server_inputs as inputs
    from kvmfleet.compute.create import CreateRequest, new_reservation_id

    v = ctx.microversion
    server = body["server"]
    min_count = int_param(server.get("min_count", 1), "min_count", minimum=1)
    max_count = int_param(server.get("max_count", min_count), "max_count", minimum=1)
    if min_count > max_count:
        raise BadRequest("min_count must be <= max_count")
    zone_text = server.get("availability_zone")
    zone, host = inputs.parse_availability_zone(session, zone_text)
    if host:
        ctx.authorize(RULE % "create:forced_host")
    if v.matches("2.74") and server.get("host"):
        ctx.authorize(REQUESTED_DESTINATION)
        if host:
            raise BadRequest("One mechanism with host and/or hypervisor_hostname and another mechanism with "
                             "zone:host:node are mutually exclusive.")
        _, host = inputs.parse_availability_zone(session, f":{server['host']}")
    flavor = inputs.resolve_flavor(session, server["flavorRef"])
    bfv = boot_volume(server)
    image = inputs.resolve_image(session, bfv["image"] if bfv else server["imageRef"], ctx.project_id, ctx.is_admin)
    networks = inputs.resolve_networks(session, server.get("networks"), ctx.project_id, ctx.is_admin)
    hints = body.get("os:scheduler_hints") or body.get("OS-SCH-HNT:scheduler_hints") or {}
    group = inputs.resolve_group(session, hints.get("group"), ctx.project_id)
    security_groups = inputs.check_security_groups(session, server.get("security_groups"), ctx.project_id)
    description = server.get("description") if v.matches("2.19") else server["name"]
    req = CreateRequest(
        name=server["name"], flavor=flavor.id, image=image.id, project=ctx.project_id,
        server_group=group.id if group else None, count=max_count, min_count=min_count,
        availability_zone=zone, requested_host=host, user_data=inputs.decode_user_data(server.get("user_data")),
        networks=networks, metadata=dict(server.get("metadata") or {}), description=description,
        key_name=server.get("key_name"), reservation_id=new_reservation_id(), user_id=ctx.user_id,
        request_id=ctx.request_id, admin=ctx.is_admin, security_groups=security_groups,
        boot_volume={k: bfv[k] for k in ("size", "delete_on_termination", "volume_type")} if bfv else None)
    return req, server


@router.post("/servers", status_code=202,
             openapi_extra=openapi_body(schemas.create_schema(MAX)))
def create_server(request: Request, body: Any = BODY,
                  ctx: RequestContext = CTX) -> Any:
    from kvmfleet.compute import tasks

    v = ctx.microversion
    validate(schemas.create_schema(v), body, FORMATS)
    ctx.authorize(RULE % "create")
    _check_supported(body["server"])
    store = get_store(request)
    with store.read() as session:  # references resolved without the write lock; the task commits below
        req, server = _create_request(session, ctx, body)
    uuids = tasks.submit_create(store, req)
    if as_bool(server.get("return_reservation_id", False)):
        return JSONResponse({"reservation_id": req.reservation_id}, status_code=202)
    view = ServerView(request, ctx, queries.Related())
    out = view.create(uuids[0], server.get("security_groups"))
    return JSONResponse(out, status_code=202, headers={"Location": out["server"]["links"][0]["href"]})


# -- update, delete -------------------------------------------------------------------------------


@router.put("/servers/{server_id}",
            openapi_extra=openapi_body(schemas.update_schema(MAX)))
def update_server(server_id: str, request: Request, body: Any = BODY,
                  ctx: RequestContext = CTX) -> dict[str, Any]:
    from kvmfleet.compute import server_updates

    validate(schemas.update_schema(ctx.microversion), body, FORMATS)
    server = body["server"]
    for key in ("accessIPv4", "accessIPv6"):
        if key in server:
            raise BadRequest(_UNSUPPORTED[key])
    if server.get("OS-DCF:diskConfig") == "AUTO":
        raise BadRequest("OS-DCF:diskConfig AUTO is not supported: disks are presented as the image made them.")
    with get_store(request).transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "update")
        inst = server_updates.update_server(session, inst, name=server.get("name"),
                                            description=server.get("description", ...))
        return ServerView(request, ctx, queries.related(session, [inst])).update(inst)


@router.delete("/servers/{server_id}", status_code=204)
def delete_server(server_id: str, request: Request, ctx: RequestContext = CTX) -> Response:
    from kvmfleet.compute import tasks

    store = get_store(request)
    with store.transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(RULE % "delete")
        project_id = inst.project_id
    tasks.submit(store, "delete", server_id, project_id=project_id, user_id=ctx.user_id,
                 request_id=ctx.request_id)
    return Response(status_code=204)
