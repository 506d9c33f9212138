"""`kvmfleet serve`: one process that serves the API (uvicorn) and runs the task workers.

run(): the pid file <state dir>/kvmfleet-serve.pid, logs to <state dir>/logs/, TLS when given a
certificate and key, clean shutdown on SIGTERM. check(): configuration valid, store reachable.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kvmfleet.config import ConfigError, get_settings

log = logging.getLogger("kvmfleet.service")


class ServiceError(ConfigError):
    """The service cannot start (bad bind address, port in use, TLS files missing); the message says which."""


def pid_file() -> Path:
    return get_settings().state_dir / "kvmfleet-serve.pid"


def _bind(bind: str | None) -> tuple[str, int]:
    text = bind or get_settings().api.bind
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServiceError(f"--bind: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def check() -> str:
    """Configuration valid and the store answers at the current schema; a one-line report."""
    from kvmfleet.store import current_revision, get_store, head_revision

    settings = get_settings()
    _bind(None)
    store = get_store()
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    rev = current_revision(store.engine)
    if rev != head_revision():
        raise ServiceError(f"store schema is at {rev}, this kvmfleet needs {head_revision()}")
    return f"ok: config {settings.config_file or '(defaults)'}, store {store.engine.url.render_as_string()} at {rev}"


def run(bind: str | None = None, cert: str | None = None, key: str | None = None) -> None:
    import uvicorn

    from kvmfleet.api.app import create_app

    settings = get_settings()
    host, port = _bind(bind)
    cert = cert or settings.api.cert_file
    key = key or settings.api.key_file
    if bool(cert) != bool(key):
        raise ServiceError("--cert and --key: give both for TLS, or neither")
    for path in (cert, key):
        if path and not Path(path).is_file():
            raise ServiceError(f"TLS file {path} does not exist")
    app: Any = create_app()
    pid = pid_file()
    pid.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid.write_text(f"{os.getpid()}\n")
    try:
        uvicorn.run(app, host=host, port=port, ssl_certfile=cert, ssl_keyfile=key, log_level="warning",
                    access_log=False)
    finally:
        pid.unlink(missing_ok=True)
