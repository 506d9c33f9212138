"""Tokens: random, stored only as their SHA-256, expiring, revocable.

    token, info = issue(session, user, project=p)        # inside the caller's transaction; token shown once
    info = validate(store, token)                        # every request: ONE indexed query; AuthFailed (401)
    revoke(store, token)                                 # the token and the tokens rescoped from it
    purge_expired(store)                                 # periodic: drop rows past their expiry

A restart accepts only tokens whose hash is in the table (nothing is signed, so nothing can be forged),
a revoked one stays revoked until its row expires, and a token stops working at once when its user,
the user's domain, its project or the project's domain is disabled or deleted, or when the user holds
no role on its scope any more (roles are read live on every validation, as Keystone's validation does).

``audit_id`` holds the token's own audit id, then (for a token made by rescoping) its parent's,
separated by a space: Keystone's ``audit_ids`` chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, aliased

from kvmfleet.identity.errors import AuthFailed
from kvmfleet.store.models import Domain, Project, Role, RoleAssignment, Token, User

MAX_TOKEN_LENGTH = 512  # ours are 43 characters; anything much longer is not one of ours


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def isotime(value: dt.datetime | None) -> str | None:
    """Keystone's token time format: ``2026-12-01T22:00:00.000000Z``."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token_string() -> str:
    """32 random bytes, urlsafe base64, never starting with '-': a token is passed as a positional
    argument (``openstack token revoke <token>``), and argparse takes a leading '-' for an option."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def new_audit_id() -> str:
    return secrets.token_urlsafe(16)[:22]  # Keystone's audit ids: 16 random bytes, urlsafe base64


@dataclass(frozen=True)
class TokenInfo:
    """What a valid token says: who, on which scope, with which roles (assigned on that scope)."""

    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    password_expires_at: dt.datetime | None
    project_id: str | None
    project_name: str | None
    project_domain_id: str | None
    project_domain_name: str | None
    domain_id: str | None  # a domain-scoped token's domain
    domain_name: str | None
    roles: list[str]  # role names assigned on the scope
    role_ids: list[str]  # the same roles' ids, same order
    methods: list[str]
    audit_ids: list[str]
    issued_at: dt.datetime
    expires_at: dt.datetime
    token_id_hash: str = field(default="", repr=False)

    @property
    def scope(self) -> str:
        if self.project_id is not None:
            return "project"
        if self.domain_id is not None:
            return "domain"
        return "unscoped"


def expiration_seconds() -> int:
    from kvmfleet.config import get_settings

    return int(get_settings().api.token_expiration)


_UserDomain = aliased(Domain, name="user_domain")
_ProjectDomain = aliased(Domain, name="project_domain")
_ScopeDomain = aliased(Domain, name="scope_domain")


def _query(id_hash: str) -> Any:
    """Token, user, the user's domain, project, the project's domain, the scope domain and each role
    assigned on the scope: one row per role (one row with no role when none), all by primary keys and
    the role_assignments.user_id index."""
    assignment_on_scope = and_(
        RoleAssignment.user_id == Token.user_id,
        or_(and_(Token.project_id.is_not(None), RoleAssignment.project_id == Token.project_id),
            and_(Token.domain_id.is_not(None), RoleAssignment.domain_id == Token.domain_id)))
    return (
        select(Token.user_id, Token.project_id, Token.domain_id, Token.methods, Token.audit_id, Token.issued_at,
               Token.expires_at, Token.revoked_at,
               User.name, User.enabled, User.domain_id, User.password_expires_at,
               _UserDomain.name, _UserDomain.enabled,
               Project.name, Project.enabled, Project.domain_id,
               _ProjectDomain.name, _ProjectDomain.enabled,
               _ScopeDomain.name, _ScopeDomain.enabled,
               Role.id, Role.name)
        .select_from(Token)
        .join(User, User.id == Token.user_id)
        .join(_UserDomain, _UserDomain.id == User.domain_id)
        .outerjoin(Project, Project.id == Token.project_id)
        .outerjoin(_ProjectDomain, _ProjectDomain.id == Project.domain_id)
        .outerjoin(_ScopeDomain, _ScopeDomain.id == Token.domain_id)
        .outerjoin(RoleAssignment, assignment_on_scope)
        .outerjoin(Role, Role.id == RoleAssignment.role_id)
        .where(Token.id_hash == id_hash)
        .order_by(Role.name)
    )


def _info_from_rows(rows: Sequence[Any], id_hash: str, at: dt.datetime) -> TokenInfo:
    if not rows:
        raise AuthFailed()
    (user_id, project_id, domain_id, methods, audit, issued_at, expires_at, revoked_at,
     user_name, user_enabled, user_domain_id, pw_expires, ud_name, ud_enabled,
     project_name, project_enabled, project_domain_id, pd_name, pd_enabled,
     sd_name, sd_enabled, _rid, _rname) = rows[0]
    if revoked_at is not None or expires_at <= at:
        raise AuthFailed()
    if not user_enabled or not ud_enabled:
        raise AuthFailed()
    role_ids = [r[-2] for r in rows if r[-2] is not None]
    role_names = [r[-1] for r in rows if r[-1] is not None]
    if project_id is not None and (project_name is None or not project_enabled or not pd_enabled or not role_ids):
        raise AuthFailed()
    if domain_id is not None and (sd_name is None or not sd_enabled or not role_ids):
        raise AuthFailed()
    return TokenInfo(
        user_id=user_id, user_name=user_name, user_domain_id=user_domain_id, user_domain_name=ud_name,
        password_expires_at=pw_expires, project_id=project_id, project_name=project_name,
        project_domain_id=project_domain_id if project_id is not None else None,
        project_domain_name=pd_name if project_id is not None else None,
        domain_id=domain_id, domain_name=sd_name, roles=role_names, role_ids=role_ids,
        methods=list(methods or []), audit_ids=audit.split(), issued_at=issued_at, expires_at=expires_at,
        token_id_hash=id_hash)


def validate_in(session: Session, token: str | None, at: dt.datetime | None = None) -> TokenInfo:
    """validate() inside the caller's session."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise AuthFailed()
    id_hash = token_hash(token)
    rows = session.execute(_query(id_hash)).all()
    return _info_from_rows(rows, id_hash, at or now())


def validate(store: Any, token: str | None) -> TokenInfo:
    """The TokenInfo of a valid token; AuthFailed (401) when missing, unknown, expired, revoked, or its
    user/project/domain is disabled or gone, or the user holds no role on its scope."""
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise AuthFailed()
    id_hash = token_hash(token)
    with store.read() as session:  # no write lock: validations run beside each other and beside writers
        rows = session.execute(_query(id_hash)).all()
    return _info_from_rows(rows, id_hash, now())


def issue(session: Session, user: User, *, project: Project | None = None, domain: Domain | None = None,
          methods: Sequence[str] = ("password",), parent: TokenInfo | None = None,
          expires_at: dt.datetime | None = None) -> tuple[str, TokenInfo]:
    """Store a new token for ``user`` on ``project`` or ``domain`` (or unscoped) and return it with its
    TokenInfo. The token string is returned here only; the table keeps its SHA-256. A token made from
    ``parent`` (rescoping) never outlives it and carries its audit id."""
    if project is not None and domain is not None:
        raise ValueError("a token is scoped to a project or to a domain, not both")
    issued = now()
    expires = expires_at or (issued + dt.timedelta(seconds=expiration_seconds()))
    if parent is not None:
        expires = min(expires, parent.expires_at)
    token = new_token_string()
    audit_ids = [new_audit_id()] + ([parent.audit_ids[0]] if parent is not None else [])
    id_hash = token_hash(token)
    session.add(Token(id_hash=id_hash, user_id=user.id, project_id=project.id if project else None,
                      domain_id=domain.id if domain else None, methods=list(methods),
                      audit_id=" ".join(audit_ids), issued_at=issued, expires_at=expires))
    session.flush()
    return token, validate_in(session, token, issued)


def revoke(store: Any, token: str) -> None:
    """Revoke a token (and the tokens rescoped from it). Unknown or already invalid: AuthFailed."""

    def run(session: Session) -> None:
        info = validate_in(session, token)
        revoke_in(session, info)

    store.run_in_transaction(run)


def revoke_in(session: Session, info: TokenInfo) -> None:
    stamp = now()
    own = info.audit_ids[0]
    session.execute(update(Token).where(Token.revoked_at.is_(None),
                                        or_(Token.id_hash == info.token_id_hash,
                                            Token.audit_id.endswith(" " + own, autoescape=True)))
                    .values(revoked_at=stamp).execution_options(synchronize_session=False))


def revoke_user_tokens(session: Session, user_id: str) -> int:
    """Revoke every live token of a user (password changed, user disabled): Keystone does the same."""
    result = session.execute(update(Token).where(Token.user_id == user_id, Token.revoked_at.is_(None))
                             .values(revoked_at=now()).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_expired(store: Any, at: dt.datetime | None = None) -> int:
    """Delete the rows of expired tokens (revoked or not: past expiry both are refused anyway)."""
    cutoff = at or now()

    def run(session: Session) -> int:
        result = session.execute(delete(Token).where(Token.expires_at <= cutoff)
                                 .execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)

    return store.run_in_transaction(run)


def _purge_periodically(store: Any) -> None:
    purge_expired(store)


def _register() -> None:
    from kvmfleet import service

    service.register_periodic("token-purge", 900, _purge_periodically)


_register()
