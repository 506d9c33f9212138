"""Neutron v2.0 (network) routes under /network: versions, extensions, networks, subnets, ports, security
groups and rules, quotas, and the empty floating IP and router lists clients look at.

Handlers authenticate, authorize by Neutron's policy names, parse the body (api/network/bodies.py), call
kvmfleet.network.tenant / secgroups / quotas and render views; the provider network ``default`` and its
ports (derived from the store and the hosts' reports) are listed beside the tenant rows, read-only.
Another project's resource is a 404 and never listed.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

PREFIX = "/network/v2.0"
MODULES = ("versions", "extensions", "networks", "subnets", "ports", "security_groups", "quotas", "empty")


def routers() -> list[APIRouter]:
    """Every router of this service, each with its own path prefix."""
    return [importlib.import_module(f"{__name__}.{name}").router for name in MODULES]
