"""Changes to a server's own fields that touch no host: display name, description, metadata (Nova's
update_instance and update/delete_instance_metadata). Each runs inside the caller's transaction.

Metadata is user data about the server (key/values, 1-255 and 0-255 characters), capped by the project's
``metadata_items`` quota (Nova's default 128, 403 when over) and changeable only in the states Nova allows
(active, paused, suspended, stopped, with no task running).
"""

from __future__ import annotations

from typing import Any

from kvmfleet import quota
from kvmfleet.compute.errors import InvalidInstanceState, InvalidRequest
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Instance
from kvmfleet.store.states import VmState

DEFAULT_METADATA_ITEMS = 128
METADATA_STATES = (VmState.ACTIVE, VmState.PAUSED, VmState.SUSPENDED, VmState.STOPPED)


def update_server(session: Any, inst: Instance, *, name: str | None = None, description: Any = ...) -> Instance:
    """Rename and/or (re)describe (``description=None`` clears it)."""
    from kvmfleet.compute.common import validate_description, validate_display_name

    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = validate_display_name(name)
    if description is not ...:
        validate_description(description)
        values["description"] = description
    if values:
        store_api.save_instance(session, inst.uuid, values)
        session.refresh(inst)
    return inst


def _check_state(inst: Instance, action: str) -> None:
    vm = VmState(inst.vm_state)
    if inst.task_state is not None:
        raise InvalidInstanceState(f"Cannot '{action}' instance {inst.uuid} while it is in task_state "
                                   f"{inst.task_state}", vm_state=vm.value, task_state=str(inst.task_state))
    if vm not in METADATA_STATES:
        raise InvalidInstanceState(f"Cannot '{action}' instance {inst.uuid} while it is in vm_state {vm.value}",
                                   vm_state=vm.value, task_state=None)


def metadata_limit(session: Any, project_id: str) -> int:
    return int(quota.all_limits(session, project_id).get("metadata_items", DEFAULT_METADATA_ITEMS))


def check_metadata(session: Any, project_id: str, metadata: dict[str, Any]) -> None:
    """Nova's _check_metadata_properties_quota: every item 1-255 / 0-255 characters, at most metadata_items."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise InvalidRequest("Metadata property key must be 1-255 characters")
        if not isinstance(value, str) or len(value) > 255:
            raise InvalidRequest("Metadata property value must be a string of at most 255 characters")
    limit = metadata_limit(session, project_id)
    if limit != quota.UNLIMITED and len(metadata) > limit:
        project = store_api.get_project(session, project_id)
        raise quota.OverQuota(project.name, [{"resource": "metadata_items", "requested": len(metadata),
                                              "used": 0, "limit": limit}])


def set_metadata(session: Any, inst: Instance, items: dict[str, str], replace: bool = False,
                 action: str = "update metadata") -> dict[str, str]:
    """Merge `items` into the server's metadata (``replace``: they become all of it). Returns the result."""
    _check_state(inst, action)
    merged = dict(items) if replace else {**(inst.metadata_ or {}), **items}
    check_metadata(session, inst.project_id, merged)
    _save_metadata(session, inst, merged)
    return dict(inst.metadata_ or {})


def delete_metadata(session: Any, inst: Instance, key: str) -> None:
    """Remove one item; NotFound-like InvalidRequest is the caller's to give (it checks the key first)."""
    _check_state(inst, "delete metadata")
    remaining = {k: v for k, v in (inst.metadata_ or {}).items() if k != key}
    _save_metadata(session, inst, remaining)


def _save_metadata(session: Any, inst: Instance, metadata: dict[str, str]) -> None:
    """Compare-and-set on (no task, the vm_state seen): a task that started meanwhile wins, nothing is written.
    (A Core UPDATE: the ORM reads ``metadata`` as the declarative MetaData, not the column.)"""
    from sqlalchemy import update

    table = Instance.__table__
    result = session.execute(update(table).where(table.c.uuid == inst.uuid, table.c.task_state.is_(None),
                                                 table.c.vm_state == VmState(inst.vm_state).value,
                                                 table.c.deleted_at.is_(None)).values({"metadata": metadata}))
    if result.rowcount != 1:
        session.refresh(inst)
        _check_state(inst, "update metadata")
        raise InvalidInstanceState(f"Instance {inst.uuid} changed state while its metadata was being updated",
                                   vm_state=str(inst.vm_state), task_state=None)
    session.refresh(inst)


def rebuild_fields(session: Any, inst: Instance, user_id: str | None, **fields: Any) -> Instance:
    """What a rebuild request changes besides the image, recorded before its task is submitted: name,
    description, metadata (replaced), key_name (None clears it; one of the user's key pairs), user_data
    (None clears it)."""
    values: dict[str, Any] = {}
    if "name" in fields:
        update_server(session, inst, name=fields["name"])
    if "description" in fields:
        update_server(session, inst, description=fields["description"])
    if "metadata" in fields:
        check_metadata(session, inst.project_id, dict(fields["metadata"] or {}))
        session.execute(Instance.__table__.update().where(Instance.__table__.c.uuid == inst.uuid)
                        .values({"metadata": dict(fields["metadata"] or {})}))
    if "key_name" in fields:
        if fields["key_name"] is not None:
            _user_key_pair(session, fields["key_name"], user_id)
        values["key_name"] = fields["key_name"]
    if "user_data" in fields:
        config = dict(inst.config or {})
        if fields["user_data"] is None:
            config.pop("user_data", None)
        else:
            config["user_data"] = fields["user_data"]
        values["config"] = config
    if values:
        store_api.save_instance(session, inst.uuid, values)
    session.refresh(inst)
    return inst


def _user_key_pair(session: Any, name: str, user_id: str | None) -> None:
    from sqlalchemy import select

    from kvmfleet.store.models import KeyPair

    query = select(KeyPair.id).where(KeyPair.name == name)
    if user_id is not None:
        query = query.where(KeyPair.user_id == user_id)
    if session.scalars(query).first() is None:
        raise InvalidRequest("Invalid key_name provided.", key_name=name)
