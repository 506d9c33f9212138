"""The collection runs on the oldest ansible-core it declares in meta/runtime.yml.

`make test` builds a second virtualenv with that release (.cache/ansible-oldest); this runs a smoke
playbook of every module with it against the lab.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from conftest import REPO, ansible_env

OLDEST_VENV = REPO / ".cache" / "ansible-oldest"


def test_oldest_declared_ansible_core_runs_every_module(lab, tiny_image, prefix):
    declared = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    oldest = re.match(r">=\s*(\d+\.\d+)", declared).group(1)
    playbook = OLDEST_VENV / "bin" / "ansible-playbook"
    if not playbook.exists():
        pytest.fail(f"{playbook} is missing: `make test` creates it (ansible-core {oldest}.*)")
    version = subprocess.run([str(playbook), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"core {oldest}." in version.splitlines()[0], version
    env = ansible_env()
    env["PATH"] = f"{OLDEST_VENV / 'bin'}:{env['PATH']}"
    extra = dict(tiny_image, prefix=prefix)
    proc = subprocess.run([str(playbook), "-i", str(lab.inventory), str(REPO / "tests/integration/oldest/smoke.yml"),
                           "-e", json.dumps(extra)], capture_output=True, text=True, env=env, cwd=str(REPO),
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout
