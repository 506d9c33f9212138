"""What the store and identity fixtures share: the test PostgreSQL server (tests/postgres.sh), a fresh
database per test on each backend, and settings isolated in the test's own state dir. PostgreSQL
unreachable is a failure, not a skip. (A module, not a conftest: the test directories import it.)"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kvmfleet import config
from kvmfleet.store import engine as store_engine
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pg_admin_url() -> str:
    url = os.environ.get("KVMFLEET_TEST_PG_URL")
    if not url:
        proc = subprocess.run(["bash", str(REPO / "tests" / "postgres.sh"), "url"], capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            pytest.fail(f"tests/postgres.sh url failed: {proc.stderr.strip()}")
        url = proc.stdout.strip()
    return url


def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings and the process-wide store come from this test's own state dir."""
    monkeypatch.setenv("KVMFLEET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KVMFLEET_CONFIG", raising=False)
    monkeypatch.delenv("KVMFLEET_DATABASE_URL", raising=False)
    config.reset_settings()
    store_engine.reset_store()
    yield
    store_engine.reset_store()
    config.reset_settings()


def fresh_database(backend: str, tmp_path: Path | None, prefix: str) -> Iterator[str]:
    """A URL to a fresh, empty database of `backend` (sqlite: a file in tmp_path), dropped afterwards."""
    if backend == "sqlite":
        assert tmp_path is not None, "a SQLite store needs the test's tmp_path"
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin_url = make_url(pg_admin_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
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
        try:
            _drop(admin, name)
        finally:
            admin.dispose()


def _drop(admin: Any, name: str) -> None:
    """DROP ... WITH (FORCE) ends the test's own connections, but refuses while a superuser's backend (an
    autovacuum worker) is on the database (seen in CI: "must be a member of the role whose process is being
    terminated"): that worker is gone within seconds, so the drop is tried again."""
    for attempt in range(20):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError:
            if attempt == 19:
                raise
            time.sleep(0.5)
