"""Network API version documents (neutron/api/versions.py): ``GET /network`` lists v2.0, ``GET
/network/v2.0`` its resources. No token needed: clients read them to discover the endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from kvmfleet.api.compute.views.links import base_url

router = APIRouter(prefix="/network")

RESOURCES = (("subnet", "subnets"), ("network", "networks"), ("port", "ports"))


@router.get("", include_in_schema=False)
@router.get("/", summary="List network API versions")
def index(request: Request) -> dict[str, Any]:
    return {"versions": [{"status": "CURRENT", "id": "v2.0",
                          "links": [{"href": f"{base_url(request)}/network/v2.0/", "rel": "self"}]}]}


@router.get("/v2.0", include_in_schema=False)
@router.get("/v2.0/", summary="List network API v2.0 resources")
def show(request: Request) -> dict[str, Any]:
    root = f"{base_url(request)}/network/v2.0"
    return {"resources": [{"links": [{"href": f"{root}/{collection}", "rel": "self"}], "name": name,
                           "collection": collection} for name, collection in RESOURCES]}
