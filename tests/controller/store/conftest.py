"""Store fixtures: every store test runs on SQLite (a temporary file) and on the real PostgreSQL that
tests/postgres.sh starts (make test does). PostgreSQL unreachable is a failure, not a skip."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from kvmfleet import config
from kvmfleet.store import engine as store_engine
from kvmfleet.store import open_store
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

REPO = Path(__file__).resolve().parents[3]


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
    """Settings and the process-wide store come from this test's own state dir."""
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
    """A URL to a fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin_url = make_url(pg_admin_url())
    name = f"kvmfleet_t_{uuid.uuid4().hex[:12]}"
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


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.dispose()


class Factory:
    """Builds rows for tests: each call commits its own transaction and returns plain ids/values."""

    def __init__(self, store) -> None:
        self.store = store

    def project(self, name: str = "demo", **quota) -> str:
        from kvmfleet import quota as quota_mod
        from kvmfleet.store import Project

        with self.store.transaction() as s:
            p = Project(name=name)
            s.add(p)
            s.flush()
            if quota:
                quota_mod.set_limits(s, p, **quota)
            return p.id

    def flavor(self, name: str = "m1.small", vcpus: int = 1, memory_mb: int = 256, root_gb: int = 1, **kw) -> str:
        from kvmfleet.store import Flavor

        with self.store.transaction() as s:
            f = Flavor(name=name, vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb, **kw)
            s.add(f)
            s.flush()
            return f.id

    def host(self, name: str = "h1", vcpus: int = 2, memory_mb: int = 4608, local_gb: int = 100, **kw) -> str:
        from kvmfleet.store import Host

        kw.setdefault("cpu_allocation_ratio", 1.0)
        with self.store.transaction() as s:
            s.add(Host(name=name, vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb, **kw))
        return name

    def instance(self, project_id: str, name: str = "vm", vcpus: int = 1, memory_mb: int = 256, root_gb: int = 1,
                 **kw) -> str:
        from kvmfleet.store import Instance

        with self.store.transaction() as s:
            i = Instance(name=name, project_id=project_id, flavor_name="test", vcpus=vcpus, memory_mb=memory_mb,
                         root_gb=root_gb, **kw)
            s.add(i)
            s.flush()
            return i.uuid


@pytest.fixture
def make(store) -> Factory:
    return Factory(store)
