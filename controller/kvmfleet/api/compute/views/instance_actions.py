"""Instance action views (nova/api/openstack/compute/instance_actions.py's _format_action/_format_event)."""

from __future__ import annotations

from typing import Any

from kvmfleet.api.compute.views.servers import host_id, usage_time
from kvmfleet.compute.queries import action_updated_at

# our action names -> Nova's instance_actions constants where they differ
ACTION_NAMES = {"reset_state": "resetState"}


def action(row: Any, version: Any) -> dict[str, Any]:
    out = {"action": ACTION_NAMES.get(row.action, row.action), "instance_uuid": row.instance_uuid,
           "request_id": row.request_id, "user_id": row.user_id, "project_id": row.project_id,
           "start_time": usage_time(row.start_time), "message": row.message}
    if version.matches("2.58"):
        out["updated_at"] = usage_time(action_updated_at(row))
    return out


def event(row: Any, project_id: str, version: Any, admin: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"event": row.event, "start_time": usage_time(row.start_time),
                           "finish_time": usage_time(row.finish_time), "result": row.result}
    if admin:  # os-instance-actions:events: traceback (and host from 2.62) for admins
        out["traceback"] = row.traceback
        if version.matches("2.62"):
            out["host"] = row.host or ""
    if version.matches("2.62"):
        out["hostId"] = host_id(row.host, project_id)
    return out


def show(row: Any, project_id: str, version: Any, admin: bool) -> dict[str, Any]:
    out = action(row, version)
    if admin or version.matches("2.51"):
        out["events"] = [event(e, row.project_id or project_id, version, admin) for e in row.events]
    return {"instanceAction": out}
