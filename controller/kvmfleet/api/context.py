"""Who is asking: the request context built from the X-Auth-Token of every request.

``Depends(context)`` authenticates (401 when the token is missing, unknown, expired or revoked) through
``kvmfleet.identity.tokens.validate`` and gives the handler a RequestContext: the user, the project the
token is scoped to, the effective roles (implied roles expanded), the request id and, on compute paths,
the microversion asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from kvmfleet.api import policy
from kvmfleet.api.faults import Unauthorized
from kvmfleet.api.microversion import MIN, APIVersion


@dataclass
class RequestContext:
    request_id: str
    user_id: str
    user_name: str
    user_domain_id: str | None
    project_id: str | None
    project_name: str | None
    project_domain_id: str | None
    role_names: list[str]  # as assigned (what the token body lists)
    roles: frozenset[str]  # effective, implied roles included (what policies read)
    token: Any = None  # kvmfleet.identity.tokens.TokenInfo
    microversion: APIVersion = field(default=MIN)

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def authorize(self, rule: str) -> None:
        policy.authorize(self, rule)

    def scope_project(self, all_tenants: bool = False) -> str | None:
        """The project a lookup is limited to: the token's, or None (every project) for an admin asking
        for all_tenants."""
        if all_tenants and self.is_admin:
            return None
        return self.project_id


def get_store(request: Request) -> Any:
    return request.app.state.store


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "req-unknown"


def context(request: Request) -> RequestContext:
    """The FastAPI dependency every authenticated route takes."""
    from kvmfleet.identity import tokens

    token = request.headers.get("x-auth-token")
    if not token:
        raise Unauthorized()
    info = tokens.validate(get_store(request), token)
    return RequestContext(
        request_id=request_id(request), user_id=info.user_id, user_name=info.user_name,
        user_domain_id=info.user_domain_id, project_id=info.project_id, project_name=info.project_name,
        project_domain_id=info.project_domain_id, role_names=list(info.roles),
        roles=policy.effective_roles(info.roles), token=info,
        microversion=getattr(request.state, "microversion", MIN))
