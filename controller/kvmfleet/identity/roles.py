"""Keystone roles and role assignments (a user's role on a project or on a domain).

Roles imply others as ``keystone-manage bootstrap`` sets them up: admin > manager > member > reader.
``implied(names)`` expands them (what Keystone lists in a token and what `effective` assignments show).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.identity._common import check_name, check_text, new_id
from kvmfleet.store.errors import AlreadyExists, NotFound
from kvmfleet.store.models import Domain, Project, Role, RoleAssignment, User

DEFAULT_ROLES = ("admin", "manager", "member", "reader", "service")
IMPLIES: dict[str, tuple[str, ...]] = {"admin": ("manager",), "manager": ("member",), "member": ("reader",)}


def implied(names: list[str] | tuple[str, ...]) -> list[str]:
    """The names given plus every role they imply, in a stable order (given ones first)."""
    out: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name not in out:
            out.append(name)
            todo.extend(IMPLIES.get(name, ()))
    return out


def get_role(session: Session, role_id: str) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFound(f"Could not find role: {role_id}.", role=role_id)
    return role


def find_role(session: Session, key: str) -> Role:
    """By id or name."""
    role = session.get(Role, key) or session.scalars(select(Role).where(Role.name == key)).first()
    if role is None:
        raise NotFound(f"Could not find role: {key}.", role=key)
    return role


def list_roles(session: Session, name: str | None = None) -> list[Role]:
    query = select(Role).order_by(Role.name)
    if name is not None:
        query = query.where(Role.name == name)
    return list(session.scalars(query))


def create_role(session: Session, name: str, description: str | None = None, role_id: str | None = None) -> Role:
    check_name(name, "role")
    check_text(description, "description")
    if session.scalars(select(Role).where(Role.name == name)).first() is not None:
        raise AlreadyExists(f"Conflict occurred attempting to store role - Duplicate entry found with name {name}.",
                            role=name)
    role = Role(id=role_id or new_id(), name=name, description=description, options={})
    session.add(role)
    session.flush()
    return role


def update_role(session: Session, role_id: str, *, name: str | None = None, description: str | None = None) -> Role:
    role = get_role(session, role_id)
    if name is not None and name != role.name:
        check_name(name, "role")
        if session.scalars(select(Role).where(Role.name == name, Role.id != role.id)).first() is not None:
            raise AlreadyExists(f"Conflict occurred attempting to store role - Duplicate entry found with name "
                                f"{name}.", role=name)
        role.name = name
    if description is not None:
        role.description = check_text(description, "description")
    session.flush()
    return role


def delete_role(session: Session, role_id: str) -> Role:
    """Its assignments go with it (foreign key cascade)."""
    role = get_role(session, role_id)
    session.delete(role)
    session.flush()
    return role


def _target(project_id: str | None, domain_id: str | None) -> tuple[str | None, str | None]:
    if (project_id is None) == (domain_id is None):
        raise ValueError("an assignment targets a project or a domain")
    return project_id, domain_id


def _check_target(session: Session, user_id: str, role_id: str, project_id: str | None,
                  domain_id: str | None) -> None:
    if session.get(User, user_id) is None:
        raise NotFound(f"Could not find user: {user_id}.", user=user_id)
    get_role(session, role_id)
    if project_id is not None and session.get(Project, project_id) is None:
        raise NotFound(f"Could not find project: {project_id}.", project=project_id)
    if domain_id is not None and session.get(Domain, domain_id) is None:
        raise NotFound(f"Could not find domain: {domain_id}.", domain=domain_id)


def _assignment(session: Session, user_id: str, role_id: str, project_id: str | None,
                domain_id: str | None) -> RoleAssignment | None:
    query = select(RoleAssignment).where(RoleAssignment.user_id == user_id, RoleAssignment.role_id == role_id)
    if project_id is not None:
        query = query.where(RoleAssignment.project_id == project_id)
    else:
        query = query.where(RoleAssignment.domain_id == domain_id)
    return session.scalars(query).first()


def grant(session: Session, user_id: str, role_id: str, *, project_id: str | None = None,
          domain_id: str | None = None) -> RoleAssignment:
    """Give a user a role on a project or domain; granting one it holds already is a no-op (Keystone: 204)."""
    project_id, domain_id = _target(project_id, domain_id)
    _check_target(session, user_id, role_id, project_id, domain_id)
    existing = _assignment(session, user_id, role_id, project_id, domain_id)
    if existing is not None:
        return existing
    assignment = RoleAssignment(user_id=user_id, role_id=role_id, project_id=project_id, domain_id=domain_id)
    session.add(assignment)
    session.flush()
    return assignment


def check(session: Session, user_id: str, role_id: str, *, project_id: str | None = None,
          domain_id: str | None = None) -> None:
    """NotFound unless the user holds the role there (HEAD/GET of a grant)."""
    project_id, domain_id = _target(project_id, domain_id)
    _check_target(session, user_id, role_id, project_id, domain_id)
    if _assignment(session, user_id, role_id, project_id, domain_id) is None:
        where = f"project {project_id}" if project_id else f"domain {domain_id}"
        raise NotFound(f"Could not find role assignment with role: {role_id}, user or group: {user_id}, "
                       f"project, domain, or system: {project_id or domain_id}.", target=where)


def revoke(session: Session, user_id: str, role_id: str, *, project_id: str | None = None,
           domain_id: str | None = None) -> None:
    """Take a role away (NotFound when not held). Tokens on that scope lose it at once: roles are read
    on every validation."""
    check(session, user_id, role_id, project_id=project_id, domain_id=domain_id)
    assignment = _assignment(session, user_id, role_id, project_id, domain_id)
    session.delete(assignment)
    session.flush()


def roles_on(session: Session, user_id: str, *, project_id: str | None = None,
             domain_id: str | None = None) -> list[Role]:
    """The roles a user holds directly on a project or a domain."""
    project_id, domain_id = _target(project_id, domain_id)
    query = select(Role).join(RoleAssignment, RoleAssignment.role_id == Role.id).where(
        RoleAssignment.user_id == user_id).order_by(Role.name)
    if project_id is not None:
        query = query.where(RoleAssignment.project_id == project_id)
    else:
        query = query.where(RoleAssignment.domain_id == domain_id)
    return list(session.scalars(query))


@dataclass(frozen=True)
class Assignment:
    role: Role
    user: User
    project: Project | None
    domain: Domain | None
    implied_from: Role | None = None  # set for an effective assignment made by an implied role


def list_assignments(session: Session, *, user_id: str | None = None, project_id: str | None = None,
                     domain_id: str | None = None, role_id: str | None = None,
                     effective: bool = False) -> list[Assignment]:
    """GET /v3/role_assignments: filters by user, scope and role; ``effective`` expands implied roles
    (then the role filter applies to the expanded role, as Keystone)."""
    query = (select(RoleAssignment, Role, User)
             .join(Role, Role.id == RoleAssignment.role_id).join(User, User.id == RoleAssignment.user_id)
             .order_by(User.name, Role.name, RoleAssignment.id))
    if user_id is not None:
        query = query.where(RoleAssignment.user_id == user_id)
    if project_id is not None:
        query = query.where(RoleAssignment.project_id == project_id)
    if domain_id is not None:
        query = query.where(RoleAssignment.domain_id == domain_id)
    if role_id is not None and not effective:
        query = query.where(RoleAssignment.role_id == role_id)
    out: list[Assignment] = []
    roles_by_name: dict[str, Role] | None = None
    for ra, role, user in session.execute(query):
        project = session.get(Project, ra.project_id) if ra.project_id else None
        domain = session.get(Domain, ra.domain_id) if ra.domain_id else None
        out.append(Assignment(role, user, project, domain))
        if effective:
            if roles_by_name is None:
                roles_by_name = {r.name: r for r in session.scalars(select(Role))}
            for name in implied([role.name])[1:]:
                if name in roles_by_name:
                    out.append(Assignment(roles_by_name[name], user, project, domain, implied_from=role))
    if effective:
        seen: set[tuple[str, str, str | None, str | None]] = set()
        unique: list[Assignment] = []
        for a in out:
            key = (a.role.id, a.user.id, a.project.id if a.project else None, a.domain.id if a.domain else None)
            if key not in seen and (role_id is None or a.role.id == role_id):
                seen.add(key)
                unique.append(a)
        out = unique
    return out
