"""POST /v3/auth/tokens: authenticate by password and/or token, choose the scope, issue a token.

    token, info = authenticate(store, {"identity": {...}, "scope": {...}})   # the body's "auth" object

The body has been checked against the API's schema (shape); here are Keystone's rules:

- ``password``: the user by id, or by name with its domain (id or name); the password must match and the
  user and its domain be enabled. bcrypt runs outside any transaction (it is slow by design).
- ``token``: a valid token of the same user (rescoping); the new token never outlives it and carries its
  audit id; methods become ["token", <its methods>].
- scope: a project (by id, or name + domain), a domain (id or name), ``"unscoped"``, or none: then the
  user's default project when the user holds a role there, else unscoped (Keystone's default scoping).
  A scope the user holds no role on, or that is disabled or unknown, is a 401 with Keystone's one message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from kvmfleet.identity import passwords, tokens
from kvmfleet.identity.domains import find_domain
from kvmfleet.identity.errors import AuthFailed
from kvmfleet.identity.projects import find_project
from kvmfleet.identity.roles import roles_on
from kvmfleet.identity.users import find_user
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Domain, Project, User


def _domain_of(session: Session, ref: dict[str, Any] | None) -> Domain:
    if not ref:
        raise AuthFailed()
    try:
        domain = find_domain(session, domain_id=ref.get("id"), name=ref.get("name") if "id" not in ref else None)
    except NotFound:
        raise AuthFailed() from None
    if not domain.enabled:
        raise AuthFailed()
    return domain


def _password_user(session: Session, data: dict[str, Any]) -> tuple[str, str | None]:
    """The user's id and password hash (or AuthFailed)."""
    ref = data.get("user") or {}
    try:
        if "id" in ref:
            user = find_user(session, user_id=ref["id"])
        else:
            user = find_user(session, name=ref.get("name"), domain_id=_domain_of(session, ref.get("domain")).id)
    except NotFound:
        raise AuthFailed() from None
    return user.id, user.password_hash


def _scope(session: Session, user: User, scope: Any) -> tuple[Project | None, Domain | None]:
    if scope == "unscoped":
        return None, None
    if not scope:
        return _default_scope(session, user), None
    if "system" in scope:
        raise AuthFailed()  # no system-scoped role assignments here
    if "project" in scope:
        ref = scope["project"]
        try:
            if "id" in ref:
                project = find_project(session, project_id=ref["id"])
            else:
                project = find_project(session, name=ref.get("name"),
                                       domain_id=_domain_of(session, ref.get("domain")).id)
        except NotFound:
            raise AuthFailed() from None
        if not project.enabled or not _domain_of(session, {"id": project.domain_id}).enabled:
            raise AuthFailed()
        if not roles_on(session, user.id, project_id=project.id):
            raise AuthFailed()
        return project, None
    if "domain" in scope:
        domain = _domain_of(session, scope["domain"])
        if not roles_on(session, user.id, domain_id=domain.id):
            raise AuthFailed()
        return None, domain
    raise AuthFailed()


def _default_scope(session: Session, user: User) -> Project | None:
    if not user.default_project_id:
        return None
    project = session.get(Project, user.default_project_id)
    if project is None or not project.enabled:
        return None
    domain = session.get(Domain, project.domain_id)
    if domain is None or not domain.enabled or not roles_on(session, user.id, project_id=project.id):
        return None
    return project


def authenticate(store: Any, auth: dict[str, Any]) -> tuple[str, tokens.TokenInfo]:
    identity = auth.get("identity") or {}
    methods = list(dict.fromkeys(identity.get("methods") or []))
    if not methods or any(m not in ("password", "token") for m in methods):
        raise AuthFailed()
    for m in methods:
        if m not in identity:
            raise AuthFailed()
    user_id: str | None = None
    parent: tokens.TokenInfo | None = None
    if "token" in methods:
        parent = tokens.validate(store, (identity["token"] or {}).get("id"))
        user_id = parent.user_id
    if "password" in methods:
        data = identity["password"] or {}
        with store.session() as session:
            pw_user_id, pw_hash = _password_user(session, data)
            session.rollback()
        if not passwords.verify(data.get("user", {}).get("password"), pw_hash):
            raise AuthFailed()
        if user_id is not None and user_id != pw_user_id:
            raise AuthFailed()
        user_id = pw_user_id
    if user_id is None:
        raise AuthFailed()
    token_methods = (["token"] + [m for m in parent.methods if m != "token"]) if parent else []
    if "password" in methods and "password" not in token_methods:
        token_methods.append("password")

    def run(session: Session) -> tuple[str, tokens.TokenInfo]:
        user = session.get(User, user_id)
        if user is None or not user.enabled or not _domain_of(session, {"id": user.domain_id}).enabled:
            raise AuthFailed()
        project, domain = _scope(session, user, auth.get("scope"))
        return tokens.issue(session, user, project=project, domain=domain, methods=token_methods, parent=parent)

    return store.run_in_transaction(run)
