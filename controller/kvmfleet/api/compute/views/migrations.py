"""Migration views per microversion: a server's live migration in progress
(nova/api/openstack/compute/server_migrations.py's output) and the admin's os-migrations
(nova/api/openstack/compute/migrations.py's _output). Timestamps as Nova's JSON shows a migration
object's (naive UTC, microseconds)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from kvmfleet.api.compute.views.links import resource_links
from kvmfleet.api.compute.views.servers import usage_time
from kvmfleet.api.microversion import APIVersion
from kvmfleet.compute import migrations
from kvmfleet.store.models import Migration


def flavor_id(value: str | None) -> int | str | None:
    """Nova's old/new_instance_type_id is the flavor's integer database id; ours is the flavor id itself,
    shown as an integer when it is one (the usual "1", "42") and as the string otherwise."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def in_progress(row: Migration) -> bool:
    return row.migration_type == migrations.LIVE and row.status not in migrations.FINISHED


def server_migration(row: Migration, version: APIVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "created_at": usage_time(row.created_at), "dest_compute": row.dest_compute, "dest_host": row.dest_host,
        "dest_node": row.dest_node, "disk_processed_bytes": row.disk_processed,
        "disk_remaining_bytes": row.disk_remaining, "disk_total_bytes": row.disk_total, "id": row.id,
        "memory_processed_bytes": row.memory_processed, "memory_remaining_bytes": row.memory_remaining,
        "memory_total_bytes": row.memory_total, "server_uuid": row.instance_uuid,
        "source_compute": row.source_compute, "source_node": row.source_node, "status": row.status,
        "updated_at": usage_time(row.updated_at),
    }
    if version.matches("2.59"):
        out["uuid"] = row.uuid
    return out


def migration(request: Request, row: Migration, version: APIVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "created_at": usage_time(row.created_at), "dest_compute": row.dest_compute, "dest_host": row.dest_host,
        "dest_node": row.dest_node, "id": row.id, "instance_uuid": row.instance_uuid,
        "new_instance_type_id": flavor_id(row.new_flavor_id), "old_instance_type_id": flavor_id(row.old_flavor_id),
        "source_compute": row.source_compute, "source_node": row.source_node, "status": row.status,
        "updated_at": usage_time(row.updated_at),
    }
    if version.matches("2.23"):
        out["migration_type"] = row.migration_type
        if in_progress(row):  # links only where GET /servers/{id}/migrations/{id} answers
            out["links"] = resource_links(request, f"servers/{row.instance_uuid}/migrations", row.id)
    if version.matches("2.59"):
        out["uuid"] = row.uuid
    return out
