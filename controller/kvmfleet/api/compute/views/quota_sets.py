"""Quota set and limits views per microversion (nova/api/openstack/compute/quota_sets.py
_format_quota_set, views/limits.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kvmfleet.api.compute.schemas import quota_sets as schemas
from kvmfleet.api.microversion import APIVersion


def quota_set(version: APIVersion, values: Mapping[str, Any], project_id: str | None) -> dict[str, Any]:
    """``values``: resource -> limit (or -> {limit, in_use, reserved} for the detail view)."""
    out: dict[str, Any] = {"id": project_id} if project_id is not None else {}
    for key in schemas.keys(version):
        out[key] = values[key]
    return {"quota_set": out}


# views/limits.py's limit_names and quota_map
_ABSOLUTE = {"ram": ("maxTotalRAMSize",), "instances": ("maxTotalInstances",), "cores": ("maxTotalCores",),
             "key_pairs": ("maxTotalKeypairs",), "floating_ips": ("maxTotalFloatingIps",),
             "metadata_items": ("maxServerMeta", "maxImageMeta"), "injected_files": ("maxPersonality",),
             "injected_file_content_bytes": ("maxPersonalitySize",), "security_groups": ("maxSecurityGroups",),
             "security_group_rules": ("maxSecurityGroupRules",), "server_groups": ("maxServerGroups",),
             "server_group_members": ("maxServerGroupMembers",)}
_USED = {"totalRAMUsed": "ram", "totalCoresUsed": "cores", "totalInstancesUsed": "instances",
         "totalFloatingIpsUsed": "floating_ips", "totalSecurityGroupsUsed": "security_groups",
         "totalServerGroupsUsed": "server_groups"}
_FILTERED_LIMITS_V236 = ("floating_ips", "security_groups", "security_group_rules")
_FILTERED_LIMITS_V257 = (*_FILTERED_LIMITS_V236, "injected_files", "injected_file_content_bytes")


def limits(version: APIVersion, detail: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """``detail``: kvmfleet.quota.detail() of the project."""
    if version.matches("2.57"):
        filtered: tuple[str, ...] = _FILTERED_LIMITS_V257
    elif version.matches("2.36"):
        filtered = _FILTERED_LIMITS_V236
    else:
        filtered = ()
    absolute: dict[str, int] = {}
    for resource, names in _ABSOLUTE.items():
        if resource in filtered or resource not in detail:
            continue
        for name in names:
            if name == "maxImageMeta" and version.matches("2.39"):
                continue
            absolute[name] = detail[resource]["limit"]
    for name, resource in _USED.items():
        if resource in detail and resource not in filtered:
            absolute[name] = detail[resource]["in_use"]
    return {"limits": {"rate": [], "absolute": absolute}}
