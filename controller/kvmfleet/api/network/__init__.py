"""Neutron v2.0 (network) routes under /network, read-only (managing networks is roadmap 5): versions,
extensions, networks, subnets, ports (each server's NICs with MAC and DHCP-leased IPv4), security groups,
quotas, and the empty floating IP and router lists clients look at.

Handlers authenticate, authorize by Neutron's policy names and render what kvmfleet.network derives
from the store and the hosts' reports. Another project's port is a 404 and never listed.
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

PREFIX = "/network/v2.0"
MODULES = ("versions", "extensions", "networks", "ports", "security_groups", "quotas", "empty")


def routers() -> list[APIRouter]:
    """Every router of this service, each with its own path prefix."""
    return [importlib.import_module(f"{__name__}.{name}").router for name in MODULES]
