"""Shared by the API benchmarks: a `kvmfleet serve` of their own (a temp state dir, its own store, identity
bootstrapped through the CLI, a member user for the project `bench`), started on a free loopback port and
stopped by its pid."""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
KVMFLEET = Path(sys.executable).parent / "kvmfleet"
TINY = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
PROJECT = "bench"
MICROVERSION = "2.79"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchService:
    def __init__(self, config: str = "", database_url: str | None = None) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="kvmfleet-apibench-"))
        self.state.chmod(0o700)
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KVMFLEET_", "OS_"))}
        self.env.update({"KVMFLEET_STATE_DIR": str(self.state), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                         "KVMFLEET_PROJECT": PROJECT, "KVMFLEET_LOG_LEVEL": "WARNING"})
        if database_url:
            self.env["KVMFLEET_DATABASE_URL"] = database_url
        if config:
            (self.state / "kvmfleet.yml").write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.password = secrets.token_urlsafe(16)          # the member `bench`
        self.admin_password = secrets.token_urlsafe(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(KVMFLEET), *args], input=input, capture_output=True, text=True, env=self.env,
                              timeout=1800, check=False)
        if check and proc.returncode != 0:
            raise SystemExit(f"kvmfleet {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-f", "json").stdout)

    def prepare(self) -> None:
        """Store, identity (admin + a member `bench` of project `bench`, quotas unlimited), flavor, image."""
        self.cli("db", "upgrade")
        self.cli("identity", "bootstrap", "--admin-password-stdin", input=self.admin_password + "\n")
        self.cli("project", "create", PROJECT)
        self.cli("quota", "set", PROJECT, "--instances", "-1", "--cores", "-1", "--ram", "-1")
        self.cli("user", "create", "bench", "--project", PROJECT, "--role", "member", "--password-stdin",
                 input=self.password + "\n")
        self.cli("flavor", "create", "bench.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
        self.cli("image", "register", "tiny", "--file", str(TINY))

    def start(self, timeout: float = 120) -> None:
        log = open(self.state / "serve.out", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([str(KVMFLEET), "serve", "--bind", f"127.0.0.1:{self.port}"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"kvmfleet serve exited {self.proc.returncode}: "
                                 f"{(self.state / 'serve.out').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/identity", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"kvmfleet serve did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def token(self, admin: bool = False) -> str:
        """A project-scoped token: the member of `bench`, or the admin of `admin`."""
        user, password, project = ("admin", self.admin_password, "admin") if admin else ("bench", self.password, PROJECT)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
        r = httpx.post(f"{self.url}/identity/v3/auth/tokens", json=body, timeout=30)
        if r.status_code != 201:
            raise SystemExit(f"token: {r.status_code} {r.text[:500]}")
        return r.headers["X-Subject-Token"]

    def headers(self, token: str) -> dict[str, str]:
        return {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {MICROVERSION}"}


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds (nearest rank)."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": ordered[-1] * 1000, "n": len(ordered)}
