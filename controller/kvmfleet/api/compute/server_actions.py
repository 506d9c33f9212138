"""Compute API: POST /servers/{id}/action (servers.py actions, pause_server, suspend_server, console_output,
admin_actions' os-resetState, migrate_server's migrate and os-migrateLive, evacuate).

Each action is validated against its schema, authorised by Nova's rule, and submitted as a persisted task
(kvmfleet.compute.tasks.submit): 202 (confirmResize: 204) once it is committed. A state the action does
not accept is 409 conflictingRequest with Nova's message; an unknown action is 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import migrate_server as migrate_schemas
from kvmfleet.api.compute.schemas import remote_consoles as console_schemas
from kvmfleet.api.compute.schemas import servers as schemas
from kvmfleet.api.compute.schemas.types import FORMATS, as_bool, int_param
from kvmfleet.api.compute.servers import find
from kvmfleet.api.compute.views.servers import ServerView
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import BadRequest, ConflictError
from kvmfleet.api.validation import json_body, openapi_body, validate
from kvmfleet.compute import queries
from kvmfleet.compute.errors import InvalidInstanceState

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

SERVERS = "os_compute_api:servers:%s"
PAUSE = "os_compute_api:os-pause-server:%s"
SUSPEND = "os_compute_api:os-suspend-server:%s"
CONSOLE_OUTPUT = "os_compute_api:os-console-output"
RESET_STATE = "os_compute_api:os-admin-actions:reset_state"
MIGRATE = "os_compute_api:os-migrate-server:%s"
EVACUATE = "os_compute_api:os-evacuate"
policy.register({
    SERVERS % "start": policy.PROJECT_MEMBER_OR_ADMIN, SERVERS % "stop": policy.PROJECT_MEMBER_OR_ADMIN,
    SERVERS % "reboot": policy.PROJECT_MEMBER_OR_ADMIN, SERVERS % "resize": policy.PROJECT_MEMBER_OR_ADMIN,
    SERVERS % "confirm_resize": policy.PROJECT_MEMBER_OR_ADMIN,
    SERVERS % "revert_resize": policy.PROJECT_MEMBER_OR_ADMIN, SERVERS % "rebuild": policy.PROJECT_MEMBER_OR_ADMIN,
    PAUSE % "pause": policy.PROJECT_MEMBER_OR_ADMIN, PAUSE % "unpause": policy.PROJECT_MEMBER_OR_ADMIN,
    SUSPEND % "suspend": policy.PROJECT_MEMBER_OR_ADMIN, SUSPEND % "resume": policy.PROJECT_MEMBER_OR_ADMIN,
    CONSOLE_OUTPUT: policy.PROJECT_MEMBER_OR_ADMIN,
    RESET_STATE: policy.ADMIN,
    MIGRATE % "migrate": policy.ADMIN, MIGRATE % "migrate:host": policy.ADMIN,
    MIGRATE % "migrate_live": policy.ADMIN, MIGRATE % "migrate_live:host": policy.ADMIN,
    EVACUATE: policy.ADMIN,
})

# body key -> (task operation, policy rule, success status)
SIMPLE = {
    "os-start": ("start", SERVERS % "start", 202),
    "os-stop": ("stop", SERVERS % "stop", 202),
    "pause": ("pause", PAUSE % "pause", 202),
    "unpause": ("unpause", PAUSE % "unpause", 202),
    "suspend": ("suspend", SUSPEND % "suspend", 202),
    "resume": ("resume", SUSPEND % "resume", 202),
    "confirmResize": ("confirmResize", SERVERS % "confirm_resize", 204),
    "revertResize": ("revertResize", SERVERS % "revert_resize", 202),
}
NOVA_ACTION = {"os-start": "start", "os-stop": "stop"}  # the action Nova names in its 409 message


def conflict(exc: InvalidInstanceState, action: str, server_id: str) -> ConflictError:
    """Nova's raise_http_conflict_for_instance_invalid_state message."""
    details = getattr(exc, "details", {}) or {}
    task = details.get("task_state")
    attr, state = ("task_state", task) if task else ("vm_state", details.get("vm_state"))
    if state:
        return ConflictError(f"Cannot '{action}' instance {server_id} while it is in {attr} {state}")
    return ConflictError(f"Instance {server_id} is in an invalid state for '{action}'")


def submit(request: Request, ctx: RequestContext, server_id: str, op: str, rule: str, action: str,
           **params: Any) -> str:
    from kvmfleet.compute import tasks

    store = get_store(request)
    with store.transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(rule)
        project_id = inst.project_id
    try:
        return tasks.submit(store, op, server_id, project_id=project_id, user_id=ctx.user_id,
                            request_id=ctx.request_id, **params)
    except InvalidInstanceState as exc:
        raise conflict(exc, action, server_id) from exc


def _console_output(request: Request, ctx: RequestContext, server_id: str, body: dict[str, Any]) -> Any:
    from kvmfleet.compute import api as compute_api

    validate(schemas.CONSOLE_OUTPUT, body, FORMATS)
    length = body["os-getConsoleOutput"].get("length")
    lines = None if length is None else int_param(length, "length", minimum=-1)
    with get_store(request).transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(CONSOLE_OUTPUT)
        project_id = inst.project_id
    output = compute_api.console_log(get_store(request), server_id, lines=lines if lines and lines > 0 else 100000,
                                     project=project_id)
    if lines == 0:
        output = ""
    # as Nova: control characters other than tab and newline are removed
    output = "".join(c for c in output if c in "\t\n" or not (0 <= ord(c) < 32))
    return JSONResponse({"output": output})


def _rebuild(request: Request, ctx: RequestContext, server_id: str, body: dict[str, Any]) -> Any:
    from kvmfleet.compute import server_inputs, server_updates
    from kvmfleet.compute.states import OPERATIONS

    v = ctx.microversion
    validate(schemas.rebuild_schema(v), body, FORMATS)
    rebuild = body["rebuild"]
    for key in ("personality", "accessIPv4", "accessIPv6"):
        if rebuild.get(key) not in (None, []):
            raise BadRequest(f"{key} is not supported on rebuild.")
    if rebuild.get("trusted_image_certificates"):
        raise BadRequest("Trusted image certificates are not supported.")
    if rebuild.get("OS-DCF:diskConfig") == "AUTO":
        raise BadRequest("OS-DCF:diskConfig AUTO is not supported: disks are presented as the image made them.")
    store = get_store(request)
    with store.transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(SERVERS % "rebuild")
        image = server_inputs.resolve_image(session, rebuild["imageRef"], ctx.project_id, ctx.is_admin,
                                            message="Cannot find image for rebuild")
        try:
            OPERATIONS["rebuild"].check(inst.vm_state, inst.task_state, inst.name)
        except InvalidInstanceState as exc:
            raise conflict(exc, "rebuild", server_id) from exc
        fields: dict[str, Any] = {}
        for key in ("name", "description", "metadata"):
            if key in rebuild and (key != "description" or v.matches("2.19")):
                fields[key] = rebuild[key]
        if v.matches("2.54") and "key_name" in rebuild:
            fields["key_name"] = rebuild["key_name"]
        if v.matches("2.57") and "user_data" in rebuild:
            fields["user_data"] = server_inputs.decode_user_data(rebuild["user_data"])
        server_updates.rebuild_fields(session, inst, ctx.user_id, **fields)
    submit(request, ctx, server_id, "rebuild", SERVERS % "rebuild", "rebuild", image=image.id)
    with store.transaction() as session:
        inst = queries.get_instance(session, server_id)
        out = ServerView(request, ctx, queries.related(session, [inst])).rebuild(inst)
    return JSONResponse(out, status_code=202, headers={"Location": out["server"]["links"][0]["href"]})


def _resize(request: Request, ctx: RequestContext, server_id: str, body: dict[str, Any]) -> Any:
    from kvmfleet.compute import server_inputs

    validate(schemas.RESIZE, body, FORMATS)
    if body["resize"].get("OS-DCF:diskConfig") == "AUTO":
        raise BadRequest("OS-DCF:diskConfig AUTO is not supported: disks are presented as the image made them.")
    with get_store(request).transaction() as session:
        find(session, ctx, server_id)
        flavor = server_inputs.resolve_flavor(session, body["resize"]["flavorRef"])
    submit(request, ctx, server_id, "resize", SERVERS % "resize", "resize", flavor=flavor.id)
    return Response(status_code=202)


def _migrate(request: Request, ctx: RequestContext, server_id: str, body: dict[str, Any]) -> Any:
    """Cold migration; from 2.56 to a named host (its own rule, as Nova's)."""
    host = None
    if ctx.microversion.matches("2.56"):
        validate(migrate_schemas.MIGRATE_V256, body, FORMATS)
        host = (body["migrate"] or {}).get("host")
    rule = MIGRATE % ("migrate:host" if host else "migrate")
    submit(request, ctx, server_id, "migrate", rule, "migrate", host=host)
    return Response(status_code=202)


def _migrate_live(request: Request, ctx: RequestContext, server_id: str, body: dict[str, Any]) -> Any:
    """Live migration. ``force`` (2.30 to 2.67) is accepted and ignored: the scheduler always checks the
    named host, as Nova does from 2.68 (a host it refuses is 400). ``disk_over_commit`` (before 2.25) is
    ignored too: the destination's disk is checked by the scheduler's allocation ratios."""
    v = ctx.microversion
    validate(migrate_schemas.migrate_live_schema(v), body, FORMATS)
    args = body["os-migrateLive"]
    host = args["host"] or None
    if v.matches("2.30", "2.67") and as_bool(args.get("force", False)) and not host:
        raise BadRequest("Can't force to a non-provided destination")
    block = args["block_migration"]
    block_migration = "auto" if v.matches("2.25") and block == "auto" else as_bool(block)
    rule = MIGRATE % ("migrate_live:host" if host else "migrate_live")
    submit(request, ctx, server_id, "live-migration", rule, "os-migrateLive", host=host,
           block_migration=block_migration)
    return Response(status_code=202)


def _evacuate(request: Request, ctx: RequestContext, server_id: str, body: dict[str, Any]) -> Any:
    """Evacuate (nova/api/openstack/compute/evacuate.py): rebuild a server of a down host elsewhere. 200
    with no body: kvmfleet sets no guest passwords (Nova with enable_instance_password off), so adminPass is
    accepted and not used. onSharedStorage true is refused: kvmfleet hosts keep disks local, an evacuated
    server is rebuilt from its image. ``force`` (2.29 to 2.67) is accepted and ignored: the scheduler
    always checks a named host, as Nova does from 2.68."""
    from sqlalchemy import select

    from kvmfleet.api.faults import NotFoundError
    from kvmfleet.store.models import Host

    v = ctx.microversion
    validate(migrate_schemas.evacuate_schema(v), body, FORMATS)
    args = body["evacuate"]
    host = args.get("host") or None
    if not v.matches("2.14") and as_bool(args["onSharedStorage"]):
        raise BadRequest("onSharedStorage is not supported: the hosts' disks are local, an evacuated server is "
                         "rebuilt from its image")
    if v.matches("2.29", "2.67") and as_bool(args.get("force", False)) and not host:
        raise BadRequest("Can't force to a non-provided destination")
    with get_store(request).transaction() as session:
        inst = find(session, ctx, server_id)
        ctx.authorize(EVACUATE)
        if host is not None:
            if session.scalars(select(Host).where(Host.name == host)).first() is None:
                raise NotFoundError(f"Compute host {host} not found.")
            if inst.host == host:
                raise BadRequest("The target host can't be the same one.")
    submit(request, ctx, server_id, "evacuate", EVACUATE, "evacuate", host=host)
    return Response(status_code=200)


ACTION_DOC = {**schemas.ACTION_DOC, "properties": {**schemas.ACTION_DOC["properties"],
                                                   **migrate_schemas.DOC_PROPERTIES,
                                                   **console_schemas.DOC_PROPERTIES}}


@router.post("/servers/{server_id}/action", openapi_extra=openapi_body(ACTION_DOC))
def server_action(server_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> Any:
    if not isinstance(body, dict) or not body:
        raise BadRequest("Malformed request body")
    name = next(iter(body))
    if name in SIMPLE:
        op, rule, status = SIMPLE[name]
        validate(schemas.SIMPLE_ACTIONS[name], body, FORMATS)
        submit(request, ctx, server_id, op, rule, NOVA_ACTION.get(name, name))
        return Response(status_code=status)
    if name == "reboot":
        validate(schemas.REBOOT, body, FORMATS)
        hard = body["reboot"]["type"].upper() == "HARD"
        submit(request, ctx, server_id, "reboot_hard" if hard else "reboot", SERVERS % "reboot", "reboot")
        return Response(status_code=202)
    if name == "resize":
        return _resize(request, ctx, server_id, body)
    if name == "rebuild":
        return _rebuild(request, ctx, server_id, body)
    if name == "os-getConsoleOutput":
        return _console_output(request, ctx, server_id, body)
    if name == "os-resetState":
        validate(schemas.RESET_STATE, body, FORMATS)
        submit(request, ctx, server_id, "reset_state", RESET_STATE, "os-resetState",
               active=body["os-resetState"]["state"] == "active")
        return Response(status_code=202)
    if name == "migrate":
        return _migrate(request, ctx, server_id, body)
    if name == "os-migrateLive":
        return _migrate_live(request, ctx, server_id, body)
    if name == "evacuate":
        return _evacuate(request, ctx, server_id, body)
    if name in console_schemas.ACTIONS:
        from kvmfleet.api.compute import remote_consoles

        return remote_consoles.action(request, ctx, server_id, name, body)
    if name in ("addSecurityGroup", "removeSecurityGroup"):
        from kvmfleet.api.compute import server_security_groups

        return server_security_groups.action(request, ctx, server_id, name, body)
    raise BadRequest(f"There is no such action: {name}")
