"""Request schemas of /servers/{id}/metadata (nova/api/openstack/compute/schemas/server_metadata.py)."""

from __future__ import annotations

from kvmfleet.api.compute.schemas import types as t

_META_ONE = {**t.METADATA, "minProperties": 1, "maxProperties": 1}

CREATE = {"type": "object", "properties": {"metadata": t.METADATA}, "required": ["metadata"],
          "additionalProperties": False}
UPDATE_ALL = CREATE
UPDATE = {"type": "object", "properties": {"meta": _META_ONE}, "required": ["meta"], "additionalProperties": False}
