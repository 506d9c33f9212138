"""Errors to fault bodies, in one place, in each service's own format.

Raise ``ApiError`` (or a subclass) from a handler, or let a compute/store/identity error propagate:
``install(app)`` maps both to the fault body of the service the path belongs to:

- compute (Nova):     {"itemNotFound": {"code": 404, "message": "..."}}
- identity (Keystone): {"error": {"code": 404, "title": "Not Found", "message": "..."}}
- image (Glance):     {"code": "404 Not Found", "title": "Not Found", "message": "..."}  (JSON, not HTML)
- network (Neutron):  {"NeutronError": {"type": "NotFound", "message": "...", "detail": ""}}
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("kvmfleet.api")

# Nova's fault names by status (nova/api/openstack/wsgi.py Fault._fault_names).
NOVA_FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
    409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit", 501: "notImplemented",
    503: "serviceUnavailable",
}


class ApiError(Exception):
    """An error answered with ``status``; ``message`` is shown to the client (never a secret).
    ``kind`` names it for Neutron's ``type`` (e.g. NetworkNotFound); ``headers`` are added."""

    status = 400

    def __init__(self, message: str, status: int | None = None, kind: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.kind = kind
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401

    def __init__(self, message: str = "The request you have made requires authentication.", **kw: Any) -> None:
        super().__init__(message, **kw)


class Forbidden(ApiError):
    status = 403


class NotFoundError(ApiError):
    status = 404


class ConflictError(ApiError):
    status = 409


class TooLarge(ApiError):
    status = 413


def service_of(path: str) -> str:
    """Which service a request path belongs to: compute, identity, image, network or root."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in ("compute", "identity", "image", "network", "volume") else "root"


def body_for(service: str, status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if service in ("compute", "volume"):  # Cinder's faults have Nova's shape
        name = NOVA_FAULT_NAMES.get(status, "computeFault")
        return {name: {"code": status, "message": message}}
    if service == "identity" or service == "root":
        return {"error": {"code": status, "title": title, "message": message}}
    if service == "image":
        return {"code": f"{status} {title}", "title": title, "message": message}
    if service == "network":
        return {"NeutronError": {"type": kind or title.replace(" ", ""), "message": message, "detail": ""}}
    return {"error": {"code": status, "title": title, "message": message}}


def fault_response(request: Request, status: int, message: str, kind: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    service = service_of(request.url.path)
    hdrs = dict(headers or {})
    if status == 401:
        base = str(request.base_url).rstrip("/")
        hdrs.setdefault("WWW-Authenticate", f'Keystone uri="{base}/identity"')
    return JSONResponse(body_for(service, status, message, kind), status_code=status, headers=hdrs)


def _status_of(exc: Exception) -> tuple[int, str | None] | None:
    """The status for an error of the layers below (compute, store, identity, quota), or None."""
    from kvmfleet import quota
    from kvmfleet.compute import errors as cerr
    from kvmfleet.images import errors as imerr
    from kvmfleet.store import errors as serr

    table: list[tuple[type[Exception], int, str | None]] = [
        # the image registry's (Glance's) codes, before the store classes they extend
        (imerr.ImageForbidden, 403, "Forbidden"),
        (imerr.ImageDataRefused, 415, "InvalidImageData"),
        (imerr.ImageTooLarge, 413, "RequestEntityTooLarge"),
        (imerr.ImageGone, 410, "Gone"),
        (serr.NotFound, 404, "NotFound"),
        (serr.AlreadyExists, 409, "Conflict"),
        (serr.InUse, 409, "InUse"),
        (serr.Conflict, 409, "Conflict"),
        (serr.InvalidInput, 400, "BadRequest"),
        (quota.OverQuota, 403, "OverQuota"),
        (cerr.InvalidRequest, 400, "BadRequest"),
        (cerr.InvalidInstanceState, 409, "Conflict"),
        (cerr.NoValidHostFound, 400, "NoValidHost"),
        (cerr.OperationFailed, 409, "Conflict"),
        (cerr.BuildFailed, 409, "Conflict"),
    ]
    own = getattr(exc, "http_status", None)  # an error that names its status and type (kvmfleet.network.errors)
    if isinstance(own, int):
        return own, getattr(exc, "kind", None)
    try:
        from kvmfleet.identity import errors as ierr  # the identity layer's own errors, when present
    except ImportError:
        ierr = None
    if ierr is not None:
        for name, status in (("AuthFailed", 401), ("IdentityForbidden", 403)):
            cls = getattr(ierr, name, None)
            if cls is not None:
                table.insert(0, (cls, status, name))
    for cls, status, kind in table:
        if isinstance(exc, cls):
            return status, kind
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into its service's fault body."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return fault_response(request, exc.status, exc.message, exc.kind, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = "The resource could not be found."
        if exc.status_code == 405:
            message = "The method is not allowed for the requested URL."
        return fault_response(request, exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return fault_response(request, 400, f"Invalid input for {where or 'the request'}: {first.get('msg', '')}")

    async def _mapped(request: Request, exc: Exception) -> JSONResponse:
        mapped = _status_of(exc)
        if mapped is None:
            return unexpected(request, exc)
        status, kind = mapped
        if kind == "OverQuota" and service_of(request.url.path) == "volume":
            status = 413  # Cinder's VolumeSizeExceedsAvailableQuota / VolumeLimitExceeded
        return fault_response(request, status, getattr(exc, "msg", None) or str(exc), kind)

    for cls in _layer_errors():
        app.add_exception_handler(cls, _mapped)


def _layer_errors() -> list[type[Exception]]:
    from kvmfleet import quota
    from kvmfleet.compute.errors import ComputeError
    from kvmfleet.store.errors import StoreError

    classes: list[type[Exception]] = [StoreError, ComputeError, quota.OverQuota]
    try:
        from kvmfleet.identity import errors as ierr
    except ImportError:
        return classes
    base = getattr(ierr, "IdentityError", None)
    if base is not None:
        classes.append(base)
    return classes


def unexpected(request: Request, exc: BaseException) -> JSONResponse:
    """A 500 that names nothing internal; the traceback goes to the service log."""
    log.error("unexpected error serving %s %s", request.method, request.url.path, exc_info=exc)
    return fault_response(request, 500, "An unexpected error prevented the server from fulfilling your request.")
