"""Request schemas of the migrate and os-migrateLive server actions
(nova/api/openstack/compute/schemas/migrate_server.py), Draft 4.

    migrate          any value before 2.56 (Nova does not look at it); from 2.56 null or {"host": fqdn|null}
    os-migrateLive   before 2.25: block_migration, disk_over_commit (booleans) and host (nullable), all
                     required; 2.25: block_migration may be "auto", no disk_over_commit; 2.30 to 2.67: an
                     optional ``force`` boolean; 2.68: as 2.25 again
"""

from __future__ import annotations

from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion

HOST = {**t.FQDN, "type": ["string", "null"]}
MIGRATE_V256 = {
    "type": "object",
    "properties": {"migrate": {"type": ["object", "null"], "properties": {"host": HOST},
                               "additionalProperties": False}},
    "required": ["migrate"],
    "additionalProperties": False,
}
_BLOCK_MIGRATION_V225 = {**t.BOOLEAN, "enum": [*t.BOOLEAN["enum"], "auto"]}


def _live(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"os-migrateLive": {"type": "object", "properties": props, "required": required,
                                              "additionalProperties": False}},
            "required": ["os-migrateLive"], "additionalProperties": False}


MIGRATE_LIVE = _live({"block_migration": t.BOOLEAN, "disk_over_commit": t.BOOLEAN, "host": HOST},
                     ["block_migration", "disk_over_commit", "host"])
MIGRATE_LIVE_V225 = _live({"block_migration": _BLOCK_MIGRATION_V225, "host": HOST}, ["block_migration", "host"])
MIGRATE_LIVE_V230 = _live({"block_migration": _BLOCK_MIGRATION_V225, "host": HOST, "force": t.BOOLEAN},
                          ["block_migration", "host"])


def migrate_live_schema(version: APIVersion) -> dict[str, Any]:
    if version.matches("2.30", "2.67"):
        return MIGRATE_LIVE_V230
    if version.matches("2.25"):
        return MIGRATE_LIVE_V225
    return MIGRATE_LIVE


# For the served OpenAPI document's POST /servers/{id}/action body (the widest of each).
DOC_PROPERTIES = {"migrate": MIGRATE_V256["properties"]["migrate"],
                  "os-migrateLive": MIGRATE_LIVE_V230["properties"]["os-migrateLive"]}


# evacuate (nova/api/openstack/compute/schemas/evacuate.py): 2.1 host, onSharedStorage (required),
# adminPass; 2.14 no onSharedStorage; 2.29 to 2.67 an optional ``force``; 2.68 as 2.14 again.
def _evacuate(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"evacuate": {"type": "object", "properties": props, "required": required,
                                        "additionalProperties": False}},
            "required": ["evacuate"], "additionalProperties": False}


_EVACUATE_BASE = {"host": t.FQDN, "adminPass": t.ADMIN_PASSWORD}
EVACUATE = _evacuate({**_EVACUATE_BASE, "onSharedStorage": t.BOOLEAN}, ["onSharedStorage"])
EVACUATE_V214 = _evacuate(_EVACUATE_BASE, [])
EVACUATE_V229 = _evacuate({**_EVACUATE_BASE, "force": t.BOOLEAN}, [])


def evacuate_schema(version: APIVersion) -> dict[str, Any]:
    if version.matches("2.29", "2.67"):
        return EVACUATE_V229
    if version.matches("2.14"):
        return EVACUATE_V214
    return EVACUATE


DOC_PROPERTIES["evacuate"] = EVACUATE["properties"]["evacuate"]
