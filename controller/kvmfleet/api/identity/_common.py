"""What the identity routes share: Keystone's policy defaults and its 403 message, the store, links."""

from __future__ import annotations

from fastapi import Depends, Request

from kvmfleet.api import policy
from kvmfleet.api.context import RequestContext, context
from kvmfleet.api.faults import BadRequest, Forbidden
from kvmfleet.api.validation import json_body

PREFIX = "/identity/v3"
CTX = Depends(context)  # the dependencies, once (ruff B008)
BODY = Depends(json_body)


def no_nul(request: Request) -> None:
    """A NUL in the path or the query is never an id or a name (and PostgreSQL refuses it in text): 400."""
    if "\x00" in request.url.path or any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
        raise BadRequest("NUL characters are not allowed in the URL.")


CLEAN_URL = [Depends(no_nul)]

# Keystone's defaults (keystone/common/policies/*.py), reduced to kvmfleet's rule kinds: admin for
# writes and for listing others; ownership checks ("a user may read itself") are made in the route.
RULES = {
    "identity:validate_token": policy.ADMIN, "identity:revoke_token": policy.ADMIN,
    "identity:get_auth_catalog": policy.ANY, "identity:get_auth_projects": policy.ANY,
    "identity:get_auth_domains": policy.ANY,
    "identity:get_domain": policy.ADMIN, "identity:list_domains": policy.ADMIN,
    "identity:create_domain": policy.ADMIN, "identity:update_domain": policy.ADMIN,
    "identity:delete_domain": policy.ADMIN,
    "identity:get_project": policy.ADMIN, "identity:list_projects": policy.ADMIN,
    "identity:list_user_projects": policy.ADMIN, "identity:create_project": policy.ADMIN,
    "identity:update_project": policy.ADMIN, "identity:delete_project": policy.ADMIN,
    "identity:get_user": policy.ADMIN, "identity:list_users": policy.ADMIN, "identity:create_user": policy.ADMIN,
    "identity:update_user": policy.ADMIN, "identity:delete_user": policy.ADMIN,
    "identity:get_role": policy.ADMIN, "identity:list_roles": policy.ADMIN, "identity:create_role": policy.ADMIN,
    "identity:update_role": policy.ADMIN, "identity:delete_role": policy.ADMIN,
    "identity:check_grant": policy.ADMIN, "identity:list_grants": policy.ADMIN,
    "identity:create_grant": policy.ADMIN, "identity:revoke_grant": policy.ADMIN,
    "identity:list_role_assignments": policy.ADMIN,
    "identity:get_service": policy.ADMIN, "identity:list_services": policy.ADMIN,
    "identity:get_endpoint": policy.ADMIN, "identity:list_endpoints": policy.ADMIN,
    "identity:get_region": policy.ANY, "identity:list_regions": policy.ANY,
}
policy.register(RULES)


def authorize(ctx: RequestContext, rule: str, owner: bool = False) -> None:
    """Refuse with Keystone's message unless the rule allows, or ``owner`` (the caller's own resource)."""
    if owner or policy.allowed(ctx, rule):
        return
    raise Forbidden(f"You are not authorized to perform the requested action: {rule}.")


def query_flag(request: Request, name: str) -> bool:
    """Keystone's query flags: present with no value, or with any value but 0/false, is true."""
    if name not in request.query_params:
        return False
    return request.query_params[name].strip().lower() not in ("0", "false", "no", "off")


def query_bool(request: Request, name: str) -> bool | None:
    """An optional boolean filter (``?enabled=false``); absent is None."""
    if name not in request.query_params:
        return None
    return query_flag(request, name)


def query_str(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None
