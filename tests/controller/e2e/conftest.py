"""End-to-end fixtures: the real lab named by $KVMFLEET_LAB, driven only through the `kvmfleet` CLI.

One controller state dir (SQLite store, job dirs, registered image) serves the whole session; each test
deletes what it created, and the session ends by checking that no domain of ours is left on any host.
Missing lab or tiny image is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest_lab import LabHost, lab_hosts  # tests/controller/conftest.py puts it on sys.path

REPO = Path(__file__).resolve().parents[3]
KVMFLEET = Path(sys.executable).parent / "kvmfleet"
TINY_IMAGE = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
PROJECT = "e2e"
READY = "kvmfleet-guest: ready"
POWER_OFF = "power button pressed"


class CliError(AssertionError):
    pass


@dataclass
class Fleet:
    """The CLI with one state dir, plus direct (ssh) views of the lab hosts for checking."""

    env: dict[str, str]
    hosts: list[LabHost]
    created: set[str] = field(default_factory=set)
    timings: list[tuple[float, str]] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = subprocess.run([str(KVMFLEET), *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)
        self.timings.append((time.monotonic() - start, " ".join(args[:3])))
        if check and proc.returncode != 0:
            raise CliError(f"kvmfleet {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                           f"stderr: {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must fail: returns its one-line error (stderr)."""
        proc = self.run(*args, check=False)
        assert proc.returncode != 0, f"kvmfleet {' '.join(args)} succeeded but should have failed:\n{proc.stdout}"
        return " ".join(proc.stderr.split())

    def create(self, name: str, *args: str, check: bool = True) -> list[dict[str, Any]]:
        proc = self.run("server", "create", name, "--project", PROJECT, "--wait", "-f", "json", *args, check=check)
        rows = json.loads(proc.stdout) if proc.stdout.strip() else []
        self.created.update(r["id"] for r in rows)
        if check:
            assert all(r["status"] == "ACTIVE" for r in rows), rows
        return rows

    def create_on(self, host: str, *servers: tuple[str, str], why: str = "e2e: build on one host") -> list[dict[str, Any]]:
        """Create each (name, flavor) server on `host`: every other host is disabled meanwhile."""
        others = [h.name for h in self.hosts if h.name != host]
        for name in others:
            self.run("host", "disable", name, "--reason", why)
        try:
            rows = [self.create(name, "--flavor", flavor, "--image", "tiny")[0] for name, flavor in servers]
        finally:
            for name in others:
                self.run("host", "enable", name)
        assert all(r["host"] == host for r in rows), rows
        return rows

    def show(self, server: str) -> dict[str, Any]:
        return self.json("server", "show", server)

    def servers(self) -> list[dict[str, Any]]:
        return self.json("server", "list")

    def host_usage(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in self.json("host", "list")}

    def delete(self, *servers: str) -> None:
        if servers:
            self.run("server", "delete", *servers)

    def lab_host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def console(self, server: str) -> str:
        """The serial log read straight from the host (fast enough to poll; `server console-log` is
        exercised on its own in the lifecycle test)."""
        shown = self.show(server)
        path = f"/var/lib/libvirt/kvmfleet/instances/kvmfleet-{shown['id']}/console.log"
        return self.lab_host(shown["host"]).run(f"cat {path} 2>/dev/null || true")

    def wait_ready(self, server: str, timeout: float = 120, fresh: bool = False) -> str:
        """Wait for the guest's ready line; returns it. The serial log starts afresh at every boot
        (append=off), so fresh=True also waits until the previous boot's power-off lines are gone."""
        deadline = time.monotonic() + timeout
        shown = self.show(server)
        host = self.lab_host(shown["host"])
        path = f"/var/lib/libvirt/kvmfleet/instances/kvmfleet-{shown['id']}/console.log"
        log = ""
        while time.monotonic() < deadline:
            log = host.run(f"cat {path} 2>/dev/null || true")
            lines = [ln for ln in log.splitlines() if READY in ln]
            if lines and not (fresh and POWER_OFF in log):
                return lines[-1]
            time.sleep(1)
        raise AssertionError(f"server {server}: no {'fresh ' if fresh else ''}ready line after {timeout}s; "
                             f"console tail: {log[-500:]}")


@pytest.fixture(scope="session")
def fleet(lab_inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert TINY_IMAGE.is_file(), f"tiny image missing: {TINY_IMAGE} (run `kvmfleet image build-tiny`)"
    state = tmp_path_factory.mktemp("kvmfleet-state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVMFLEET_") or k == "KVMFLEET_LAB"}
    env.update({"KVMFLEET_STATE_DIR": str(state), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "COLUMNS": "200"})
    f = Fleet(env=env, hosts=lab_hosts(lab_inventory))
    assert len(f.hosts) >= 3, f"the e2e tests need a lab of 3 hosts, {lab_inventory} has {len(f.hosts)}"
    f.run("host", "import", "--inventory", str(lab_inventory))
    f.run("image", "register", "tiny", "--file", str(TINY_IMAGE))
    f.run("project", "create", PROJECT)
    f.run("quota", "set", PROJECT, "--instances", "-1", "--cores", "-1", "--ram", "-1")
    f.run("flavor", "create", "e2e.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    f.run("flavor", "create", "e2e.micro", "--vcpus", "1", "--ram", "192", "--disk", "1")
    # Sparse qcow2 overlays make a 200 GB root disk free to build, yet only one fits on a lab host.
    f.run("flavor", "create", "e2e.disk200", "--vcpus", "1", "--ram", "128", "--disk", "200")
    f.run("flavor", "create", "e2e.eph1", "--vcpus", "1", "--ram", "128", "--disk", "1", "--ephemeral", "1")
    f.run("flavor", "create", "e2e.eph2", "--vcpus", "1", "--ram", "192", "--disk", "2", "--ephemeral", "2")
    f.run("flavor", "create", "e2e.eph200", "--vcpus", "1", "--ram", "192", "--disk", "200", "--ephemeral", "3")
    f.run("flavor", "create", "e2e.huge", "--vcpus", "1", "--ram", "4194304", "--disk", "1")  # 4 TiB
    yield f
    slow = sorted(f.timings, reverse=True)[:8]
    print("\nslowest kvmfleet commands: " + "; ".join(f"{cmd} {secs:.1f}s" for secs, cmd in slow))
    print(f"kvmfleet commands: {len(f.timings)}, {sum(t for t, _ in f.timings):.0f}s in total")
    # Whatever a failed test left behind goes, then nothing of ours may remain on any host.
    left = [s["id"] for s in f.servers()]
    for server in left:
        f.run("server", "delete", server, check=False)
    leaked = {h.name: [d for d in h.domains() if any(u in d for u in f.created)] for h in f.hosts}
    assert not any(leaked.values()), f"domains left on the hosts: {leaked}"
