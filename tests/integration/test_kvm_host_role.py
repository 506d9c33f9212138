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
                          capture_output=True, text=True, env=env, timeout=1200, check=False)
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, out[-6000:]
    for action in ("prepare", "converge", "idempotence", "check", "verify"):
        assert re.search(rf"default (?:➜|>) {action}: Executed: Successful", out), f"{action} did not run:\n{out[-6000:]}"
    # Printed recaps in order: prepare, converge, [idempotence], check, verify. Molecule judges idempotence
    # itself; older releases printed that run's recap only on failure, molecule 26.10 prints it (changed=0).
    # Prepare stops the network only on hosts with no running domain; where it did, converge must have
    # started it again.
    for host in lab.hosts:
        changed = [int(c) for c in re.findall(rf"{re.escape(host)}\s+: ok=\d+\s+changed=(\d+)", out)]
        assert len(changed) in (4, 5), f"{host}: expected 4 or 5 play recaps, got {changed}"
        prepare, converge, *between, check, _verify = changed
        if prepare:
            assert converge > 0, f"{host}: prepare undid the network but converge changed nothing"
        assert between in ([], [0]), f"{host}: the idempotence run reported {between} change(s)"
        assert check == 0, f"{host}: check mode after converge reported {check} change(s)"
