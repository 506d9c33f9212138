"""Flavor views per microversion (nova/api/openstack/compute/views/flavors.py): description from 2.55,
extra_specs from 2.61 (when the caller may read them), swap 0 instead of "" from 2.75."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from kvmfleet.api.compute.views.links import collection_links, resource_links
from kvmfleet.api.microversion import APIVersion
from kvmfleet.store.models import Flavor

RXTX_FACTOR = 1.0  # no network QoS here: every flavor has Nova's default factor


def basic(request: Request, version: APIVersion, flavor: Flavor) -> dict[str, Any]:
    out: dict[str, Any] = {"id": flavor.id, "name": flavor.name,
                           "links": resource_links(request, "flavors", flavor.id)}
    if version.matches("2.55"):
        out["description"] = flavor.description
    return out


def show(request: Request, version: APIVersion, flavor: Flavor, extra_specs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "ram": flavor.memory_mb,
        "disk": flavor.root_gb,
        "swap": flavor.swap if version.matches("2.75") else (flavor.swap or ""),
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        "OS-FLV-DISABLED:disabled": bool(flavor.disabled),
        "vcpus": flavor.vcpus,
        "os-flavor-access:is_public": bool(flavor.is_public),
        "rxtx_factor": RXTX_FACTOR,
        "links": resource_links(request, "flavors", flavor.id),
    }
    if version.matches("2.55"):
        out["description"] = flavor.description
    if extra_specs and version.matches("2.61"):
        out["extra_specs"] = {str(k): str(v) for k, v in (flavor.extra_specs or {}).items()}
    return out


def index(request: Request, version: APIVersion, flavors: list[Flavor], limit: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"flavors": [basic(request, version, f) for f in flavors]}
    links = collection_links(request, "flavors", flavors, "id", limit)
    if links:
        out["flavors_links"] = links
    return out


def detail(request: Request, version: APIVersion, flavors: list[Flavor], limit: int | None,
           extra_specs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"flavors": [show(request, version, f, extra_specs) for f in flavors]}
    links = collection_links(request, "flavors/detail", flavors, "id", limit)
    if links:
        out["flavors_links"] = links
    return out
