"""The identity service's routes, Keystone v3 (see kvmfleet.api): version documents, auth/tokens, and
the admin API (domains, projects, users, roles and assignments, services/endpoints/regions). The logic
lives in kvmfleet.identity; these modules authenticate, validate, authorize, call it and render."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every router of this service, each with its own path prefix."""
    from kvmfleet.api.identity import auth, catalog, domains, projects, roles, users, versions

    return [versions.router, auth.router, domains.router, projects.router, users.router, roles.router,
            catalog.router]
