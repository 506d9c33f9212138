"""Store operations shared by every caller: compare-and-set instance saves and lookups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from kvmfleet.store.errors import InvalidInput, NotFound, UnexpectedTaskState, UnexpectedVmState
from kvmfleet.store.models import Flavor, Host, Image, Instance, Project, ServerGroup, utcnow
from kvmfleet.store.states import TaskState, VmState


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


def _expected(values: Any) -> list[Any]:
    if isinstance(values, (list, tuple, set, frozenset)):
        return list(values)
    return [values]


def _match(column: Any, expected: Any) -> Any:
    """``column IS NULL`` / ``column IN (...)`` for one expected value or a collection of them."""
    wanted = _expected(expected)
    concrete = [v for v in wanted if v is not None]
    clauses = []
    if None in wanted:
        clauses.append(column.is_(None))
    if concrete:
        clauses.append(column.in_(concrete))
    return or_(*clauses)


def _show(values: Any) -> str:
    wanted = _expected(values)
    shown = ["None" if v is None else str(getattr(v, "value", v)) for v in wanted]
    return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)


def save_instance(session: Session, instance_uuid: str, values: Mapping[str, Any], *,
                  expected_task_state: Any = UNSET, expected_vm_state: Any = UNSET) -> Instance:
    """Update one instance with compare-and-set: ``UPDATE instances SET ... WHERE uuid=? AND task_state
    IS <expected> [AND vm_state IN <expected>]``. ``expected_*`` is one value (``None`` = no task), or a
    list/tuple of acceptable values; omitted = not checked. When no row matches, nothing is written and
    UnexpectedTaskState / UnexpectedVmState (naming actual and expected) or NotFound is raised.
    Runs inside the caller's transaction; returns the refreshed instance."""
    if not values:
        raise InvalidInput("save_instance: no values to save")
    columns = set(Instance.__table__.columns.keys())
    unknown = sorted(set(values) - columns)
    if unknown:
        raise InvalidInput(f"save_instance: unknown instance field(s): {', '.join(unknown)}")
    stmt = update(Instance).where(Instance.uuid == instance_uuid, Instance.deleted_at.is_(None))
    if expected_task_state is not UNSET:
        stmt = stmt.where(_match(Instance.task_state, expected_task_state))
    if expected_vm_state is not UNSET:
        stmt = stmt.where(_match(Instance.vm_state, expected_vm_state))
    row_values = dict(values)
    row_values.setdefault("updated_at", utcnow())
    result = session.execute(stmt.values(**row_values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        actual = session.execute(
            select(Instance.vm_state, Instance.task_state, Instance.deleted_at).where(Instance.uuid == instance_uuid)
        ).first()
        if actual is None or actual.deleted_at is not None:
            raise NotFound(f"instance {instance_uuid} not found", instance_uuid=instance_uuid)
        if expected_task_state is not UNSET and actual.task_state not in _expected(expected_task_state):
            raise UnexpectedTaskState(
                f"instance {instance_uuid}: task_state is {_show(actual.task_state)}, expected "
                f"{_show(expected_task_state)}; not saved", instance_uuid=instance_uuid,
                actual=actual.task_state, expected=expected_task_state)
        raise UnexpectedVmState(
            f"instance {instance_uuid}: vm_state is {_show(actual.vm_state)}, expected "
            f"{_show(expected_vm_state)}; not saved", instance_uuid=instance_uuid,
            actual=actual.vm_state, expected=expected_vm_state)
    instance = session.get(Instance, instance_uuid, populate_existing=True)
    if instance is None:  # deleted between our UPDATE and this read: impossible inside one transaction
        raise NotFound(f"instance {instance_uuid} not found", instance_uuid=instance_uuid)
    return instance


def set_fault(session: Session, instance_uuid: str, message: str, details: str | None = None, **cas: Any) -> Instance:
    """Record an instance fault (message, details, created_at) — with the same CAS options as save_instance."""
    return save_instance(session, instance_uuid, {"fault_message": message, "fault_details": details,
                                                  "fault_created_at": utcnow()}, **cas)


def get_instance(session: Session, instance_uuid: str, *, deleted: bool = False) -> Instance:
    instance = session.get(Instance, instance_uuid)
    if instance is None or (instance.deleted_at is not None and not deleted):
        raise NotFound(f"instance {instance_uuid} not found", instance_uuid=instance_uuid)
    return instance


def _by_id_or_name(session: Session, model: Any, key: str, what: str, id_col: Any, name_col: Any,
                   extra: Iterable[Any] = ()) -> Any:
    row = session.get(model, key)
    if row is not None:
        return row
    rows = session.scalars(select(model).where(name_col == key, *extra)).all()
    if not rows:
        raise NotFound(f"{what} {key} not found", **{what.replace(' ', '_'): key})
    if len(rows) > 1:
        ids = ", ".join(str(getattr(r, id_col.key)) for r in rows)
        raise InvalidInput(f"{what} name {key} is ambiguous ({ids}): use the id")
    return rows[0]


def get_project(session: Session, key: str) -> Project:
    """A project by id or name."""
    return _by_id_or_name(session, Project, key, "project", Project.id, Project.name)


def get_flavor(session: Session, key: str) -> Flavor:
    """A flavor by flavorid or name."""
    return _by_id_or_name(session, Flavor, key, "flavor", Flavor.id, Flavor.name)


def get_image(session: Session, key: str) -> Image:
    """An image by id or name (a name never finds a deleted image)."""
    return _by_id_or_name(session, Image, key, "image", Image.id, Image.name, [Image.status != "deleted"])


def get_host(session: Session, name: str) -> Host:
    host = session.scalars(select(Host).where(Host.name == name)).first()
    if host is None:
        raise NotFound(f"host {name} not found", host=name)
    return host


def lock_server_group(session: Session, group_id: str) -> None:
    """Hold the server group's row lock until the transaction ends (SELECT ... FOR UPDATE on PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises writers). Take it before the late affinity check and the
    claim, so two members placed at once see each other."""
    found = session.execute(select(ServerGroup.id).where(ServerGroup.id == group_id).with_for_update()).first()
    if found is None:
        raise NotFound(f"server group {group_id} not found", server_group=group_id)


def get_server_group(session: Session, key: str, project_id: str | None = None) -> ServerGroup:
    """A server group by id, or by name (within ``project_id`` when given)."""
    extra = [ServerGroup.project_id == project_id] if project_id else []
    return _by_id_or_name(session, ServerGroup, key, "server group", ServerGroup.id, ServerGroup.name, extra)


__all__ = [
    "UNSET",
    "TaskState",
    "VmState",
    "get_flavor",
    "get_host",
    "get_image",
    "get_instance",
    "get_project",
    "get_server_group",
    "lock_server_group",
    "save_instance",
    "set_fault",
]
