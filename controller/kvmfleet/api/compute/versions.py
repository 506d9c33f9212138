"""Compute API version documents (nova/api/openstack/compute/versions.py, versionsV21.py): ``GET /compute``
lists v2.0 and v2.1, ``GET /compute/v2.1`` shows v2.1 with its min and max microversion. No token needed:
clients read them to discover the API."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Request

from kvmfleet.api.compute.views.links import base_url
from kvmfleet.api.microversion import MAX_VERSION, MIN_VERSION

router = APIRouter(prefix="/compute")

_DOCS = [{"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}]

VERSIONS: dict[str, dict[str, Any]] = {
    "v2.0": {
        "id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "", "updated": "2025-07-04T12:00:00Z",
        "links": _DOCS,
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"}],
    },
    "v2.1": {
        "id": "v2.1", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
        "updated": "2013-07-23T11:33:21Z", "links": _DOCS,
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.compute+json;version=2.1"}],
    },
}


def _root(request: Request) -> str:
    return f"{base_url(request)}/compute"


def versions_document(request: Request) -> dict[str, Any]:
    root = _root(request)
    hrefs = {"v2.0": f"{root}/v2/", "v2.1": f"{root}/v2.1/"}
    return {"versions": [{key: v[key] for key in ("id", "status", "version", "min_version", "updated")}
                         | {"links": [{"rel": "self", "href": hrefs[v["id"]]}]}
                         for _, v in sorted(VERSIONS.items())]}


def version_document(request: Request) -> dict[str, Any]:
    version = copy.deepcopy(VERSIONS["v2.1"])
    version["links"].insert(0, {"rel": "self", "href": f"{_root(request)}/v2.1/"})
    return {"version": version}


@router.get("", include_in_schema=False)
@router.get("/", summary="List compute API versions")
def index(request: Request) -> dict[str, Any]:
    return versions_document(request)


@router.get("/v2.1", include_in_schema=False)
@router.get("/v2.1/", summary="Show compute API v2.1")
def show(request: Request) -> dict[str, Any]:
    return version_document(request)
