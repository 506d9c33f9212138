"""Nova v2.1 (compute) routes under /compute: one module per resource family, each with a ``router``.

Schemas per request and microversion range live in ``schemas/``, views that render a model for the
asked microversion in ``views/`` (STYLE 13). Handlers call kvmfleet.compute functions; nothing here
decides anything.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

PREFIX = "/compute/v2.1"

# Each module defines `router = APIRouter(prefix=PREFIX)` (versions: prefix "/compute").
MODULES = (
    "versions",
    "servers",
    "server_actions",
    "remote_consoles",
    "server_metadata",
    "server_security_groups",
    "instance_actions",
    "server_migrations",
    "volume_attachments",
    "interfaces",
    "flavors",
    "keypairs",
    "server_groups",
    "quota_sets",
    "limits",
    "availability_zones",
    "hypervisors",
    "services",
    "aggregates",
    "migrations",
)


def routers() -> list[APIRouter]:
    return [importlib.import_module(f"{__name__}.{name}").router for name in MODULES]
