"""Engines, sessions and schema upgrades.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE``: writers queue on the database lock instead of failing when a read
transaction tries to upgrade to a write. PostgreSQL runs at READ COMMITTED; races are decided by row
locks taken by the compare-and-set UPDATEs (host generation, project generation).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from kvmfleet.store.errors import SchemaError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30000

# Whole-transaction retries (Store.run_in_transaction): attempts in all, and the backoff between them
# (full jitter: a random sleep in [0, min(cap, base * 2**n)]).
RETRY_ATTEMPTS = 8
RETRY_BASE_S = 0.05
RETRY_CAP_S = 2.0

_PG_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_log = logging.getLogger(__name__)
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """True for errors after which the whole transaction may simply run again: SQLite busy/locked
    (another writer held the lock past the busy timeout) and PostgreSQL serialization failures and
    deadlocks. Nothing else (constraint violations, Conflict, bad input...) is retryable."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_RETRYABLE:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
    text = str(orig).lower()
    return type(orig).__name__ == "OperationalError" and (
        "database is locked" in text or "database table is locked" in text or "database is busy" in text)


def with_retries(fn: Callable[[], T], what: str, *, attempts: int | None = None, base: float | None = None,
                 cap: float | None = None) -> T:
    """``fn()``, run again on a retryable store error (is_retryable) up to ``attempts`` times in all, with a
    jittered, growing backoff between tries. Any other error, or the last retryable one, is raised as is."""
    attempts = RETRY_ATTEMPTS if attempts is None else attempts
    base = RETRY_BASE_S if base is None else base
    cap = RETRY_CAP_S if cap is None else cap
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except DBAPIError as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            delay = random.uniform(0, min(cap, base * (2 ** (attempt - 1))))
            _log.debug("%s: retry %d/%d in %.3fs after %s", what, attempt, attempts, delay, exc.orig)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def run_in_transaction(session_factory: Callable[[], Session], fn: Callable[[Session], T], *,
                       attempts: int | None = None, base: float | None = None, cap: float | None = None) -> T:
    """Run ``fn(session)`` in its own transaction and commit; on a retryable error (is_retryable) roll
    back and run the WHOLE of ``fn`` again in a fresh session, up to ``attempts`` times in all, sleeping
    a jittered, growing backoff between tries. ``fn`` must only touch the database through ``session``
    (anything else it does would happen once per try); what it returns is returned. Any other error,
    or the last retryable one, is raised as is."""

    def once() -> T:
        with session_factory() as session, session.begin():
            return fn(session)

    return with_retries(once, "store transaction", attempts=attempts, base=base, cap=cap)


def make_engine(url: str | None = None, busy_timeout_ms: int | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: the configured database). Creates the SQLite file's directory.
    ``busy_timeout_ms`` (SQLite only) is how long a writer waits for the lock before "database is locked"
    (default SQLITE_BUSY_TIMEOUT_MS; Store.run_in_transaction retries after that)."""
    if url is None:
        from kvmfleet.config import get_settings

        url = get_settings().database_url
    parsed = make_url(url)
    _private_state_dir()
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_sqlite_file(Path(parsed.database))
        busy_ms = int(busy_timeout_ms if busy_timeout_ms is not None else SQLITE_BUSY_TIMEOUT_MS)
        connect_args = {"timeout": busy_ms / 1000, "check_same_thread": False}
        connect_args.update(kwargs.pop("connect_args", {}))
        # Connections are kept rather than closed when many requests come at once: opening one is cheap,
        # but Store.fingerprint (the page cache's key) is per connection, so a fresh one starts cold.
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 30)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _sqlite_setup(engine, busy_ms)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we install
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _configured_state_dir() -> Path:
    from kvmfleet import paths
    from kvmfleet.config import ConfigError, get_settings

    try:
        return Path(get_settings().state_dir)
    except ConfigError:  # a bad config file must not hide the store's own error
        return paths.state_dir()


def _private_state_dir() -> None:
    """Whatever the backend, the state dir (logs, job artifacts, pid file) is 0700: made so, or
    tightened when an older kvmfleet left it open."""
    from kvmfleet import paths

    paths.ensure_state_dir(_configured_state_dir())


def _private_sqlite_file(db: Path) -> None:
    """The store holds user data and password hashes: its directory is made 0700 (tightened when it is
    the state dir) and the file 0600 before SQLite opens it (SQLite gives the -wal and -shm files the
    database file's mode)."""
    from kvmfleet import paths

    state = _configured_state_dir()
    parent = db.parent
    is_state_dir = parent.resolve() == state.resolve() if parent.exists() and state.exists() else parent == state
    paths.ensure_private_dir(parent, tighten=is_state_dir)
    paths.ensure_private_file(db)


_connection_serials = itertools.count(1)


def _sqlite_setup(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        record.info[CONNECTION_SERIAL] = next(_connection_serials)  # for Store.fingerprint
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")  # first: switching to WAL may wait for the lock too
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (Store.read) take no write lock: under WAL they never wait for a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


READ_ONLY = "kvmfleet_read_only"
CONNECTION_SERIAL = "kvmfleet_serial"


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
    """An engine plus its session factory. ``with store.transaction() as session:`` begins at once (a
    busy SQLite lock is waited for and retried before the body runs), commits on success and rolls back on
    any exception. Writes that may meet a PostgreSQL serialization failure go through
    ``store.run_in_transaction(fn)``, which reruns the whole ``fn``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session_factory = make_session_factory(engine)
        self._read_factory = make_session_factory(engine.execution_options(**{READ_ONLY: True}))

    def fingerprint(self, session: Session) -> tuple[Any, ...] | None:
        """A value that differs whenever the committed data this session can read may have changed, from
        this process or any other: a cache key for what is rendered from the store (the server lists).
        Read it before and after the reads; a result may be cached only under a fingerprint that did not
        change meanwhile (a commit landed in between otherwise). None where there is no cheap way.

        PostgreSQL: the current snapshot (xmin:xmax:running xids): any transaction that assigns an xid
        (every write) changes it once it commits; reads do not. SQLite: PRAGMA data_version changes when
        another connection (this process's or another's) committed a change, but not for the connection's
        own, which its total_changes (rows it ever changed) covers; the connection's serial keeps two
        connections' values apart. Empty transactions (the workers' queue polls) change neither, so they
        do not empty the cache."""
        conn = session.connection()
        dialect = conn.dialect.name
        if dialect == "postgresql":
            return ("pg", conn.exec_driver_sql("SELECT pg_current_snapshot()::text").scalar())
        if dialect == "sqlite":
            serial = conn.connection.info.get(CONNECTION_SERIAL)
            raw = conn.connection.dbapi_connection
            if serial is None or raw is None:
                return None
            return ("sqlite", serial, raw.total_changes, conn.exec_driver_sql("PRAGMA data_version").scalar())
        return None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only (API GETs, token checks): on SQLite a deferred BEGIN that takes no
        write lock, so reads run beside each other and beside a writer (WAL); never committed."""
        session = self._read_factory()
        with session:  # close() ends the transaction (the pool rolls it back) and, unlike rollback(),
            yield session  # leaves what was loaded readable, as transaction() does after its commit

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        session = self._begin()
        with session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            session.commit()

    def _begin(self) -> Session:
        """A session whose transaction has begun (BEGIN IMMEDIATE on SQLite: the write lock is taken here,
        before the caller's body runs, so a busy store can be waited out and retried safely)."""

        def begin() -> Session:
            session = self.session_factory()
            try:
                session.begin()
                session.connection()
            except BaseException:
                session.close()
                raise
            return session

        return with_retries(begin, "store begin")

    def run_in_transaction(self, fn: Callable[[Session], T], **kwargs: Any) -> T:
        """``fn(session)`` in one transaction, the whole of it retried on busy/serialization errors
        (see run_in_transaction above)."""
        return run_in_transaction(self.session_factory, fn, **kwargs)

    def session(self) -> Session:
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None, *, upgrade_empty: bool = True, **engine_kwargs: Any) -> Store:
    """A Store on ``url`` (default: configured). An empty database is upgraded to head by itself;
    an outdated one raises SchemaError."""
    engine = make_engine(url, **engine_kwargs)
    if upgrade_empty:
        # many CLI processes starting at once all read the schema version
        with_retries(lambda: ensure_schema(engine), "store schema check")
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
