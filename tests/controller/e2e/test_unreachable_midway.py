"""A host that stops answering WHILE it builds an instance: the build ends in ERROR naming the host, its claim
is released, and nothing is left on the host once it answers again (a domain the module finished building
after the controller lost the host is reaped by the next `host refresh`).

The host is cut off for real: its own end of the lab link (eth0 inside its network namespace, named by the
inventory's kvmfleet_lab_netns) goes down for the window, so only that lab host loses its traffic.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import KVMFLEET, PROJECT

pytestmark = pytest.mark.lab

CREATE_TASK = "Define and start instances"  # the build playbook's domain task (kvmfleet.compute.api)


def _netns(inventory, host: str) -> str:
    group = yaml.safe_load(inventory.read_text())["all"]["children"]["kvm_hosts"]
    return {**(group.get("vars") or {}), **(group["hosts"][host] or {})}["kvmfleet_lab_netns"]


def _link(netns: str, state: str) -> None:
    subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "eth0", state], check=True, timeout=30)


def _job_dirs(fleet) -> set[Path]:
    return set((Path(fleet.env["KVMFLEET_STATE_DIR"]) / "jobs").glob("*"))


def _wait_task_start(fleet, task: str, before: set[Path], proc: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until a job started after `before` has begun `task` (its live ansible-runner events say so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"create ended before the host was cut off: {proc.communicate()}"
        for job in _job_dirs(fleet) - before:
            for event in job.glob("artifacts/*/job_events/*.json"):
                try:
                    text = event.read_text()
                except OSError:
                    continue
                if "playbook_on_task_start" in text and task in text:
                    return
        time.sleep(0.1)
    raise AssertionError(f"no job began task {task!r} within {timeout}s")


def _wait_new_dir(parent: Path, before: set[Path], proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(parent.iterdir()) - before:
            return
        assert proc.poll() is None, f"create ended before the host was cut off: {proc.communicate()}"
        time.sleep(0.01)
    raise AssertionError(f"no instance dir appeared in {parent} within {timeout}s")


def _create_cut_off(fleet, name: str, instances: Path, netns: str, cut: list[str], check=None) -> tuple:
    """Run `server create NAME --wait` and cut its host off (eth0 down in `netns`, recorded in `cut` so the
    caller brings it back up) while the domain module is at work there: its task began and it made the
    instance dir (seen through the lab host's private /var/lib/libvirt), so it goes on building without us.
    `check()` runs right after the cut. Returns (exit status, stdout, stderr, seconds from cut to exit)."""
    jobs_before = _job_dirs(fleet)
    dirs_before = set(instances.iterdir())
    proc = subprocess.Popen([str(KVMFLEET), "server", "create", name, "--flavor", "e2e.nano", "--image", "tiny",
                             "--project", PROJECT, "--wait", "-f", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fleet.env)
    try:
        _wait_task_start(fleet, CREATE_TASK, jobs_before, proc)
        _wait_new_dir(instances, dirs_before, proc)
        _link(netns, "down")
        cut.append(netns)
        if check is not None:
            check()
        start = time.monotonic()
        out, err = proc.communicate(timeout=400)
        return proc.returncode, out, err, time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_host_cut_off_mid_build_leaves_error_and_nothing_leaked(fleet, lab_inventory):
    target = fleet.hosts[0]
    netns = _netns(lab_inventory, target.name)
    others = [h.name for h in fleet.hosts[1:]]
    instances = lab_inventory.parent / target.name / "lib-libvirt" / "kvmfleet" / "instances"
    assert instances.is_dir(), f"lab host {target.name}'s instance dir not found at {instances}"
    used_before = fleet.host_usage()[target.name]
    quota_before = fleet.json("quota", "show", PROJECT)["usage"]
    for name in others:
        fleet.run("host", "disable", name, "--reason", "e2e: keep the build on one host")
    cut: list[str] = []

    def spawning() -> None:
        shown = fleet.show("midway")
        fleet.created.add(shown["id"])
        assert shown["host"] == target.name and shown["task_state"] == "spawning", shown

    try:
        returncode, out, err, took = _create_cut_off(fleet, "midway", instances, netns, cut, spawning)
        assert returncode != 0, f"create succeeded on a host that was cut off: {out}"
        midway = fleet.show("midway")
        assert midway["status"] == "ERROR", midway
        fault = midway["fault"].lower()
        assert target.name in fault and "ssh" in fault, midway["fault"]
        usage = fleet.host_usage()[target.name]
        for key in ("vcpus_used", "memory_mb_used", "local_gb_used"):
            if key in used_before:
                assert usage[key] == used_before[key], (key, usage, used_before)
        print(f"create ended {took:.0f}s after the cut: {' '.join(err.split())}")
    finally:
        for ns in cut:
            _link(ns, "up")
        for name in others:
            fleet.run("host", "enable", name)

    # Back on line. If the domain module went on running on the host after the cut, the host kept a domain
    # the store no longer places there: the next refresh reaps it. Either way nothing is left.
    uuid = midway["id"]
    kept = [d for d in target.domains() if uuid in d]
    refresh = json.loads(fleet.run("host", "refresh", "-f", "json").stdout)
    print(f"domain kept by the cut-off host: {kept}; refresh reaped: {refresh['reaped']}")
    assert kept, "the domain module was cut off mid-build yet left no domain: the cut came too early"
    assert refresh["reaped"].get(target.name, []) == kept, refresh
    assert not [d for d in target.domains() if uuid in d], "refresh did not reap the cut-off build's domain"
    fleet.delete("midway")
    assert not [d for d in target.domains() if uuid in d], "the cut-off build left a domain on the host"
    assert target.run(f"test -e /var/lib/libvirt/kvmfleet/instances/kvmfleet-{uuid} && echo left || true").strip() \
        == "", "the cut-off build left its instance dir on the host"
    assert fleet.host_usage()[target.name]["memory_mb_used"] == used_before["memory_mb_used"]
    assert fleet.json("quota", "show", PROJECT)["usage"] == quota_before


def test_build_cut_off_mid_way_is_retried_on_an_alternate_and_the_stale_copy_reaped(fleet, lab_inventory):
    """Same cut, but with a second host enabled: the build is retried there (Nova's reschedule) and goes
    ACTIVE; the copy the cut-off host finished on its own is reaped by the next refresh, and the running
    instance on the alternate is left alone."""
    spare = fleet.hosts[2].name
    fleet.run("host", "disable", spare, "--reason", "e2e: two candidate hosts only")
    cut: list[str] = []
    try:
        explanation = fleet.json("server", "create", "retried", "--flavor", "e2e.nano", "--image", "tiny",
                                 "--project", PROJECT, "--dry-run")
        target = fleet.lab_host(explanation["chosen"])
        alternate = next(w["host"] for w in explanation["weighed"] if w["host"] != target.name)
        instances = lab_inventory.parent / target.name / "lib-libvirt" / "kvmfleet" / "instances"
        returncode, out, err, _took = _create_cut_off(fleet, "retried", instances,
                                                      _netns(lab_inventory, target.name), cut)
        assert returncode == 0, f"the retry on {alternate} did not make it ACTIVE: {out} {err}"
        retried = json.loads(out)[0]
        fleet.created.add(retried["id"])
        assert retried["status"] == "ACTIVE" and retried["host"] == alternate, retried
        events = [e for a in fleet.json("server", "events", "retried") for e in a["events"]]
        builds = [(e["host"], e["result"]) for e in events if e["event"] == "compute__do_build_and_run_instance"]
        assert builds == [(target.name, "Error"), (alternate, "Success")], events
    finally:
        for ns in cut:
            _link(ns, "up")
        fleet.run("host", "enable", spare)
    fleet.wait_ready("retried")

    kept = [d for d in target.domains() if retried["id"] in d]
    refresh = json.loads(fleet.run("host", "refresh", "-f", "json").stdout)
    print(f"cut-off host {target.name} kept {kept}; refresh reaped {refresh['reaped']}")
    assert kept, "the domain module was cut off mid-build yet left no domain: the cut came too early"
    assert refresh["reaped"].get(target.name, []) == kept, refresh
    assert not [d for d in target.domains() if retried["id"] in d], "the stale copy is still on the cut-off host"
    assert [d for d in fleet.lab_host(alternate).domains() if retried["id"] in d], "refresh touched the live copy"
    assert fleet.show("retried")["status"] == "ACTIVE"
    fleet.delete("retried")
