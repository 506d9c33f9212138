"""The collection builds with ansible-galaxy, installs, and its modules are found from the install."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_collection_builds_installs_and_documents_its_modules(tmp_path):
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    run([BIN / "ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO)])
    tarball = tmp_path / f"kvmfleet-compute-{galaxy['version']}.tar.gz"
    assert tarball.exists()
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    # Modules, module_utils, role and playbooks ship; tests, CI and the controller do not.
    for wanted in ("plugins/modules/domain.py", "plugins/modules/host_facts.py", "plugins/action/image.py",
                   "plugins/module_utils/_domain_xml.py", "roles/kvm_host/tasks/main.yml",
                   "playbooks/instance.yml", "meta/runtime.yml"):
        assert wanted in names, wanted
    for unwanted in ("tests/", "controller/", ".ci/", "pyproject.toml", "bench/"):
        assert not any(n == unwanted.rstrip("/") or n.startswith(unwanted) for n in names), unwanted
    dest = tmp_path / "installed"
    run([BIN / "ansible-galaxy", "collection", "install", "--force", "-p", str(dest), str(tarball)])
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest))
    env.pop("ANSIBLE_CONFIG", None)
    for module in ("domain", "domain_info", "host_facts", "image", "volume", "volume_attachment"):
        doc = run([BIN / "ansible-doc", "-t", "module", f"kvmfleet.compute.{module}"], env=env, cwd=str(tmp_path))
        assert f"kvmfleet.compute.{module}" in doc.stdout
    listing = run([BIN / "ansible-doc", "-l", "kvmfleet.compute"], env=env, cwd=str(tmp_path)).stdout
    assert {"kvmfleet.compute.domain", "kvmfleet.compute.image"} <= {line.split()[0] for line in listing.splitlines() if line}
