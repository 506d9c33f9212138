"""`kvmfleet db rebuild --from-hosts` on the lab ($KVMFLEET_LAB), nothing mocked: servers are built through
the CLI, the store file is deleted under them, and the store is rebuilt from the hosts' domains.

Every test has its own state dir (its own SQLite store); a rebuild recovers every kvmfleet domain on the
lab's hosts, so each test removes its servers, by the CLI and then straight on the hosts if that failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest_lab import LabHost, lab_hosts  # tests/controller/conftest.py puts it on sys.path

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[3]
KVMFLEET = Path(sys.executable).parent / "kvmfleet"
TINY_IMAGE = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
INSTANCES_DIR = "/var/lib/libvirt/kvmfleet/instances"


@dataclass
class Controller:
    """The CLI on one private state dir, and the lab hosts over ssh."""

    env: dict[str, str]
    state: Path
    inventory: Path
    hosts: list[LabHost]
    created: set[str] = field(default_factory=set)
    timings: list[tuple[float, str]] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        begun = time.monotonic()
        proc = subprocess.run([str(KVMFLEET), *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)
        self.timings.append((time.monotonic() - begun, " ".join(args[:3])))
        if check and proc.returncode != 0:
            raise AssertionError(f"kvmfleet {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\n"
                                 f"stderr: {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)

    def create(self, name: str, *args: str) -> list[dict[str, Any]]:
        rows = self.json("server", "create", name, "--wait", *args)
        self.created.update(r["id"] for r in rows)
        assert all(r["status"] == "ACTIVE" for r in rows), rows
        return rows

    def rebuild(self) -> tuple[int, dict[str, Any]]:
        proc = self.run("db", "rebuild", "--from-hosts", "--inventory", str(self.inventory), "-f", "json",
                        check=False)
        assert proc.stdout.strip(), f"no report (rc {proc.returncode}): {proc.stderr}"
        return proc.returncode, json.loads(proc.stdout)

    def lose_store(self) -> None:
        """The disaster: the SQLite store file (and its WAL) gone."""
        files = list(self.state.glob("kvmfleet.db*"))
        assert self.state / "kvmfleet.db" in files, f"no store file in {self.state}: {files}"
        for f in files:
            f.unlink()

    def domains(self) -> dict[str, list[str]]:
        """Our domains on each host (running or not)."""
        return {h.name: [d for d in h.domains() if d.removeprefix("kvmfleet-") in self.created] for h in self.hosts}

    def remove_leftovers(self) -> None:
        """Whatever the CLI could not delete goes straight from the hosts (virsh, the instance dirs)."""
        for host in self.hosts:
            for dom in host.domains():
                uuid = dom.removeprefix("kvmfleet-")
                if uuid in self.created:
                    host.run(f"virsh destroy {dom} >/dev/null 2>&1; virsh undefine {dom} >/dev/null 2>&1; "
                             f"rm -rf {INSTANCES_DIR}/{dom}", check=False)


@pytest.fixture
def ctl(lab_inventory: Path, tmp_path: Path) -> Iterator[Controller]:
    assert TINY_IMAGE.is_file(), f"tiny image missing: {TINY_IMAGE} (run `kvmfleet image build-tiny`)"
    state = tmp_path / "state"
    state.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KVMFLEET_") or k == "KVMFLEET_LAB"}
    env.update({"KVMFLEET_STATE_DIR": str(state), "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "COLUMNS": "200"})
    c = Controller(env=env, state=state, inventory=lab_inventory, hosts=lab_hosts(lab_inventory))
    assert len(c.hosts) >= 3, f"these tests need a lab of 3 hosts, {lab_inventory} has {len(c.hosts)}"
    # A rebuild recovers every kvmfleet domain on the lab: one left by an earlier test file on this lab
    # (each lab serves one pytest worker, one file at a time, so none is in use now) would be recovered
    # too. They go first, named, so the figures below are this test's own.
    stray = {h.name: h.domains() for h in c.hosts}
    for host in c.hosts:
        for dom in stray[host.name]:
            if dom.startswith("kvmfleet-"):
                host.run(f"virsh destroy {dom} >/dev/null 2>&1; virsh undefine {dom} >/dev/null 2>&1; "
                         f"rm -rf {INSTANCES_DIR}/{dom}", check=False)
    if any(stray.values()):
        print(f"\nremoved domains earlier tests left on the lab: {stray}")
    c.run("host", "import", "--inventory", str(lab_inventory))
    c.run("image", "register", "tiny", "--file", str(TINY_IMAGE))
    yield c
    slow = sorted(c.timings, reverse=True)[:5]
    print("\nslowest kvmfleet commands: " + "; ".join(f"{cmd} {secs:.1f}s" for secs, cmd in slow))
    alive = [s["id"] for s in c.json("server", "list")] if (state / "kvmfleet.db").exists() else []
    if alive:
        c.run("server", "delete", *alive, check=False)
    c.remove_leftovers()
    assert not any(c.domains().values()), f"domains left on the hosts: {c.domains()}"


def _snapshot(c: Controller, project: str, group: str) -> dict[str, Any]:
    servers = {s["id"]: c.json("server", "show", s["id"]) for s in c.json("server", "list")}
    keep = ("id", "name", "host", "project", "flavor", "vcpus", "memory_mb", "root_gb", "ephemeral_gb",
            "status", "vm_state", "power_state", "server_group", "macs", "image")
    members = sorted(c.json("server-group", "show", group, "--project", project)["members"])
    hosts = {h["name"]: (h["vcpus_used"], h["memory_mb_used"], h["local_gb_used"], h["instances"])
             for h in c.json("host", "list")}
    return {"servers": {u: {k: s[k] for k in keep} for u, s in servers.items()}, "members": members,
            "usage": c.json("quota", "show", project)["usage"], "hosts": hosts}


def test_store_lost_under_six_servers_is_rebuilt_from_the_hosts(ctl: Controller) -> None:
    start = time.monotonic()
    project, group, flavor = "rebuild6", "spread", "rb.nano"
    ctl.run("project", "create", project)
    ctl.run("flavor", "create", flavor, "--vcpus", "1", "--ram", "128", "--disk", "1")
    ctl.run("server-group", "create", group, "--policy", "anti-affinity", "--project", project)
    common = ("--project", project, "--flavor", flavor, "--image", "tiny")
    spread = ctl.create("web", *common, "--count", "3", "--group", group)
    others = ctl.create("job", *common, "--count", "3")
    assert len({s["host"] for s in spread}) == 3, spread
    stopped = others[0]["id"]
    ctl.run("server", "stop", stopped)
    before = _snapshot(ctl, project, group)
    assert len(before["servers"]) == 6 and before["servers"][stopped]["status"] == "SHUTOFF"
    assert before["usage"] == {"instances": 6, "cores": 6, "ram": 768}

    ctl.lose_store()
    # What an operator keeps outside the store (IaC): the flavors and the image registrations.
    ctl.run("flavor", "create", flavor, "--vcpus", "1", "--ram", "128", "--disk", "1")
    ctl.run("image", "register", "tiny", "--file", str(TINY_IMAGE))
    rc, report = ctl.rebuild()

    assert rc == 0, report
    assert report["ok"] and report["unresolved"] == [] and report["down"] == {}, report
    assert sorted(i["id"] for i in report["instances"]) == sorted(before["servers"]), report
    assert report["projects_created"] == [project]
    assert report["flavors_created"] == []
    assert [(g["name"], g["project"], g["policy"]) for g in report["server_groups_created"]] == \
        [(group, project, "soft-anti-affinity")]
    after = _snapshot(ctl, project, group)
    assert after["servers"] == before["servers"]  # same uuid, name, host, project, flavor, power state, MACs
    assert after["members"] == before["members"]
    assert after["usage"] == before["usage"]
    assert after["hosts"] == before["hosts"]  # allocations: every host's usage as it was

    # A second rebuild is refused: the store has instances now.
    proc = ctl.run("db", "rebuild", "--from-hosts", "--inventory", str(ctl.inventory), check=False)
    assert proc.returncode == 1 and "already has 6 instance(s)" in " ".join(proc.stderr.split()), proc
    assert len(ctl.json("server", "list")) == 6

    # The recovered servers work as any other: stop, start, live-migrate, delete.
    running = spread[0]["id"]
    ctl.run("server", "stop", running)
    assert ctl.json("server", "show", running)["status"] == "SHUTOFF"
    ctl.run("server", "start", stopped)
    assert ctl.json("server", "show", stopped)["status"] == "ACTIVE"
    moved = others[1]["id"]
    ctl.run("server", "migrate", moved, "--live")
    shown = ctl.json("server", "show", moved)
    assert shown["status"] == "ACTIVE" and shown["host"] != before["servers"][moved]["host"], shown
    ctl.run("server", "delete", *before["servers"])
    assert ctl.json("server", "list") == []
    assert ctl.json("quota", "show", project)["usage"] == {"instances": 0, "cores": 0, "ram": 0}
    assert not any(ctl.domains().values()), ctl.domains()
    print(f"\nsix servers lost and rebuilt in {time.monotonic() - start:.0f}s")


def test_unknown_flavor_and_image_are_reported(ctl: Controller) -> None:
    project, flavor = "rebuild1", "rb.eph"
    ctl.run("project", "create", project)
    ctl.run("flavor", "create", flavor, "--vcpus", "1", "--ram", "192", "--disk", "1", "--ephemeral", "1")
    server = ctl.create("lonely", "--project", project, "--flavor", flavor, "--image", "tiny")[0]

    ctl.lose_store()  # and nothing registered again: neither the flavor nor the image
    rc, report = ctl.rebuild()

    assert rc == 1, report  # the image could not be resolved
    assert [i["id"] for i in report["instances"]] == [server["id"]]
    [recorded] = report["flavors_created"]
    assert {k: recorded[k] for k in ("name", "vcpus", "memory_mb", "root_gb", "ephemeral_gb", "swap")} == \
        {"name": flavor, "vcpus": 1, "memory_mb": 192, "root_gb": 1, "ephemeral_gb": 1, "swap": 0}
    assert recorded["extra_specs"] == {"kvmfleet:recovered": "true"} and recorded["recovered"]
    assert [(u["instance"], u["what"]) for u in report["unresolved"]] == [(server["id"], "image")], report
    assert "image tiny is not registered" in report["unresolved"][0]["detail"]
    assert ctl.json("flavor", "show", flavor)["properties"] == {"kvmfleet:recovered": "true"}
    got = ctl.json("server", "show", server["id"])
    assert (got["host"], got["status"], got["flavor"], got["project"], got["image"]) == \
        (server["host"], "ACTIVE", flavor, project, None)
    ctl.run("server", "stop", server["id"])
    ctl.run("server", "delete", server["id"])
    assert not any(ctl.domains().values()), ctl.domains()


def test_rebuild_refuses_a_store_with_instances(ctl: Controller) -> None:
    ctl.run("flavor", "create", "rb.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    server = ctl.create("kept", "--flavor", "rb.nano", "--image", "tiny")[0]
    proc = ctl.run("db", "rebuild", "--from-hosts", "--inventory", str(ctl.inventory), check=False)
    assert proc.returncode == 1 and proc.stdout == "", proc
    assert " ".join(proc.stderr.split()) == (
        "error: the store already has 1 instance(s): `db rebuild --from-hosts` only fills a store that has none "
        "(point KVMFLEET_DATABASE_URL at an empty one)")
    proc = ctl.run("db", "rebuild", "--inventory", str(ctl.inventory), check=False)
    assert proc.returncode == 1 and "--from-hosts" in proc.stderr, proc
    assert [s["id"] for s in ctl.json("server", "list")] == [server["id"]]
    ctl.run("server", "delete", server["id"])
