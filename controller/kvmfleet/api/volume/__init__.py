"""Cinder v3 (block storage) routes under /volume: the version documents, volumes (CRUD, detail, the
os-extend action), volume types (one per configured backend), quota sets, limits and availability
zones. Paths work with and without the project id (``/volume/v3/{project_id}/volumes``, and
``/volume/v3/volumes`` as Cinder takes from 3.67); the catalog lists ``/volume/v3`` as both
``block-storage`` and ``volumev3``.

Microversions: ``OpenStack-API-Version: volume 3.x`` (none: 3.0, ``latest``: MAX), echoed on every
volume response with ``Vary``; out of range is 406. Faults have Nova's shape (``{"itemNotFound": {code,
message}}``), as Cinder's do; quota exceeded is 413.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

from kvmfleet.api.microversion import APIVersion, InvalidVersion

PREFIX = "/volume/v3"
MIN = APIVersion(3, 0)
MAX = APIVersion(3, 70)
MODULES = ("versions", "volumes", "misc")


def version_from(headers: object) -> APIVersion:
    get = headers.get  # type: ignore[attr-defined]
    text = None
    for part in (get("openstack-api-version") or "").split(","):
        words = part.strip().split()
        if len(words) == 2 and words[0].lower() == "volume":
            text = words[1]
    if not text:
        return MIN
    if text.strip().lower() == "latest":
        return MAX
    version = APIVersion.parse(text)
    if not (MIN <= version <= MAX):
        raise InvalidVersion(f"Version {version} is not supported by the API. Minimum is {MIN} and maximum "
                             f"is {MAX}.", 406)
    return version


def response_headers(version: APIVersion) -> list[tuple[bytes, bytes]]:
    return [(b"openstack-api-version", f"volume {version}".encode()), (b"vary", b"OpenStack-API-Version")]


def routers() -> list[APIRouter]:
    return [importlib.import_module(f"{__name__}.{name}").router for name in MODULES]
