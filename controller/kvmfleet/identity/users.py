"""Keystone users: bcrypt password hashes (kvmfleet.identity.passwords), names unique within a domain.
A password change or disabling a user revokes the user's tokens (as Keystone does)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.identity import passwords, tokens
from kvmfleet.identity._common import check_bool, check_name, check_text, new_id
from kvmfleet.identity.domains import DEFAULT_DOMAIN_ID, get_domain
from kvmfleet.identity.errors import AuthFailed
from kvmfleet.store.errors import AlreadyExists, InvalidInput, NotFound
from kvmfleet.store.models import Project, User

_UNSET: Any = object()


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id}.", user=user_id)
    return user


def find_user(session: Session, *, user_id: str | None = None, name: str | None = None,
              domain_id: str | None = None) -> User:
    """By id, or by name within a domain (Default when not given)."""
    if user_id is not None:
        return get_user(session, user_id)
    user = session.scalars(select(User).where(User.name == name,
                                              User.domain_id == (domain_id or DEFAULT_DOMAIN_ID))).first()
    if user is None:
        raise NotFound(f"Could not find user: {name}.", user=name)
    return user


def find_user_cli(session: Session, key: str, domain_id: str | None = None) -> User:
    """The CLI's lookup: an id, or a name in the domain (Default)."""
    user = session.get(User, key)
    if user is not None:
        return user
    return find_user(session, name=key, domain_id=domain_id)


def list_users(session: Session, *, name: str | None = None, domain_id: str | None = None,
               enabled: bool | None = None) -> list[User]:
    query = select(User).order_by(User.name)
    if name is not None:
        query = query.where(User.name == name)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    if enabled is not None:
        query = query.where(User.enabled.is_(enabled))
    return list(session.scalars(query))


def _check_default_project(session: Session, project_id: Any) -> str | None:
    if project_id is None:
        return None
    if not isinstance(project_id, str) or session.get(Project, project_id) is None:
        raise NotFound(f"Could not find project: {project_id}.", project=project_id)
    return project_id


def create_user(session: Session, name: str, *, password: str | None = None, domain_id: str | None = None,
                enabled: bool = True, default_project_id: str | None = None, email: str | None = None,
                description: str | None = None, options: dict[str, Any] | None = None) -> User:
    check_name(name, "user")
    domain_id = domain_id or DEFAULT_DOMAIN_ID
    get_domain(session, domain_id)
    check_bool(enabled, "enabled")
    check_text(email, "email", 255)
    check_text(description, "description")
    if session.scalars(select(User).where(User.name == name, User.domain_id == domain_id)).first() is not None:
        raise AlreadyExists(f"Conflict occurred attempting to store user - Duplicate entry found with name {name} "
                            f"at domain ID {domain_id}.", user=name)
    user = User(id=new_id(), name=name, domain_id=domain_id, enabled=enabled,
                password_hash=passwords.hash_password(password) if password is not None else None,
                default_project_id=_check_default_project(session, default_project_id), email=email,
                description=description, options=dict(options or {}))
    session.add(user)
    session.flush()
    return user


def update_user(session: Session, user_id: str, *, name: str | None = None, password: Any = _UNSET,
                enabled: bool | None = None, default_project_id: Any = _UNSET, email: Any = _UNSET,
                description: Any = _UNSET, domain_id: str | None = None) -> User:
    user = get_user(session, user_id)
    if domain_id is not None and domain_id != user.domain_id:
        raise InvalidInput("Update of `domain_id` is not allowed.")
    if name is not None and name != user.name:
        check_name(name, "user")
        clash = session.scalars(select(User).where(User.name == name, User.domain_id == user.domain_id,
                                                   User.id != user.id)).first()
        if clash is not None:
            raise AlreadyExists(f"Conflict occurred attempting to store user - Duplicate entry found with name "
                                f"{name} at domain ID {user.domain_id}.", user=name)
        user.name = name
    if password is not _UNSET:
        set_password(session, user, password)
    if enabled is not None:
        user.enabled = check_bool(enabled, "enabled")
        if not enabled:
            tokens.revoke_user_tokens(session, user.id)
    if default_project_id is not _UNSET:
        user.default_project_id = _check_default_project(session, default_project_id)
    if email is not _UNSET:
        user.email = check_text(email, "email", 255)
    if description is not _UNSET:
        user.description = check_text(description, "description")
    session.flush()
    return user


def set_password(session: Session, user: User, password: str | None) -> None:
    """Set (or, with None, remove) a user's password; the user's tokens are revoked."""
    user.password_hash = passwords.hash_password(password) if password is not None else None
    tokens.revoke_user_tokens(session, user.id)


def change_own_password(session: Session, user_id: str, original_password: Any, password: Any) -> User:
    """POST /v3/users/{id}/password: the original password must match (401 otherwise)."""
    user = get_user(session, user_id)
    passwords.check_acceptable(password)
    if not isinstance(original_password, str) or not passwords.verify(original_password, user.password_hash):
        raise AuthFailed()
    set_password(session, user, password)
    session.flush()
    return user


def delete_user(session: Session, user_id: str) -> User:
    """Its role assignments and tokens go with it (foreign keys cascade)."""
    user = get_user(session, user_id)
    session.delete(user)
    session.flush()
    return user


def check_password(session: Session, user: User, password: Any) -> None:
    """AuthFailed unless ``password`` is the user's and the user (and its domain) is enabled."""
    ok = isinstance(password, str) and passwords.verify(password, user.password_hash)
    if not ok or not user.enabled or not get_domain(session, user.domain_id).enabled:
        raise AuthFailed()
