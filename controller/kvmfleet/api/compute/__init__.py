"""The compute service's routes (see kvmfleet.api)."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every router of this service, each with its own path prefix."""
    return []
