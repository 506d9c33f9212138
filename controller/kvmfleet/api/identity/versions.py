"""GET /identity and /identity/v3: Keystone's version documents (keystone/api/discovery.py), so
keystoneauth's discovery finds v3 at ``<base>/identity/v3/``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kvmfleet.api.identity.views import base

router = APIRouter()


def _v3(request: Request) -> dict[str, Any]:
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base(request)}/identity/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}


@router.get("/identity", include_in_schema=True, status_code=300)
@router.get("/identity/", include_in_schema=False, status_code=300)
def versions(request: Request) -> JSONResponse:
    """Keystone answers its root with 300 Multiple Choices and the one version it serves."""
    href = f"{base(request)}/identity/v3/"
    return JSONResponse({"versions": {"values": [_v3(request)]}}, status_code=300, headers={"Location": href})


@router.get("/identity/v3")
@router.get("/identity/v3/", include_in_schema=False)
def version_v3(request: Request) -> dict[str, Any]:
    return {"version": _v3(request)}
