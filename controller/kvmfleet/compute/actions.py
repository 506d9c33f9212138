"""The instance action log (Nova's instance actions and their events).

An action is recorded, with its first event started, in the same transaction that sets the task_state
(principle 8); each step that touches a host is an event carrying the executor job id.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.store.models import InstanceAction, InstanceActionEvent, utcnow

SUCCESS = "Success"
ERROR = "Error"


def new_request_id() -> str:
    return "req-" + str(uuid.uuid4())


def start_action(session: Session, instance_uuid: str, action: str, request_id: str,
                 project_id: str | None = None, user_id: str | None = None) -> InstanceAction:
    row = InstanceAction(instance_uuid=instance_uuid, action=action, request_id=request_id,
                         project_id=project_id, user_id=user_id)
    session.add(row)
    session.flush()
    return row


def start_event(session: Session, action_id: int, event: str, host: str | None = None,
                details: dict[str, Any] | None = None) -> InstanceActionEvent:
    row = InstanceActionEvent(action_id=action_id, event=event, host=host, details=details)
    session.add(row)
    session.flush()
    return row


def finish_event(session: Session, event_id: int, ok: bool, *, job_id: str | None = None,
                 error: str | None = None, host: str | None = None, details: dict[str, Any] | None = None) -> None:
    row = session.get(InstanceActionEvent, event_id)
    if row is None:
        return
    row.finish_time = utcnow()
    row.result = SUCCESS if ok else ERROR
    if job_id:
        row.job_id = job_id
    if host:
        row.host = host
    if error:
        row.traceback = error
    if details:
        row.details = {**(row.details or {}), **details}


def finish_action(session: Session, action_id: int, message: str | None = None) -> None:
    row = session.get(InstanceAction, action_id)
    if row is None:
        return
    row.finish_time = utcnow()
    if message:
        row.message = message


def events_for(session: Session, instance_uuid: str) -> list[dict[str, Any]]:
    """Every action of an instance with its events, oldest first."""
    out = []
    for action in session.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == instance_uuid)
                                  .order_by(InstanceAction.id)).all():
        out.append({
            "action": action.action, "request_id": action.request_id, "user_id": action.user_id,
            "start_time": action.start_time.isoformat() if action.start_time else None,
            "finish_time": action.finish_time.isoformat() if action.finish_time else None,
            "message": action.message,
            "events": [{"event": e.event, "result": e.result, "host": e.host, "job_id": e.job_id,
                        "start_time": e.start_time.isoformat() if e.start_time else None,
                        "finish_time": e.finish_time.isoformat() if e.finish_time else None,
                        "error": e.traceback, "details": e.details} for e in action.events],
        })
    return out
