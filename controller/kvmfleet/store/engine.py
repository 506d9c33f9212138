"""Engines, sessions and schema upgrades.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE``: writers queue on the database lock instead of failing when a read
transaction tries to upgrade to a write. PostgreSQL runs at READ COMMITTED; races are decided by row
locks taken by the compare-and-set UPDATEs (host generation, project generation).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from kvmfleet.store.errors import SchemaError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30000


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: the configured database). Creates the SQLite file's directory."""
    if url is None:
        from kvmfleet.config import get_settings

        url = get_settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _sqlite_setup(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we install
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (expire_on_commit=False)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine_or_url: Engine | str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(engine_or_url, str):
        cfg.set_main_option("sqlalchemy.url", engine_or_url.replace("%", "%%"))
    else:
        cfg.attributes["engine"] = engine_or_url
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:
        raise SchemaError("no migrations found in " + str(MIGRATIONS_DIR))
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run migrations up to ``revision``; returns (before, after) revisions."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    return before, current_revision(engine)


def is_empty(engine: Engine) -> bool:
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    return not names and current_revision(engine) is None


def ensure_schema(engine: Engine) -> None:
    """Upgrade an empty database by itself; refuse a database an older migration left behind."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None and is_empty(engine):
        upgrade(engine)
        return
    if current is None:
        raise SchemaError(f"database {engine.url.render_as_string(hide_password=True)} has tables but no "
                          "kvmfleet schema version: not a kvmfleet store")
    raise SchemaError(f"store schema is at revision {current}, this kvmfleet needs {head}: run `kvmfleet db upgrade`",
                      current=current, head=head)


class Store:
    """An engine plus its session factory. ``with store.transaction() as session:`` commits on success
    and rolls back on any exception."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory = make_session_factory(engine)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.session_factory.begin() as session:
            yield session

    def session(self) -> Session:
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, *, upgrade_empty: bool = True, **engine_kwargs: Any) -> Store:
    """A Store on ``url`` (default: configured). An empty database is upgraded to head by itself;
    an outdated one raises SchemaError."""
    engine = make_engine(url, **engine_kwargs)
    if upgrade_empty:
        ensure_schema(engine)
    return Store(engine)


_default_store: Store | None = None
_default_lock = threading.Lock()


def get_store() -> Store:
    """The process-wide store on the configured database (opened, and upgraded if empty, once)."""
    global _default_store
    with _default_lock:
        if _default_store is None:
            _default_store = open_store()
        return _default_store


def reset_store() -> None:
    """Forget the process-wide store (tests, or after changing KVMFLEET_DATABASE_URL)."""
    global _default_store
    with _default_lock:
        if _default_store is not None:
            _default_store.dispose()
        _default_store = None
