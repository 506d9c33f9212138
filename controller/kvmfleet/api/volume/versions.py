"""Block storage version documents (cinder/api/versions.py): ``GET /volume/`` answers 300 Multiple
Choices with v3.0, ``GET /volume/v3/`` the same with 200. No token needed: clients read them to
discover the endpoint and its microversion range."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kvmfleet.api.compute.views.links import base_url
from kvmfleet.api.volume import MAX, MIN

router = APIRouter(prefix="/volume")


def versions_document(request: Request) -> dict[str, Any]:
    href = f"{base_url(request)}/volume/v3/"
    return {"versions": [{
        "id": "v3.0", "status": "CURRENT", "version": str(MAX), "min_version": str(MIN),
        "updated": "2023-08-31T00:00:00Z",
        "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": href}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}]}]}


@router.get("", include_in_schema=False)
@router.get("/", summary="List block storage API versions (300 Multiple Choices)", status_code=300)
def index(request: Request) -> JSONResponse:
    return JSONResponse(versions_document(request), status_code=300)


@router.get("/v3", include_in_schema=False)
@router.get("/v3/", summary="Block storage API v3 version")
def v3(request: Request) -> dict[str, Any]:
    return versions_document(request)
