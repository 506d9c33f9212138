"""Glance v2 (image) routes under /image: versions, images and their data, schemas (see kvmfleet.api).

Handlers authenticate, validate, authorize by Glance's policy names and call kvmfleet.images; the rules
(visibility, ownership, status, inspection) live there.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

PREFIX = "/image/v2"
MODULES = ("versions", "images", "image_data")


def routers() -> list[APIRouter]:
    """Every router of this service, each with its own path prefix."""
    return [importlib.import_module(f"{__name__}.{name}").router for name in MODULES]
