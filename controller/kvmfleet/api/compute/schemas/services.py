"""Request schemas of os-services (nova/api/openstack/compute/schemas/services.py), Draft 4: before 2.53
the service is named in the body (host, binary) and the action in the path; from 2.53 the path holds the
service's uuid and the body the changes."""

from __future__ import annotations

from kvmfleet.api.compute.schemas import types as t

_REASON = {"type": "string", "format": "description", "minLength": 1, "maxLength": 255}  # printable
UPDATE = {
    "type": "object",
    "properties": {"host": t.FQDN, "binary": {"type": "string", "minLength": 1, "maxLength": 255},
                   "disabled_reason": _REASON},
    "required": ["host", "binary"],
    "additionalProperties": False,
}
UPDATE_V211 = {**UPDATE, "properties": {**UPDATE["properties"], "forced_down": t.BOOLEAN}}
UPDATE_V253 = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["enabled", "disabled"]}, "disabled_reason": _REASON,
                   "forced_down": t.BOOLEAN},
    "additionalProperties": False,
}
QUERY_PARAMS = ("host", "binary")
