"""Keystone projects over the store's projects (kvmfleet.store.resources keeps the naming rules and the
delete checks, so the CLI, Nova's quotas and Keystone share one table). Projects made by the CLI before
identity existed are in the Default domain already (``projects.domain_id`` defaults to "default")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.identity._common import check_bool, check_text
from kvmfleet.identity.domains import DEFAULT_DOMAIN_ID, get_domain
from kvmfleet.store import resources
from kvmfleet.store.errors import AlreadyExists, InvalidInput, NotFound
from kvmfleet.store.models import Project, RoleAssignment


def get_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id}.", project=project_id)
    return project


def find_project(session: Session, *, project_id: str | None = None, name: str | None = None,
                 domain_id: str | None = None) -> Project:
    """By id, or by name within a domain (Keystone's rule: a name needs its domain)."""
    if project_id is not None:
        return get_project(session, project_id)
    query = select(Project).where(Project.name == name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    project = session.scalars(query).first()
    if project is None:
        raise NotFound(f"Could not find project: {name}.", project=name)
    return project


def find_project_cli(session: Session, key: str) -> Project:
    """The CLI's lookup: id or name (names are unique here)."""
    from kvmfleet.store.api import get_project as by_id_or_name

    return by_id_or_name(session, key)


def list_projects(session: Session, *, name: str | None = None, domain_id: str | None = None,
                  enabled: bool | None = None, ids: list[str] | None = None) -> list[Project]:
    query = select(Project).order_by(Project.name)
    if name is not None:
        query = query.where(Project.name == name)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if enabled is not None:
        query = query.where(Project.enabled.is_(enabled))
    if ids is not None:
        query = query.where(Project.id.in_(ids))
    return list(session.scalars(query))


def create_project(session: Session, name: str, *, domain_id: str | None = None, description: str | None = None,
                   enabled: bool = True, project_id: str | None = None) -> Project:
    domain_id = domain_id or DEFAULT_DOMAIN_ID
    get_domain(session, domain_id)
    check_bool(enabled, "enabled")
    check_text(description, "description")
    existing = session.scalars(select(Project).where(Project.name == name)).first()
    if existing is not None:
        raise AlreadyExists(f"Conflict occurred attempting to store project - it is not permitted to have two "
                            f"projects with the same name: {name}.", project=name)
    return resources.create_project(session, name, description or "", enabled, domain_id=domain_id,
                                    project_id=project_id)


def update_project(session: Session, project_id: str, *, name: str | None = None, description: Any = None,
                   enabled: bool | None = None, domain_id: str | None = None) -> Project:
    project = get_project(session, project_id)
    if domain_id is not None and domain_id != project.domain_id:
        raise InvalidInput("Update of `domain_id` is not allowed.")
    if name is not None and name != project.name:
        resources.validate_name(name, "project")
        if session.scalars(select(Project).where(Project.name == name, Project.id != project.id)).first():
            raise AlreadyExists(f"Conflict occurred attempting to store project - it is not permitted to have two "
                                f"projects with the same name: {name}.", project=name)
        project.name = name
    if description is not None:
        project.description = check_text(description, "description") or ""
    if enabled is not None:
        project.enabled = check_bool(enabled, "enabled")
    session.flush()
    return project


def delete_project(session: Session, project_id: str) -> Project:
    """Delete a project with no live instances and no images (the store's rule); its role assignments
    and tokens go with it (foreign keys cascade)."""
    project = get_project(session, project_id)
    return resources.delete_project(session, project.id)


def user_project_ids(session: Session, user_id: str) -> list[str]:
    """The projects a user holds any role on (Keystone's GET /v3/users/{id}/projects, /v3/auth/projects)."""
    rows = session.execute(select(RoleAssignment.project_id).distinct()
                           .where(RoleAssignment.user_id == user_id, RoleAssignment.project_id.is_not(None)))
    return [r[0] for r in rows]
