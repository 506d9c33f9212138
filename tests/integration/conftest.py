"""Integration tests: ansible-playbook against the lab named by $KVMFLEET_LAB.

No lab, no tiny image: the tests fail (never skip), saying what is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LAB_ROOT = Path(os.environ.get("KVMFLEET_LAB_ROOT", "/var/lib/kvmfleet-lab"))
TINY_IMAGE = Path(os.environ.get("KVMFLEET_TINY_IMAGE", str(REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2")))
RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)", re.MULTILINE)


@dataclass
class Lab:
    name: str
    inventory: Path
    hosts: dict
    vars: dict = field(default_factory=dict)


@dataclass
class PlaybookRun:
    args: list
    rc: int
    stdout: str
    stderr: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                for m in RECAP_RE.finditer(self.stdout)}

    def tail(self, lines: int = 80) -> str:
        return "\n".join((self.stdout + "\n" + self.stderr).splitlines()[-lines:])


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin")
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "build" / "collections")
    env["ANSIBLE_ROLES_PATH"] = str(HERE / "targets")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    return env


def run_playbook(playbook: Path, inventory: Path, extra_vars: dict | None = None, *, limit: str | None = None,
                 timeout: int = 1500) -> PlaybookRun:
    args = ["ansible-playbook", "-i", str(inventory), str(playbook)]
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    if limit:
        args += ["--limit", limit]
    # Under the controller's guard (PDEATHSIG, subreaper): a killed pytest leaves no playbook running.
    guarded = [sys.executable, "-m", "kvmfleet.ansible_guard", *args[1:]]
    proc = subprocess.run(guarded, capture_output=True, text=True, env=ansible_env(), cwd=str(REPO), timeout=timeout,
                          check=False)
    return PlaybookRun(args, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def collection_link() -> Path:
    link = REPO / "build" / "collections" / "ansible_collections" / "kvmfleet" / "compute"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)
    return link


@pytest.fixture(scope="session")
def lab(collection_link) -> Lab:
    name = os.environ.get("KVMFLEET_LAB")
    if not name:
        pytest.fail("KVMFLEET_LAB is not set: name the lab to test against (kvmfleet lab up --name NAME --hosts 2)")
    inventory = LAB_ROOT / name / "hosts.yml"
    if not inventory.is_file():
        pytest.fail(f"lab {name!r} has no inventory at {inventory}: run `kvmfleet lab up --name {name} --hosts 2`")
    data = yaml.safe_load(inventory.read_text())
    group = data["all"]["children"]["kvm_hosts"]
    hosts = group.get("hosts") or {}
    if len(hosts) < 2:
        pytest.fail(f"lab {name!r} has {len(hosts)} host(s); the integration tests need at least 2")
    return Lab(name, inventory, hosts, group.get("vars") or {})


@pytest.fixture(scope="session")
def tiny_image() -> dict[str, str]:
    sha_file = Path(f"{TINY_IMAGE}.sha256")
    if not TINY_IMAGE.is_file() or not sha_file.is_file():
        pytest.fail(f"tiny guest image missing at {TINY_IMAGE} (+ .sha256): run `kvmfleet image build-tiny`")
    return {"image_src": str(TINY_IMAGE), "image_sha256": sha_file.read_text().split()[0]}


@pytest.fixture
def prefix() -> str:
    """A random name prefix, so runs never collide with each other or with leftovers."""
    return "it" + secrets.token_hex(3)
