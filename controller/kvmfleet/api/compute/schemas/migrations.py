"""Query schemas of GET /os-migrations (nova/api/openstack/compute/schemas/migrations.py), Draft 4:
before 2.59 the filters only, anything else ignored; from 2.59 paging (limit, marker) and changes-since,
nothing else allowed; from 2.66 changes-before."""

from __future__ import annotations

from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion

_MULTI = {"type": "array", "items": {"type": "string"}}
FILTERS = ("hidden", "host", "instance_uuid", "source_compute", "status", "migration_type")


def _one(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema, "maxItems": 1}


def index_query(version: APIVersion) -> dict[str, Any]:
    props: dict[str, Any] = {name: _MULTI for name in FILTERS}
    if not version.matches("2.59"):
        return {"type": "object", "properties": props, "additionalProperties": True}
    props.update({"limit": _one(t.NON_NEGATIVE_INTEGER), "marker": _one({"type": "string"}),
                  "changes-since": _one({"type": "string", "format": "date-time"})})
    if version.matches("2.66"):
        props["changes-before"] = _one({"type": "string", "format": "date-time"})
    return {"type": "object", "properties": props, "additionalProperties": False}


QUERY_PARAMS = (*FILTERS, "limit", "marker", "changes-since", "changes-before")
