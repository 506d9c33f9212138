"""Query schemas of /servers/{id}/os-instance-actions (nova/api/openstack/compute/schemas/instance_actions.py)."""

from __future__ import annotations

from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion


def _one(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema, "maxItems": 1}


def index_query(version: APIVersion) -> dict[str, Any]:
    if not version.matches("2.58"):
        return {"type": "object", "properties": {}, "additionalProperties": True}
    props: dict[str, Any] = {
        "limit": _one(t.NON_NEGATIVE_INTEGER),
        "marker": _one({"type": "string"}),
        "changes-since": _one({"type": "string", "format": "date-time"}),
    }
    if version.matches("2.66"):
        props["changes-before"] = _one({"type": "string", "format": "date-time"})
    return {"type": "object", "properties": props, "additionalProperties": False}
