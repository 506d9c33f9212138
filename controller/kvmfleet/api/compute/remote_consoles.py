"""Compute API: remote consoles (nova/api/openstack/compute/remote_consoles.py).

    POST /servers/{id}/remote-consoles   (2.6+) {"remote_console": {"protocol": "vnc", "type": "novnc"}}
                                         or {"protocol": "serial", "type": "serial"}  -> 200 with the URL
    POST /servers/{id}/action            {"os-getVNCConsole": {"type": "novnc"}},
                                         {"os-getSerialConsole": {"type": "serial"}}  -> 200 {"console": ...}

The URL carries a one-time token (kvmfleet.compute.consoles) that the console proxy of the same service
(kvmfleet.api.console_proxy) spends on connect: noVNC's page under /console/novnc/ for VNC, a websocket
/console/serial/{id} for the serial console. Faults as Nova's: a protocol and type that do not go
together, or a type not offered (spice, mks), 400; a server that is not running or has no VNC display,
409; another project's server, 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kvmfleet.api import policy
from kvmfleet.api.compute import PREFIX
from kvmfleet.api.compute.schemas import remote_consoles as schemas
from kvmfleet.api.compute.schemas.types import FORMATS
from kvmfleet.api.compute.servers import find
from kvmfleet.api.context import RequestContext, context, get_store
from kvmfleet.api.faults import NotFoundError
from kvmfleet.api.validation import json_body, openapi_body, validate

router = APIRouter(prefix=PREFIX)
CTX = Depends(context)
BODY = Depends(json_body)

RULE = "os_compute_api:os-remote-consoles"
policy.register({RULE: policy.PROJECT_MEMBER_OR_ADMIN})


def console_url(request: Request, protocol: str, server_id: str, token: str) -> str:
    """Where the client opens the console: noVNC's page (its websocket path in ``path``) or the serial
    websocket, on this service's public URL."""
    from kvmfleet.identity import catalog

    base = catalog.base_url(str(request.base_url))
    if protocol == "vnc":
        return f"{base}/console/novnc/vnc_lite.html?path=" + quote(f"console/vnc/{server_id}?token={token}", safe="")
    ws = "wss" + base[len("https"):] if base.startswith("https") else "ws" + base[len("http"):]
    return f"{ws}/console/serial/{server_id}?token={token}"


def get_console(request: Request, ctx: RequestContext, server_id: str, protocol: str, console_type: str) -> str:
    from kvmfleet.compute import consoles
    from kvmfleet.config import get_settings

    store = get_store(request)
    with store.transaction() as session:
        find(session, ctx, server_id)
        ctx.authorize(RULE)
    token, _expires = consoles.issue(store, server_id, protocol, console_type, user_id=ctx.user_id,
                                     ttl=get_settings().api.console_token_ttl)
    return console_url(request, protocol, server_id, token)


@router.post("/servers/{server_id}/remote-consoles", openapi_extra=openapi_body(schemas.CREATE_V28))
def create(server_id: str, request: Request, body: Any = BODY, ctx: RequestContext = CTX) -> Any:
    if not ctx.microversion.matches("2.6"):  # as Nova: the resource does not exist before 2.6
        raise NotFoundError("The resource could not be found.")
    validate(schemas.create_schema(ctx.microversion), body, FORMATS)
    protocol = body["remote_console"]["protocol"]
    console_type = body["remote_console"]["type"]
    url = get_console(request, ctx, server_id, protocol, console_type)
    return JSONResponse({"remote_console": {"protocol": protocol, "type": console_type, "url": url}})


def action(request: Request, ctx: RequestContext, server_id: str, name: str, body: Any) -> Any:
    """os-getVNCConsole / os-getSerialConsole (the 2.1 actions remote-consoles replaced)."""
    schema, protocol = schemas.ACTIONS[name]
    validate(schema, body, FORMATS)
    console_type = body[name]["type"]
    url = get_console(request, ctx, server_id, protocol, console_type)
    return JSONResponse({"console": {"type": console_type, "url": url}})
