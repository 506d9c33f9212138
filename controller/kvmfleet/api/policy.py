"""Policies as a table of named rules with Nova's and Keystone's defaults (nova/policies/base.py).

Roles imply one another as ``keystone-manage bootstrap`` sets them up: admin > manager > member >
reader. A rule is one of:

    ADMIN                   role admin (system or project admin: Nova's ``context_is_admin``)
    PROJECT_MANAGER_OR_ADMIN
    PROJECT_MEMBER_OR_ADMIN role member on the token's project, or admin
    PROJECT_READER_OR_ADMIN role reader on the token's project, or admin
    ANY                     any authenticated user

Ownership is not a policy question here: another project's resource is looked up within the caller's
project and so is a 404, never a 403 (the handler passes ``ctx.project_id`` down). Each resource module
registers its rules with ``register({"os_compute_api:servers:create": PROJECT_MEMBER_OR_ADMIN, ...})``;
``authorize(ctx, name)`` raises Forbidden with Nova's message when the rule refuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmfleet.api.faults import Forbidden

if TYPE_CHECKING:
    from kvmfleet.api.context import RequestContext

ADMIN = "admin"
PROJECT_MANAGER_OR_ADMIN = "manager"
PROJECT_MEMBER_OR_ADMIN = "member"
PROJECT_READER_OR_ADMIN = "reader"
ANY = "any"

IMPLIED_ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("admin", "manager", "member", "reader"),
    "manager": ("manager", "member", "reader"),
    "member": ("member", "reader"),
    "reader": ("reader",),
    "service": ("service",),
}

RULES: dict[str, str] = {}


def effective_roles(names: list[str] | tuple[str, ...] | set[str]) -> frozenset[str]:
    out: set[str] = set()
    for name in names:
        out.update(IMPLIED_ROLES.get(name, (name,)))
    return frozenset(out)


def register(rules: dict[str, str]) -> None:
    for name, rule in rules.items():
        if rule not in (ADMIN, PROJECT_MANAGER_OR_ADMIN, PROJECT_MEMBER_OR_ADMIN, PROJECT_READER_OR_ADMIN, ANY):
            raise ValueError(f"policy {name}: unknown rule {rule!r}")
        RULES[name] = rule


def allowed(ctx: RequestContext, name: str) -> bool:
    rule = RULES.get(name)
    if rule is None:
        raise KeyError(f"no policy rule named {name}")
    roles = ctx.roles
    if rule == ANY:
        return True
    if "admin" in roles:
        return True
    if rule == ADMIN:
        return False
    if ctx.project_id is None:  # a project rule needs a project-scoped token
        return False
    return rule in roles


def authorize(ctx: RequestContext, name: str) -> None:
    if not allowed(ctx, name):
        raise Forbidden(f"Policy doesn't allow {name} to be performed.")
