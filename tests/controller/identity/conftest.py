"""Identity fixtures: every test runs on SQLite (a temporary file) and on the real PostgreSQL that
tests/postgres.sh starts. PostgreSQL unreachable is a failure, not a skip. ``ident`` is a bootstrapped
store with helpers to make users and projects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from db_fixtures import BACKENDS, fresh_database, isolated_settings
from kvmfleet.store import open_store

ADMIN_PASSWORD = "bootstrap-Pa55word"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    yield from isolated_settings(tmp_path, monkeypatch)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A URL to a fresh, empty database of each backend."""
    yield from fresh_database(request.param, tmp_path, "kvmfleet_i")


@dataclass
class Ident:
    store: Any
    admin_password: str = ADMIN_PASSWORD

    def project(self, name: str) -> str:
        from kvmfleet.identity import projects

        return self.store.run_in_transaction(lambda s: projects.create_project(s, name).id)

    def user(self, name: str, password: str, project_id: str | None = None, roles: tuple[str, ...] = ("member",),
             **kw: Any) -> str:
        from kvmfleet.identity import roles as roles_mod
        from kvmfleet.identity import users

        def run(s: Any) -> str:
            u = users.create_user(s, name, password=password, default_project_id=project_id, **kw)
            for r in roles if project_id else ():
                roles_mod.grant(s, u.id, roles_mod.find_role(s, r).id, project_id=project_id)
            return u.id

        return self.store.run_in_transaction(run)

    def token(self, name: str, password: str, project: str | None = None, scope: Any = None) -> tuple[str, Any]:
        from kvmfleet.identity import auth

        body: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": name, "domain": {"id": "default"}, "password": password}}}}
        if project is not None:
            body["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
        elif scope is not None:
            body["scope"] = scope
        return auth.authenticate(self.store, body)


@pytest.fixture
def ident(db_url):
    from kvmfleet import identity

    s = open_store(db_url)
    identity.bootstrap(s, ADMIN_PASSWORD)
    yield Ident(s)
    s.dispose()
