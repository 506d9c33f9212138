"""Keystone v3 response bodies (keystone/api/*.py wrap_member / wrap_collection and render_token)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.identity import catalog, roles
from kvmfleet.identity.tokens import TokenInfo, isotime
from kvmfleet.store.models import Domain, Project, Role, User


def base(request: Request) -> str:
    """The service's base URL as clients are told it (api.public_url, else the request's)."""
    return catalog.base_url(str(request.base_url))


def v3(request: Request) -> str:
    return base(request) + "/identity/v3"


def collection(request: Request, key: str, members: list[dict[str, Any]], path: str) -> dict[str, Any]:
    query = urlencode(list(request.query_params.multi_items()))
    self_link = v3(request) + path + (f"?{query}" if query else "")
    return {key: members, "links": {"self": self_link, "previous": None, "next": None}}


def domain(request: Request, d: Domain) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description or "", "enabled": d.enabled, "tags": [],
            "options": {}, "links": {"self": f"{v3(request)}/domains/{d.id}"}}


def project(request: Request, p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description or "",
            "enabled": p.enabled, "parent_id": p.domain_id, "is_domain": False, "tags": [], "options": {},
            "links": {"self": f"{v3(request)}/projects/{p.id}"}}


def user(request: Request, u: User) -> dict[str, Any]:
    out: dict[str, Any] = {"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
                           "password_expires_at": isotime(u.password_expires_at), "options": dict(u.options or {}),
                           "links": {"self": f"{v3(request)}/users/{u.id}"}}
    # Keystone shows these only when set (they are "extra" attributes there)
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    if u.email is not None:
        out["email"] = u.email
    if u.description is not None:
        out["description"] = u.description
    return out


def role(request: Request, r: Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "domain_id": r.domain_id, "description": r.description,
            "options": dict(r.options or {}), "links": {"self": f"{v3(request)}/roles/{r.id}"}}


def assignment(request: Request, a: roles.Assignment, include_names: bool,
               domains: dict[str, Domain] | None = None) -> dict[str, Any]:
    """One entry of GET /v3/role_assignments; ``domains`` (id -> Domain) names the domains."""
    domains = domains or {}

    def domain_ref(domain_id: str) -> dict[str, Any]:
        d = domains.get(domain_id)
        return {"id": domain_id, "name": d.name if d else None}

    out: dict[str, Any] = {"role": {"id": a.role.id}, "user": {"id": a.user.id}}
    if a.project is not None:
        out["scope"] = {"project": {"id": a.project.id}}
        target = f"projects/{a.project.id}"
    elif a.domain is not None:
        out["scope"] = {"domain": {"id": a.domain.id}}
        target = f"domains/{a.domain.id}"
    if include_names:
        out["role"]["name"] = a.role.name
        out["user"]["name"] = a.user.name
        out["user"]["domain"] = domain_ref(a.user.domain_id)
        if a.project is not None:
            out["scope"]["project"]["name"] = a.project.name
            out["scope"]["project"]["domain"] = domain_ref(a.project.domain_id)
        elif a.domain is not None:
            out["scope"]["domain"]["name"] = a.domain.name
    prior = a.implied_from or a.role
    links = {"assignment": f"{v3(request)}/{target}/users/{a.user.id}/roles/{prior.id}"}
    if a.implied_from is not None:
        links["prior_role"] = f"{v3(request)}/roles/{a.implied_from.id}"
    out["links"] = links
    return out


def token(request: Request, session: Session, info: TokenInfo, include_catalog: bool = True) -> dict[str, Any]:
    """render_token_response_from_model: the token body; roles with those they imply (as Keystone lists)."""
    body: dict[str, Any] = {
        "methods": info.methods,
        "user": {"domain": {"id": info.user_domain_id, "name": info.user_domain_name}, "id": info.user_id,
                 "name": info.user_name, "password_expires_at": isotime(info.password_expires_at)},
        "audit_ids": info.audit_ids,
        "expires_at": isotime(info.expires_at),
        "issued_at": isotime(info.issued_at),
    }
    if info.scope != "unscoped":
        names = roles.implied(info.roles)
        ids = dict(zip(info.roles, info.role_ids, strict=True))
        missing = [n for n in names if n not in ids]
        if missing:
            ids.update({r.name: r.id for r in session.scalars(select(Role).where(Role.name.in_(missing)))})
        body["roles"] = [{"id": ids[n], "name": n} for n in names if n in ids]
    if info.scope == "project":
        body["project"] = {"domain": {"id": info.project_domain_id, "name": info.project_domain_name},
                           "id": info.project_id, "name": info.project_name}
        body["is_domain"] = False
    elif info.scope == "domain":
        body["domain"] = {"id": info.domain_id, "name": info.domain_name}
    if include_catalog and info.scope != "unscoped":
        body["catalog"] = catalog.token_catalog(base(request))
    return {"token": body}
