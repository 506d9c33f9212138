"""Request schema of POST /servers/{id}/migrations/{id}/action
(nova/api/openstack/compute/schemas/server_migrations.py), Draft 4."""

from __future__ import annotations

FORCE_COMPLETE = {
    "type": "object",
    "properties": {"force_complete": {"type": "null"}},
    "required": ["force_complete"],
    "additionalProperties": False,
}
