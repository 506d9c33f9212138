"""Identity fixtures: every test runs on SQLite (a temporary file) and on the real PostgreSQL that
tests/postgres.sh starts. PostgreSQL unreachable is a failure, not a skip. ``ident`` is a bootstrapped
store with helpers to make users and projects."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kvmfleet import config
from kvmfleet.store import engine as store_engine
from kvmfleet.store import open_store
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

REPO = Path(__file__).resolve().parents[3]
ADMIN_PASSWORD = "bootstrap-Pa55word"


def pg_admin_url() -> str:
    url = os.environ.get("KVMFLEET_TEST_PG_URL")
    if not url:
        proc = subprocess.run(["bash", str(REPO / "tests" / "postgres.sh"), "url"], capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            pytest.fail(f"tests/postgres.sh url failed: {proc.stderr.strip()}")
        url = proc.stdout.strip()
    return url


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("KVMFLEET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KVMFLEET_CONFIG", raising=False)
    monkeypatch.delenv("KVMFLEET_DATABASE_URL", raising=False)
    config.reset_settings()
    store_engine.reset_store()
    yield
    store_engine.reset_store()
    config.reset_settings()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin_url = make_url(pg_admin_url())
    name = f"kvmfleet_i_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} is not reachable "
                    f"(run `bash tests/postgres.sh start`): {exc.orig}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
