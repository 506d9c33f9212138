"""Image API version documents (glance/api/versions.py): ``GET /image`` answers 300 Multiple Choices
with every version, ``GET /image/versions`` and ``GET /image/v2`` the same list with 200. No token
needed: clients read them to discover the endpoint.

kvmfleet lists v2.0 to v2.5: images, their data, tags, community visibility. It serves os_hidden and
the multihash fields of later versions too, but not image import (v2.6) nor stores (v2.8), so it
does not claim those."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kvmfleet.api.compute.views.links import base_url

router = APIRouter(prefix="/image")

CURRENT = "2.5"
SUPPORTED = ("2.4", "2.3", "2.2", "2.1", "2.0")


def versions_document(request: Request) -> dict[str, Any]:
    href = f"{base_url(request)}/image/v2/"
    return {"versions": [{"id": f"v{v}", "status": "CURRENT" if v == CURRENT else "SUPPORTED",
                          "links": [{"rel": "self", "href": href}]} for v in (CURRENT, *SUPPORTED)]}


@router.get("", include_in_schema=False)
@router.get("/", summary="List image API versions (300 Multiple Choices)", status_code=300)
def index(request: Request) -> JSONResponse:
    return JSONResponse(versions_document(request), status_code=300)


@router.get("/versions", summary="List image API versions")
@router.get("/v2", include_in_schema=False)
@router.get("/v2/", summary="Image API v2 versions")
def versions(request: Request) -> dict[str, Any]:
    return versions_document(request)
