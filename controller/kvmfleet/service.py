"""`kvmfleet serve`: one process that serves the API (uvicorn, main thread) and runs the task workers
(threads, kvmfleet.worker), the crash recovery and the periodic jobs.

run(): refuses to start when the pid file <state dir>/kvmfleet-serve.pid names a live process, writes
it, logs to <state dir>/logs/kvmfleet-serve.log (never a request body, a token or user data), serves
TLS when given a certificate and key, recovers the tasks a dead owner left before taking new ones, and
on SIGTERM/SIGINT stops taking tasks, lets running ones finish for `grace` seconds, then hands them back.
check(): configuration valid, store reachable, schema current — one line, or ServiceError.

Periodic jobs: ``register_periodic(name, interval_s, fn)`` (at import time of the registering module, or
before run()); ``fn(store)`` runs in the service every `interval_s` seconds, never in the CLI.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvmfleet.config import ConfigError, get_settings

log = logging.getLogger("kvmfleet.service")

DEFAULT_GRACE = 60.0  # seconds running tasks get to finish at shutdown
_periodic: dict[str, tuple[float, Callable[[Any], None]]] = {}


class ServiceError(ConfigError):
    """The service cannot start (bad bind address, port in use, TLS files missing, already running); the
    message says which."""


def register_periodic(name: str, interval_s: float, fn: Callable[[Any], None]) -> None:
    """Run ``fn(store)`` every `interval_s` seconds while `kvmfleet serve` runs (a name registers once)."""
    if interval_s <= 0:
        raise ValueError(f"periodic job {name}: interval must be positive, got {interval_s!r}")
    _periodic[name] = (float(interval_s), fn)


def periodic_jobs() -> dict[str, tuple[float, Callable[[Any], None]]]:
    return dict(_periodic)


def pid_file() -> Path:
    return get_settings().state_dir / "kvmfleet-serve.pid"


def running_pid() -> int | None:
    """The pid in the pid file when that process is alive (and not a zombie), else None."""
    from kvmfleet.compute.recovery import _pid_alive

    try:
        pid = int(pid_file().read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid() or pid <= 0:
        return None
    return pid if _pid_alive(pid) else None


def _bind(bind: str | None) -> tuple[str, int]:
    text = bind or get_settings().api.bind
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServiceError(f"--bind: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def check() -> str:
    """Configuration valid and the store answers at the current schema; a one-line report."""
    from sqlalchemy.exc import SQLAlchemyError

    from kvmfleet.store import current_revision, head_revision, make_engine

    settings = get_settings()
    _bind(None)
    if bool(settings.api.cert_file) != bool(settings.api.key_file):
        raise ServiceError("api.cert_file and api.key_file: give both for TLS, or neither")
    for path in (settings.api.cert_file, settings.api.key_file):
        if path and not Path(path).is_file():
            raise ServiceError(f"TLS file {path} does not exist")
    from sqlalchemy.engine import make_url

    parsed = make_url(settings.database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).is_file():
        raise ServiceError(f"store {parsed.database} does not exist: run `kvmfleet db upgrade`")
    engine = make_engine()
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        rev = current_revision(engine)
    except SQLAlchemyError as exc:
        raise ServiceError(f"store {url} does not answer: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()
    if rev != head_revision():
        raise ServiceError(f"store {url} schema is at {rev or 'nothing (empty)'}, this kvmfleet needs "
                           f"{head_revision()}: run `kvmfleet db upgrade`")
    return f"ok: config {settings.config_file or '(defaults)'}, store {url} at {rev}"


def _setup_logging(state_dir: Path) -> None:
    from kvmfleet import paths

    logs = paths.ensure_private_dir(state_dir / "logs")
    handler = logging.FileHandler(logs / "kvmfleet-serve.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(threadName)s %(levelname)s %(name)s: "
                                           "%(message)s"))
    for name in ("kvmfleet", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(os.environ.get("KVMFLEET_LOG_LEVEL", "INFO").upper())
        logger.propagate = False
    paths.ensure_private_file(logs / "kvmfleet-serve.log")


def run(bind: str | None = None, cert: str | None = None, key: str | None = None,
        grace: float = DEFAULT_GRACE, workers: int | None = None) -> None:
    import uvicorn

    from kvmfleet import paths
    from kvmfleet.api.app import create_app
    from kvmfleet.store import get_store
    from kvmfleet.worker import Periodic, WorkerPool

    settings = get_settings()
    host, port = _bind(bind)
    cert = cert or settings.api.cert_file
    key = key or settings.api.key_file
    if bool(cert) != bool(key):
        raise ServiceError("--cert and --key: give both for TLS, or neither")
    for path in (cert, key):
        if path and not Path(path).is_file():
            raise ServiceError(f"TLS file {path} does not exist")
    other = running_pid()
    if other is not None:
        raise ServiceError(f"kvmfleet serve is already running for {settings.state_dir} (pid {other}, "
                           f"pid file {pid_file()})")
    paths.ensure_state_dir(settings.state_dir)
    _setup_logging(settings.state_dir)
    store = get_store()
    app: Any = create_app(store)
    # keep-alive well past the 5 s that clients poll at (openstackclient's --wait): with uvicorn's default 5 s
    # the server closed idle connections just as the next poll went out on them (connection reset by peer)
    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="warning",
                            access_log=False, lifespan="off", log_config=None, timeout_keep_alive=75)
    server = uvicorn.Server(config)
    try:
        server.config.load()
        sock = server.config.bind_socket()  # before the pid file: a port in use is an error, not a service
    except (OSError, SystemExit) as exc:
        raise ServiceError(f"cannot listen on {host}:{port}: {exc}") from exc
    pid = pid_file()
    pid.write_text(f"{os.getpid()}\n")
    os.chmod(pid, 0o600)
    from kvmfleet.compute import heartbeat

    beats = heartbeat.register(settings)
    from kvmfleet.compute import volume_ops

    # volume operations nobody holds (a dead owner's, or a submit this process missed) run again
    register_periodic("volume-recover", volume_ops.RECOVER_INTERVAL, volume_ops.recover)
    from kvmfleet.network import reconcile

    # tenant networks and port filters on the hosts follow the store (a rule change within seconds)
    register_periodic("network-converge", reconcile.PERIOD_S, reconcile.periodic)
    periodic = [Periodic(name, interval, fn) for name, (interval, fn) in periodic_jobs().items()]
    pool = WorkerPool(store, workers or settings.api.workers, periodic)
    log.info("kvmfleet serve %s:%d (pid %d, %d workers, store %s)", host, port, os.getpid(), pool.workers,
             store.url)
    if beats:
        log.info("heartbeats every %g s; a host silent for %g s is down", beats.interval, beats.down_after)
    else:
        log.info("heartbeats off (compute.heartbeat_interval 0): hosts change state only by `host refresh`")
    stop_signals: list[int] = []
    # uvicorn re-raises the signal that stopped it once it has stopped: with these handlers that only
    # records it, and the shutdown below (tasks finished or handed back, pid file removed) still runs.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda sig, _frame: stop_signals.append(sig))
    try:
        pool.start(recover_first=True)
        server.run(sockets=[sock])  # returns on SIGTERM/SIGINT (uvicorn's own handlers while it serves)
    finally:
        log.info("kvmfleet serve stopping: no new tasks; %d running get %.0f s", pool.busy, grace)
        pool.stop(grace)
        from kvmfleet.api import console_proxy

        killed = console_proxy.kill_all()  # uvicorn closed their websockets; any ssh left goes now
        if killed:
            log.info("killed %d console subprocess(es) still running", killed)
        sock.close()
        if pid.is_file() and pid.read_text().strip() == str(os.getpid()):
            pid.unlink(missing_ok=True)
        log.info("kvmfleet serve stopped")
