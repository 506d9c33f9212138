"""Server groups as the compute API manages them (nova/api/openstack/compute/server_groups.py): created
within the project's server_groups quota, looked up by id within the caller's project (another
project's group is NotFound) or anywhere for admins. Validation and the rows themselves are
kvmfleet.store.resources' (the CLI calls the same functions). All run inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet import quota
from kvmfleet.store import resources
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import ServerGroup


def create(session: Session, name: str, policy: str, project_id: str, user_id: str | None,
           max_server_per_host: int | None = None) -> ServerGroup:
    """OverQuota past the project's server_groups limit; InvalidInput for a bad name or policy/rule."""
    quota.check_server_groups(session, project_id)
    return resources.create_server_group(session, name, policy, project_id, max_server_per_host, user_id=user_id)


def get(session: Session, group_id: str, project_id: str | None) -> ServerGroup:
    """A group by id; ``project_id`` None (an admin) finds any project's."""
    group = session.get(ServerGroup, group_id)
    if group is None or (project_id is not None and group.project_id != project_id):
        raise NotFound(f"Instance group {group_id} could not be found.", server_group=group_id)
    return group


def page(session: Session, project_id: str | None, limit: int | None = None, offset: int = 0) -> list[ServerGroup]:
    """The project's groups (every project's with ``project_id`` None), oldest first, as Nova's limited()."""
    stmt = select(ServerGroup).order_by(ServerGroup.created_at, ServerGroup.id)
    if project_id is not None:
        stmt = stmt.where(ServerGroup.project_id == project_id)
    stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt).all())


def delete(session: Session, group_id: str, project_id: str | None) -> ServerGroup:
    """Delete a group; its members simply leave it (as in Nova)."""
    group = get(session, group_id, project_id)
    session.delete(group)
    session.flush()
    return group
