"""Request schemas of os-quota-sets (nova/api/openstack/compute/schemas/quota_sets.py), Draft 4, and the
quota keys each microversion shows: 2.36 drops the nova-network ones, 2.57 the injected files."""

from __future__ import annotations

from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion

_QUOTA = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1, "maximum": 0x7FFFFFFF}
KEYS = ("cores", "fixed_ips", "floating_ips", "injected_file_content_bytes", "injected_file_path_bytes",
        "injected_files", "instances", "key_pairs", "metadata_items", "ram", "security_groups",
        "security_group_rules", "server_groups", "server_group_members")
FILTERED_V236 = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
FILTERED_V257 = (*FILTERED_V236, "injected_files", "injected_file_content_bytes", "injected_file_path_bytes")


def keys(version: APIVersion) -> tuple[str, ...]:
    if version.matches("2.57"):
        hidden = FILTERED_V257
    elif version.matches("2.36"):
        hidden = FILTERED_V236
    else:
        hidden = ()
    return tuple(k for k in KEYS if k not in hidden)


def update_schema(version: APIVersion) -> dict[str, Any]:
    props: dict[str, Any] = {k: _QUOTA for k in keys(version)}
    props["force"] = t.BOOLEAN
    return {"type": "object",
            "properties": {"quota_set": {"type": "object", "properties": props, "additionalProperties": False}},
            "required": ["quota_set"], "additionalProperties": False}


UPDATE_DOC = update_schema(APIVersion(2, 1))
QUERY_PARAMS = ("user_id",)
