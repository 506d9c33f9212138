"""The ASGI app: one port, DevStack's path prefixes, one middleware for request ids and microversions.

    app = create_app(store)      # store: a kvmfleet.store.Store (default: the configured one)

Every response carries ``x-openstack-request-id: req-<uuid>`` (and ``x-compute-request-id`` on compute
paths, as Nova sends); every compute response carries the microversion it was served at.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kvmfleet.api import faults, microversion
from kvmfleet.api.page_cache import PageCache

log = logging.getLogger("kvmfleet.api")


class RequestMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): request id, microversion negotiation and echo, and a
    fault body for anything that escaped the handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = f"req-{uuid.uuid4()}"
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        path = scope.get("path", "")
        service = faults.service_of(path)
        compute = service == "compute"
        extra = [(b"x-openstack-request-id", rid.encode())]
        if service == "volume":  # Cinder's microversions: OpenStack-API-Version: volume 3.x
            from kvmfleet.api import volume

            try:
                state["microversion"] = volume.version_from(Request(scope).headers)
            except microversion.InvalidVersion as exc:
                response = faults.fault_response(Request(scope), exc.status, str(exc))
                response.raw_headers.extend(extra)
                await response(scope, receive, send)
                return
            extra.extend(volume.response_headers(state["microversion"]))
        if compute:
            extra.append((b"x-compute-request-id", rid.encode()))
            request = Request(scope)
            try:
                version = microversion.from_headers(request.headers)
            except microversion.InvalidVersion as exc:
                response = faults.fault_response(request, exc.status, str(exc))
                response.raw_headers.extend(extra)
                await response(scope, receive, send)
                return
            state["microversion"] = version
            extra.extend(microversion.response_headers(version))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + extra
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # the one place an unexpected error becomes a 500 fault body
            if started:
                raise
            response = faults.unexpected(Request(scope), exc)
            response.raw_headers.extend(extra)
            await response(scope, receive, send)


def create_app(store: Any = None, settings: Any = None) -> FastAPI:
    from kvmfleet.api import compute, console_proxy, identity, image, network, volume

    if store is None:
        from kvmfleet.store import get_store

        store = get_store()
    app = FastAPI(title="kvmfleet", version="2.1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.store = store
    app.state.settings = settings
    if settings is None:
        from kvmfleet.config import get_settings

        settings = get_settings()
    app.state.page_cache = PageCache(settings.api.list_cache_pages)
    faults.install(app)
    for module in (identity, compute, image, network, volume):
        for router in module.routers():
            app.include_router(router)
    app.include_router(console_proxy.router)
    console_proxy.mount_novnc(app, settings.api.novnc_dir)
    app.add_middleware(RequestMiddleware)
    return app
