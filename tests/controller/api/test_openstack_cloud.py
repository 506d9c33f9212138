"""The openstack.cloud collection (2.5.0, shipped in the `ansible` 12.3 package that matches ansible-core
2.19) driving kvmfleet: openstack.cloud.server, server_action and server_info in playbooks run by the venv's
ansible-playbook with OS_CLIENT_CONFIG_FILE, each run twice — the second run reports changed=0 — and what
they did checked on the lab's hosts.

The collection's modules run on localhost with the interpreter `make openstack-cloud-venv` builds
(openstacksdk 4.14): collection 2.5.0 reads `openstack.version`, which openstacksdk removed in 4.15, and
the venv's openstacksdk is 4.22 (what python-openstackclient 10.5 needs)."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, REPO, Service
from conftest_lab import LabHost, lab_hosts

pytestmark = pytest.mark.lab

PLAYBOOKS = Path(__file__).parent / "playbooks"
MODULE_PYTHON = REPO / ".cache" / "openstack-cloud-venv" / "bin" / "python"
SUFFIX = secrets.token_hex(3)
TENANT = f"ans-{SUFFIX}"
NAME = f"ans-vm-{SUFFIX}"


def run_playbook(svc: Service, tmp: Path, playbook: str) -> dict[str, Any]:
    """ansible-playbook with the JSON callback; returns the localhost stats (ok, changed, failures...)."""
    assert MODULE_PYTHON.is_file(), f"{MODULE_PYTHON} missing: run `make openstack-cloud-venv`"
    inventory = tmp / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={MODULE_PYTHON}\n")
    env = {**svc.env, "OS_CLIENT_CONFIG_FILE": str(svc.clouds_file), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / playbook),
                           "-e", f"cloud={TENANT}", "-e", f"server_name={NAME}"],
                          capture_output=True, text=True, env=env, timeout=1800, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{playbook}: no JSON report (rc {proc.returncode})\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}") from exc
    failed = [(t["task"]["name"], r.get("msg"), r.get("extra_data") or r.get("stderr"))
              for play in report["plays"] for t in play["tasks"] for r in t["hosts"].values()
              if r.get("failed") or r.get("unreachable")]
    assert proc.returncode == 0 and not failed, f"{playbook} failed (rc {proc.returncode}): {failed}\n{proc.stderr[-3000:]}"
    return report["stats"]["localhost"]


@pytest.fixture(scope="module")
def tenant(compute_service: Service) -> Service:
    compute_service.user(TENANT, project=TENANT, role="member")
    yield compute_service
    compute_service.openstack("server", "delete", "--wait", NAME, cloud=TENANT, check=False, timeout=900)


def where(svc: Service, hosts: list[LabHost]) -> tuple[LabHost, str]:
    listed = svc.openstack("server", "list", "--all-projects", "--name", f"^{NAME}$", as_json=True)
    assert len(listed) == 1, listed
    shown = svc.openstack("server", "show", listed[0]["ID"], as_json=True)  # as admin: host attributes
    return next(h for h in hosts if h.name == shown["OS-EXT-SRV-ATTR:host"]), shown["OS-EXT-SRV-ATTR:instance_name"]


def test_collection_server_lifecycle_is_idempotent(tenant: Service, tmp_path: Path, lab_inventory: Path) -> None:
    hosts = lab_hosts(lab_inventory)

    first = run_playbook(tenant, tmp_path, "server_stopped.yml")
    assert first["changed"] == 2, first  # created, stopped
    host, domain = where(tenant, hosts)
    assert host.run(f"virsh domstate {domain}").strip() == "shut off"
    again = run_playbook(tenant, tmp_path, "server_stopped.yml")
    assert again["changed"] == 0, again

    first = run_playbook(tenant, tmp_path, "server_started.yml")
    assert first["changed"] == 1, first
    assert host.run(f"virsh domstate {domain}").strip() == "running"
    again = run_playbook(tenant, tmp_path, "server_started.yml")
    assert again["changed"] == 0, again

    first = run_playbook(tenant, tmp_path, "server_absent.yml")
    assert first["changed"] == 1, first
    assert domain not in host.domains()
    again = run_playbook(tenant, tmp_path, "server_absent.yml")
    assert again["changed"] == 0, again
