"""Request schemas of os-server-groups (nova/api/openstack/compute/schemas/server_groups.py), Draft 4:
``policies`` (one of affinity, anti-affinity; soft-* from 2.15) until 2.63, then ``policy`` and ``rules``
{max_server_per_host}."""

from __future__ import annotations

import copy
from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion

_CREATE = {
    "type": "object",
    "properties": {
        "server_group": {
            "type": "object",
            "properties": {
                "name": t.NAME,
                "policies": {
                    "type": "array",
                    "items": [{"type": "string", "enum": ["anti-affinity", "affinity"]}],
                    "uniqueItems": True, "minItems": 1, "maxItems": 1, "additionalItems": False,
                },
            },
            "required": ["name", "policies"],
            "additionalProperties": False,
        },
    },
    "required": ["server_group"],
    "additionalProperties": False,
}
_CREATE_V215 = copy.deepcopy(_CREATE)
_CREATE_V215["properties"]["server_group"]["properties"]["policies"]["items"][0]["enum"].extend(
    ["soft-anti-affinity", "soft-affinity"])
CREATE_V264 = copy.deepcopy(_CREATE_V215)
_group = CREATE_V264["properties"]["server_group"]
del _group["properties"]["policies"]
_group["required"] = ["name", "policy"]
_group["properties"]["policy"] = {"type": "string",
                                  "enum": ["anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity"]}
_group["properties"]["rules"] = {"type": "object",
                                 "properties": {"max_server_per_host": {**t.POSITIVE_INTEGER, "maximum": 0x7FFFFFFF}},
                                 "additionalProperties": False}


def create_schema(version: APIVersion) -> dict[str, Any]:
    if version.matches("2.64"):
        return CREATE_V264
    return _CREATE_V215 if version.matches("2.15") else _CREATE


QUERY_PARAMS = ("all_projects", "limit", "offset")
