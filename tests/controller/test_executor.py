"""The executor against the real lab: real playbooks, real sshd, real unreachable addresses.

The lab is named by $KVMFLEET_LAB; without it these tests fail (they never skip).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from pathlib import Path

import pytest
from kvmfleet import executor
from kvmfleet.executor import HostStatus, InventoryHost, Job, JobStatus

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab_hosts() -> list[InventoryHost]:
    lab = os.environ.get("KVMFLEET_LAB")
    assert lab, "KVMFLEET_LAB must name a running lab (kvmfleet lab up --name NAME)"
    path = Path("/var/lib/kvmfleet-lab") / lab / "hosts.yml"
    assert path.is_file(), f"lab inventory missing: {path}"
    hosts = executor.read_inventory_file(path)
    assert hosts, f"no hosts in {path}"
    return hosts


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("KVMFLEET_STATE_DIR", str(state))
    return state


def _unused_address(hosts: list[InventoryHost]) -> str:
    """An address on the lab's own subnet that no lab host uses: traffic never leaves the machine."""
    used = {ipaddress.ip_address(h.address) for h in hosts}
    net = ipaddress.ip_network(f"{hosts[0].address}/24", strict=False)
    for candidate in reversed(list(net.hosts())):
        if candidate not in used:
            return str(candidate)
    raise AssertionError("no free lab address")


def _playbook(tmp_path: Path, name: str, tasks: str) -> str:
    path = tmp_path / name
    path.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n" + tasks)
    return str(path)


def test_host_facts_on_every_host(lab_hosts):
    result = executor.run(Job(playbook="host_refresh.yml", inventory=executor.build_inventory(lab_hosts)))
    assert result.status is JobStatus.SUCCESSFUL, result.stdout_tail
    assert set(result.hosts) == {h.name for h in lab_hosts}
    for host in lab_hosts:
        facts = result.host(host.name).result_of("kvmfleet.compute.host_facts")
        assert facts is not None, f"no host_facts result for {host.name}"
        hf = facts["host_facts"]
        assert hf["vcpus"] >= 1 and hf["memory_mb"] > 0
        assert "qemu" in hf["virt_types"]
    counters = [e["counter"] for e in result.events]
    assert counters == sorted(counters) and len(set(counters)) == len(counters)
    assert (result.private_data_dir / "result.json").is_file()


def test_unreachable_host_does_not_fail_the_others(lab_hosts):
    ghost = InventoryHost("ghost", _unused_address(lab_hosts), dict(lab_hosts[0].vars))
    inventory = executor.build_inventory([*lab_hosts, ghost])
    result = executor.run(Job(playbook="host_refresh.yml", inventory=inventory, timeout=120))
    assert result.status is JobStatus.FAILED
    assert result.host("ghost").status is HostStatus.UNREACHABLE
    assert "ghost" not in {h.name for h in lab_hosts}
    assert result.host("ghost").error
    for host in lab_hosts:
        assert result.host(host.name).ok, result.host(host.name).error
        assert result.host(host.name).result_of("host_facts") is not None


def test_cancel_stops_a_running_job(lab_hosts, tmp_path):
    playbook = _playbook(tmp_path, "sleep.yml", "    - ansible.builtin.command: sleep 120\n")
    start = time.monotonic()
    result = executor.run(Job(playbook=playbook, inventory=executor.build_inventory(lab_hosts),
                              cancel_callback=lambda: time.monotonic() - start > 2))
    assert result.status is JobStatus.CANCELED
    assert time.monotonic() - start < 30


def test_timeout_is_its_own_status(lab_hosts, tmp_path):
    playbook = _playbook(tmp_path, "sleep.yml", "    - ansible.builtin.command: sleep 120\n")
    result = executor.run(Job(playbook=playbook, inventory=executor.build_inventory(lab_hosts[:1]), timeout=3))
    assert result.status is JobStatus.TIMEOUT


def test_secret_extravars_never_written(lab_hosts, tmp_path, state_dir):
    secret = "#!/bin/sh\necho s3cr3t-user-data-7431\n"
    playbook = _playbook(tmp_path, "leak.yml", (
        "    - ansible.builtin.debug:\n        msg: 'user data is {{ user_data }}'\n"
        "    - ansible.builtin.command: echo {{ user_data | quote }}\n"
        "    - ansible.builtin.fail:\n        msg: 'failing with {{ user_data }}'\n"
    ))
    result = executor.run(Job(playbook=playbook, inventory=executor.build_inventory(lab_hosts[:1]),
                              extravars={"user_data": secret, "plain": "visible"}, secret_vars=("user_data",)))
    assert result.status is JobStatus.FAILED
    assert executor.REDACTED in result.host(lab_hosts[0].name).error
    assert not (result.private_data_dir / "env" / "extravars").exists()
    for path in state_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "s3cr3t-user-data-7431" not in text, f"secret written to {path}"
    assert "s3cr3t-user-data-7431" not in json.dumps(result.events)
    # The command's output went through the redactor too, yet still ran with the real value.
    echoed = result.host(lab_hosts[0].name).result_of("ansible.builtin.command")
    assert echoed is not None and executor.REDACTED in echoed["stdout"]
    command = json.loads((result.private_data_dir / "artifacts" / result.id / "command").read_text())
    assert set(command["env"]) <= {"PATH", "ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_HOST_KEY_CHECKING",
                                   "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_NOCOLOR", "ANSIBLE_FORKS"}


def test_only_the_last_jobs_are_kept(lab_hosts, tmp_path, state_dir):
    playbook = _playbook(tmp_path, "ping.yml", "    - ansible.builtin.ping:\n")
    ids = []
    for _ in range(3):
        result = executor.run(Job(playbook=playbook, inventory=executor.build_inventory(lab_hosts[:1])), keep=2)
        assert result.ok, result.stdout_tail
        ids.append(result.id)
        time.sleep(0.05)
    kept = sorted(p.name for p in (state_dir / "jobs").iterdir())
    assert kept == sorted(ids[1:])


def test_bad_playbook_is_refused_before_any_job_dir(lab_hosts, state_dir):
    with pytest.raises(executor.ExecutorError, match="playbook not found"):
        executor.run(Job(playbook="no_such_playbook.yml", inventory=executor.build_inventory(lab_hosts)))
    assert not (state_dir / "jobs").exists()


def test_a_failed_command_names_its_stderr(lab_hosts, tmp_path):
    """A command task that fails on a real host: the error carries its rc and the end of its stderr, not
    only Ansible's "non-zero return code" (for a loop, each failed item's)."""
    tasks = ("    - name: Fail with a reason\n"
             "      ansible.builtin.command: {argv: [sh, -c, 'echo first line >&2; echo the reason >&2; exit 3']}\n"
             "      loop: [a]\n")
    result = executor.run(Job(playbook=_playbook(tmp_path, "fail.yml", tasks), inventory=executor.build_inventory(lab_hosts[:1])))
    error = result.error_for(lab_hosts[0].name)
    assert error == "Fail with a reason: non-zero return code (rc 3): first line the reason", error


TENANT_TEXT = {
    "mac": "52:54:00:24:02:53",  # a YAML 1.1 base-60 integer when read as a plain scalar
    "name": "yes", "blank": "null", "hex": "0x10", "octal": "0755", "template": "{{ 6 * 7 }}",
}


def test_extravars_reach_the_playbook_as_the_strings_sent(lab_hosts, tmp_path):
    """Tenant text goes through the extravars file unchanged: not retyped (ansible-core 2.19 read
    `!unsafe "52:54:00:24:02:53"` as the integer 41135126573, which broke a cold migration), and never
    rendered as a template. Nested values too, since the playbooks take the instance as one mapping."""
    extravars = {**TENANT_TEXT, "nested": {"nics": [{"mac": TENANT_TEXT["mac"]}], "deep": dict(TENANT_TEXT)},
                 "count": 3, "flag": True}
    tasks = ("    - name: Report\n"
             "      ansible.builtin.set_fact:\n"
             "        seen: {types: \"{{ [mac, name, blank, hex, octal, template, count, flag] | map('type_debug') | list }}\",\n"
             "               values: [\"{{ mac }}\", \"{{ template }}\", \"{{ nested.nics[0].mac }}\", \"{{ nested.deep.name }}\"],\n"
             "               nested: \"{{ nested.deep.mac | type_debug }}\"}\n")
    result = executor.run(Job(playbook=_playbook(tmp_path, "types.yml", tasks), inventory=executor.build_inventory(lab_hosts[:1]),
                              extravars=extravars))
    assert result.ok, result.stdout_tail
    seen = result.host(lab_hosts[0].name).result_of("ansible.builtin.set_fact")["ansible_facts"]["seen"]
    assert [t.replace("AnsibleUnsafeText", "str") for t in seen["types"]] == ["str"] * 6 + ["int", "bool"], seen
    assert seen["values"] == [TENANT_TEXT["mac"], "{{ 6 * 7 }}", TENANT_TEXT["mac"], "yes"], seen
    assert seen["nested"] in ("str", "AnsibleUnsafeText"), seen


@pytest.mark.parametrize("root_tag", [True, False])
def test_unsafe_yaml_keeps_strings_quoted(root_tag):
    """Both forms (root mapping tagged for ansible-core 2.19+, each string tagged before it) quote every
    string, so no YAML loader retypes one."""
    import yaml

    text = executor.unsafe_yaml({"nested": dict(TENANT_TEXT), **TENANT_TEXT}, root_tag=root_tag)
    loader = type("L", (yaml.SafeLoader,), {})
    loader.add_constructor("!unsafe", lambda ld, node: (ld.construct_mapping(node, deep=True)
                                                        if isinstance(node, yaml.MappingNode) else ld.construct_scalar(node)))
    assert yaml.load(text, Loader=loader) == {"nested": TENANT_TEXT, **TENANT_TEXT}
    assert text.startswith("!unsafe") is root_tag
