"""Neutron request bodies: ``{"<resource>": {...}}`` with only the resource's known attributes (another is
Neutron's 400 "Unrecognized attribute(s)"), and the project a create is for (another project's only for an
admin, as Neutron has it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from kvmfleet.api.context import RequestContext
from kvmfleet.api.faults import BadRequest
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Project


def resource(body: Any, key: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict) or key not in body:
        raise BadRequest(f"Resource body required: {{\"{key}\": {{...}}}}")
    if len(body) != 1:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(k for k in body if k != key))}'")
    data = body[key]
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input for {key}. Reason: it must be an object.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    return dict(data)


def project_of(session: Session, ctx: RequestContext, data: dict[str, Any]) -> str:
    """The project a create is for: the token's, or the body's tenant_id/project_id (admin only)."""
    given = [data.pop(k) for k in ("tenant_id", "project_id") if k in data]
    if not all(isinstance(g, str) and g for g in given):
        raise BadRequest(f"Invalid input for project_id. Reason: {given!r} is not a project id.")
    wanted = set(given)
    if len(wanted) > 1:
        raise BadRequest("Invalid input: tenant_id and project_id differ.")
    project = wanted.pop() if wanted else ctx.project_id
    if not project:
        raise BadRequest("A project-scoped token (or, for an admin, a project_id) is required.")
    if project != ctx.project_id:
        if not ctx.is_admin:
            raise BadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in "
                             "request requires admin privileges")
        if session.get(Project, project) is None:
            raise NotFound(f"Project {project} could not be found.", project=project)
    return project


def no_update(data: dict[str, Any], *names: str) -> None:
    for name in names:
        if name in data:
            raise BadRequest(f"Cannot update read-only attribute {name}")
