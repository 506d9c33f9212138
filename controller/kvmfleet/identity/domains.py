"""Keystone domains. ``default`` (name Default) is made by bootstrap and, as in Keystone, cannot be
deleted while enabled; a domain that owns users or projects cannot be deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet.identity._common import check_bool, check_name, check_text, new_id
from kvmfleet.identity.errors import IdentityForbidden
from kvmfleet.store.errors import AlreadyExists, NotFound
from kvmfleet.store.models import Domain, Project, User

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


def get_domain(session: Session, domain_id: str) -> Domain:
    domain = session.get(Domain, domain_id)
    if domain is None:
        raise NotFound(f"Could not find domain: {domain_id}.", domain=domain_id)
    return domain


def find_domain(session: Session, *, domain_id: str | None = None, name: str | None = None) -> Domain:
    """A domain by id, or by name."""
    if domain_id is not None:
        return get_domain(session, domain_id)
    domain = session.scalars(select(Domain).where(Domain.name == name)).first()
    if domain is None:
        raise NotFound(f"Could not find domain: {name}.", domain=name)
    return domain


def list_domains(session: Session, name: str | None = None, enabled: bool | None = None) -> list[Domain]:
    query = select(Domain).order_by(Domain.name)
    if name is not None:
        query = query.where(Domain.name == name)
    if enabled is not None:
        query = query.where(Domain.enabled.is_(enabled))
    return list(session.scalars(query))


def create_domain(session: Session, name: str, description: str | None = None, enabled: bool = True,
                  domain_id: str | None = None) -> Domain:
    check_name(name, "domain", 64)
    check_bool(enabled, "enabled")
    check_text(description, "description")
    if session.scalars(select(Domain).where(func.lower(Domain.name) == name.lower())).first() is not None:
        raise AlreadyExists(f"Conflict occurred attempting to store domain - Duplicate entry found with name {name}.",
                            domain=name)
    if domain_id is not None and session.get(Domain, domain_id) is not None:
        raise AlreadyExists(f"Conflict occurred attempting to store domain - Duplicate ID, {domain_id}.")
    domain = Domain(id=domain_id or new_id(), name=name, description=description or "", enabled=enabled)
    session.add(domain)
    session.flush()
    return domain


def update_domain(session: Session, domain_id: str, *, name: str | None = None, description: Any = None,
                  enabled: bool | None = None) -> Domain:
    domain = get_domain(session, domain_id)
    if name is not None and name != domain.name:
        check_name(name, "domain", 64)
        clash = session.scalars(select(Domain).where(func.lower(Domain.name) == name.lower(),
                                                     Domain.id != domain.id)).first()
        if clash is not None:
            raise AlreadyExists(f"Conflict occurred attempting to store domain - Duplicate entry found with name "
                                f"{name}.", domain=name)
        domain.name = name
    if description is not None:
        domain.description = check_text(description, "description") or ""
    if enabled is not None:
        domain.enabled = check_bool(enabled, "enabled")
    session.flush()
    return domain


def delete_domain(session: Session, domain_id: str) -> Domain:
    """Keystone: an enabled domain cannot be deleted (disable it first: 403); its projects and users go
    with it (a project that still has instances or images refuses, 409, and nothing is deleted)."""
    from kvmfleet.store.resources import delete_project

    domain = get_domain(session, domain_id)
    if domain.enabled:
        raise IdentityForbidden("Cannot delete a domain that is enabled, please disable it first.",
                                domain=domain_id)
    for project in session.scalars(select(Project).where(Project.domain_id == domain.id)).all():
        delete_project(session, project.id)
    for user in session.scalars(select(User).where(User.domain_id == domain.id)).all():
        session.delete(user)
    session.flush()
    session.delete(domain)
    session.flush()
    return domain


def find_domain_cli(session: Session, key: str) -> Domain:
    """The CLI's lookup: an id or a name."""
    return session.get(Domain, key) or find_domain(session, name=key)
