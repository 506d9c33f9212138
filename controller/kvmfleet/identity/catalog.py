"""The service catalog: one kvmfleet service answers for identity, compute, image, network and block storage, on one
port with DevStack's paths. Endpoints are built from ``api.public_url`` or the request's base URL; ids
are stable (uuid5 of the service type and interface), so the catalog, /v3/services and /v3/endpoints
agree across requests and restarts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

_NAMESPACE = uuid.UUID("6f6b1c8e-3f43-4a55-9d55-6b766d666c74")
INTERFACES = ("public", "internal", "admin")


@dataclass(frozen=True)
class Service:
    type: str
    name: str
    path: str  # under the base URL
    description: str

    @property
    def id(self) -> str:
        return uuid.uuid5(_NAMESPACE, f"service:{self.type}").hex

    def endpoint_id(self, interface: str) -> str:
        return uuid.uuid5(_NAMESPACE, f"endpoint:{self.type}:{interface}").hex


SERVICES = (
    Service("identity", "keystone", "/identity", "Keystone Identity Service"),
    Service("compute", "nova", "/compute/v2.1", "Nova Compute Service"),
    Service("image", "glance", "/image", "Glance Image Service"),
    Service("network", "neutron", "/network", "Neutron Networking Service"),
    # Cinder v3 without the project id in the path (Cinder takes both); listed under both of its types
    Service("block-storage", "cinder", "/volume/v3", "Cinder Volume Service"),
    Service("volumev3", "cinderv3", "/volume/v3", "Cinder Volume Service V3"),
)


def region() -> str:
    from kvmfleet.config import get_settings

    return get_settings().api.region


def base_url(request_base: str) -> str:
    """api.public_url when set, else the URL the request came in on."""
    from kvmfleet.config import get_settings

    return (get_settings().api.public_url or request_base).rstrip("/")


def endpoints(base: str) -> list[dict[str, Any]]:
    """Every endpoint as /v3/endpoints lists it (without links)."""
    reg = region()
    return [{"id": svc.endpoint_id(iface), "interface": iface, "region": reg, "region_id": reg,
             "service_id": svc.id, "url": base + svc.path, "enabled": True}
            for svc in SERVICES for iface in INTERFACES]


def token_catalog(base: str) -> list[dict[str, Any]]:
    """The catalog a token carries (and GET /v3/auth/catalog answers)."""
    reg = region()
    return [{"endpoints": [{"id": svc.endpoint_id(iface), "interface": iface, "region": reg, "region_id": reg,
                            "url": base + svc.path} for iface in INTERFACES],
             "id": svc.id, "type": svc.type, "name": svc.name}
            for svc in SERVICES]


def find_service(service_id: str) -> Service | None:
    return next((s for s in SERVICES if s.id == service_id), None)
