"""The service under test: a real `kvmfleet serve` process on a free loopback port, with its own state
dir, identity bootstrapped through the CLI, driven by the real OpenStack clients and by plain HTTP.

    service                 the running service (session); .url, .cli(), .openstack(), .token(), .http()
    compute_service         the same service with the lab's hosts imported, the tiny image and the
                            api.* flavors registered (needs $KVMFLEET_LAB: a missing lab fails, never skips)

Users: `service.user("alice", project="pa", role="member")` creates (once) a user with a random password
in a project, and a clouds.yaml entry named after it; `service.openstack(..., cloud="alice")`.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
KVMFLEET = BIN / "kvmfleet"
OPENSTACK = BIN / "openstack"
TINY_IMAGE = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
ADMIN_CLOUD = "kvmfleet-admin"


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM (a clean shutdown) when pytest dies, so a killed test run
    leaves no service behind."""
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CommandError(AssertionError):
    pass


@dataclass
class User:
    name: str
    password: str
    project: str
    roles: tuple[str, ...]


@dataclass
class Service:
    state: Path
    port: int
    env: dict[str, str]
    admin_password: str
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, User] = field(default_factory=dict)
    log_offset: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def clouds_file(self) -> Path:
        return self.state / "clouds.yaml"

    @property
    def pid_file(self) -> Path:
        return self.state / "kvmfleet-serve.pid"

    # -- process ------------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        log = open(self.state / "serve-stdout.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([str(KVMFLEET), "serve", "--bind", f"127.0.0.1:{self.port}"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)  # noqa: PLW1509 - only prctl runs before exec
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kvmfleet serve exited {self.proc.returncode}: "
                                     f"{(self.state / 'serve-stdout.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/identity", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"kvmfleet serve did not answer on {self.url} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Stop the service by the pid it wrote (SIGTERM: clean shutdown; SIGKILL: a crash)."""
        if self.proc is None:
            return None
        pid = int(self.pid_file.read_text()) if self.pid_file.is_file() else self.proc.pid
        assert pid == self.proc.pid, f"pid file says {pid}, the process we started is {self.proc.pid}"
        os.kill(pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            rc = self.proc.wait(timeout=30)
        self.proc = None
        return rc

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- clients ------------------------------------------------------------------------------------

    def cli(self, *args: str, input: str | None = None, check: bool = True,
            timeout: int = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(KVMFLEET), *args], input=input, capture_output=True, text=True, env=self.env,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise CommandError(f"kvmfleet {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                               f"stderr: {proc.stderr}")
        return proc

    def openstack(self, *args: str, cloud: str = ADMIN_CLOUD, check: bool = True, timeout: int = 600,
                  as_json: bool = False) -> Any:
        """The real python-openstackclient against this service (clouds.yaml in the state dir)."""
        argv = [str(OPENSTACK), "--os-cloud", cloud, *args]
        if as_json:
            argv += ["-f", "json"]
        env = {**self.env, "OS_CLIENT_CONFIG_FILE": str(self.clouds_file)}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise CommandError(f"openstack {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                               f"stderr: {proc.stderr}")
        if as_json and proc.returncode == 0:
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc

    def user(self, name: str, project: str, role: str | tuple[str, ...] = "member") -> User:
        """A user with a random password and role(s) on `project` (created, with the project, once), and
        its clouds.yaml entry `name`."""
        if name in self.users:
            return self.users[name]
        roles = (role,) if isinstance(role, str) else tuple(role)
        if self.cli("project", "show", project, check=False).returncode != 0:
            self.cli("project", "create", project)
        password = secrets.token_urlsafe(16)
        argv = ["user", "create", name, "--project", project, "--password-stdin"]
        for r in roles:
            argv += ["--role", r]
        self.cli(*argv, input=password + "\n")
        self.users[name] = User(name, password, project, roles)
        self.write_clouds()
        return self.users[name]

    def register_user(self, name: str, password: str, project: str, roles: tuple[str, ...] = ("member",)) -> User:
        """Record a user made some other way (e.g. by `openstack user create`) and give it a clouds.yaml
        entry; ``forget_user`` drops it again."""
        self.users[name] = User(name, password, project, roles)
        self.write_clouds()
        return self.users[name]

    def forget_user(self, name: str) -> None:
        self.users.pop(name, None)
        self.write_clouds()

    def write_clouds(self) -> None:
        clouds = {ADMIN_CLOUD: self._cloud("admin", self.admin_password, "admin")}
        for u in self.users.values():
            clouds[u.name] = self._cloud(u.name, u.password, u.project)
        self.clouds_file.write_text(yaml.safe_dump({"clouds": clouds}))
        self.clouds_file.chmod(0o600)

    def _cloud(self, user: str, password: str, project: str) -> dict[str, Any]:
        return {"auth": {"auth_url": f"{self.url}/identity", "username": user, "password": password,
                         "project_name": project, "user_domain_name": "Default",
                         "project_domain_name": "Default"},
                "region_name": "RegionOne", "interface": "public", "identity_api_version": 3}

    def token(self, user: str = "admin", password: str | None = None, project: str | None = "admin") -> str:
        """A project-scoped token by plain HTTP (Keystone's password method)."""
        if password is None:
            password = self.admin_password if user == "admin" else self.users[user].password
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}}}
        if project:
            auth["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
        r = httpx.post(f"{self.url}/identity/v3/auth/tokens", json={"auth": auth}, timeout=30)
        assert r.status_code == 201, (r.status_code, r.text)
        return r.headers["X-Subject-Token"]

    def http(self, token: str | None = None, microversion: str | None = None) -> httpx.Client:
        headers = {}
        if token:
            headers["X-Auth-Token"] = token
        if microversion:
            headers["OpenStack-API-Version"] = f"compute {microversion}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def log_text(self) -> str:
        path = self.state / "logs" / "kvmfleet.log"
        return path.read_text(errors="replace") if path.is_file() else ""


QUIET_CONFIG: dict[str, Any] = {"compute": {"heartbeat_interval": 0}}


def make_service(tmp: Path) -> Service:
    state = tmp / "state"
    state.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KVMFLEET_", "OS_"))}
    if os.environ.get("KVMFLEET_LAB"):
        env["KVMFLEET_LAB"] = os.environ["KVMFLEET_LAB"]
    env.update({"KVMFLEET_STATE_DIR": str(state), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "COLUMNS": "200"})
    svc = Service(state=state, port=free_port(), env=env, admin_password=secrets.token_urlsafe(16))
    # No heartbeats unless a test asks for them (service_factory): a host refresh every 10 s in every
    # service would cost the lab a core. Each test's service refreshes its hosts when it adds them.
    (state / "kvmfleet.yml").write_text(yaml.safe_dump(QUIET_CONFIG))
    svc.cli("db", "upgrade")
    svc.cli("identity", "bootstrap", "--admin-password-stdin", input=svc.admin_password + "\n")
    svc.write_clouds()
    return svc


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    svc = make_service(tmp_path_factory.mktemp("api"))
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def service_factory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """More services for one test module, each with its own state dir, port and (optional) kvmfleet.yml:
    ``svc = service_factory({"api": {"token_expiration": 120}})``; all stopped after the module."""
    made: list[Service] = []

    def make(config: dict[str, Any] | None = None) -> Service:
        svc = make_service(tmp_path_factory.mktemp("api-extra"))
        if config:
            merged = {**QUIET_CONFIG, **config, "compute": {**QUIET_CONFIG["compute"], **config.get("compute", {})}}
            (svc.state / "kvmfleet.yml").write_text(yaml.safe_dump(merged))
        svc.start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop()


@pytest.fixture(scope="session")
def compute_service(service: Service, lab_inventory: Path) -> Service:
    """The service with the lab's hosts, the tiny image and the api.* flavors (once per session)."""
    assert TINY_IMAGE.is_file(), f"tiny image missing: {TINY_IMAGE} (run `kvmfleet image build-tiny`)"
    if not (service.state / ".compute-ready").exists():
        service.cli("host", "import", "--inventory", str(lab_inventory))
        service.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
        service.cli("flavor", "create", "api.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
        service.cli("flavor", "create", "api.micro", "--vcpus", "1", "--ram", "192", "--disk", "1")
        (service.state / ".compute-ready").touch()
    return service
