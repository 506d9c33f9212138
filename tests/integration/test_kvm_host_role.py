"""The kvm_host role's molecule scenario (delegated driver: the lab's hosts): prepare, converge,
idempotence, check mode, verify."""

from __future__ import annotations

import re
import subprocess

from conftest import REPO, ansible_env


def test_molecule_default_scenario(lab):
    env = ansible_env()
    env["KVMFLEET_LAB"] = lab.name
    env["NO_COLOR"] = "1"
    proc = subprocess.run(["molecule", "test", "-s", "default"], cwd=str(REPO / "roles" / "kvm_host"),
                          capture_output=True, text=True, env=env, timeout=1200)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, out[-6000:]
    for action in ("prepare", "converge", "idempotence", "check", "verify"):
        assert re.search(rf"default (?:➜|>) {action}: Executed: Successful", out), f"{action} did not run:\n{out[-6000:]}"
    assert re.search(r"lab-h1\s+: ok=\d+\s+changed=[1-9]", out), "converge after prepare changed nothing"
