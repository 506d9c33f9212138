"""Server group views per microversion (nova/api/openstack/compute/server_groups.py
_format_server_group): ``policies`` and an empty ``metadata`` until 2.63, ``policy`` and ``rules`` from
2.64; ``project_id`` and ``user_id`` from 2.13. Members are the ids of its servers that are not deleted."""

from __future__ import annotations

from typing import Any

from kvmfleet.api.microversion import APIVersion
from kvmfleet.store.models import ServerGroup


def show(version: APIVersion, group: ServerGroup) -> dict[str, Any]:
    out: dict[str, Any] = {"id": group.id, "name": group.name}
    policy = str(group.policy)
    if version.matches("2.64"):
        out["policy"] = policy
        out["rules"] = {"max_server_per_host": group.max_server_per_host} if group.max_server_per_host else {}
    else:
        out["policies"] = [policy]
        out["metadata"] = {}
    out["members"] = [m.uuid for m in group.members]
    if version.matches("2.13"):
        out["project_id"] = group.project_id
        out["user_id"] = group.user_id
    return out


def index(version: APIVersion, groups: list[ServerGroup]) -> dict[str, Any]:
    return {"server_groups": [show(version, g) for g in groups]}
