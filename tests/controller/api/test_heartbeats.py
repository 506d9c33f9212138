"""Heartbeats, down hosts and the power-state sync of `kvmfleet serve`, on the lab with real faults.

A service of its own beats every INTERVAL s (service_down_time DOWN_TIME s) against the lab's hosts.
Nothing here calls `host refresh`: every change the store shows came from the service's heartbeats.
- a guest powered off behind kvmfleet's back (ACPI shutdown sent on its host) makes its server SHUTOFF,
  recorded as a `stop` by the system; the guest of a SHUTOFF server started behind kvmfleet's back is
  stopped again;
- a host cut off (eth0 down in its network namespace) is down within service_down_time + one interval,
  while the others stay up; the scheduler skips it, os-services says down, its server shows host_status
  UNKNOWN (2.16) and `kvmfleet server list` says so; once the link is back it is up again.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_IMAGE, Service
from conftest_lab import LabHost, lab_hosts
from conftest_resources import V, call
from crash_tools import wait_until

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT = f"hb-{SUFFIX}"
INTERVAL, DOWN_TIME = 4, 15
READY = "kvmfleet-guest: ready"  # the tiny guest's line once booted


@pytest.fixture(scope="module")
def lab(service_factory: Any, lab_inventory: Path) -> Iterator[dict[str, Any]]:
    svc = service_factory({"compute": {"heartbeat_interval": INTERVAL, "service_down_time": DOWN_TIME}})
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "hb.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    svc.cli("project", "create", PROJECT)
    hosts = lab_hosts(lab_inventory)
    target = hosts[0]
    # Both servers on the first host: the others are disabled while they are built.
    for other in hosts[1:]:
        svc.cli("host", "disable", other.name, "--reason", "heartbeat test: build on the first host")
    try:
        servers = {}
        for name in ("hb-a", "hb-b"):
            out = svc.cli("server", "create", f"{name}-{SUFFIX}", "--flavor", "hb.nano", "--image", "tiny",
                          "--project", PROJECT, "--network", "", "--wait", "-f", "json")
            row = json.loads(out.stdout)[0]
            assert row["host"] == target.name, row
            servers[name] = row["id"]
    finally:
        for other in hosts[1:]:
            svc.cli("host", "enable", other.name)
    svc.cli("server", "stop", f"hb-b-{SUFFIX}")
    yield {"svc": svc, "admin": svc.token(), "hosts": hosts, "target": target, "servers": servers}
    target.link(True)
    svc.cli("server", "delete", *servers.values(), check=False)


def show(svc: Service, name: str) -> dict[str, Any]:
    return json.loads(svc.cli("server", "show", f"{name}-{SUFFIX}", "-f", "json").stdout)


def system_stops(svc: Service, name: str) -> list[dict[str, Any]]:
    events = json.loads(svc.cli("server", "events", f"{name}-{SUFFIX}", "-f", "json").stdout)
    return [a for a in events if a["action"] == "stop" and a["user_id"] is None
            and [e["event"] for e in a["events"]] == ["compute_sync_power_state"]]


def console(host: LabHost, uuid: str) -> str:
    return host.run(f"cat /var/lib/libvirt/kvmfleet/instances/kvmfleet-{uuid}/console.log 2>/dev/null || true")


def domain_state(host: LabHost, uuid: str) -> str:
    return host.run(f"virsh domstate kvmfleet-{uuid}").strip()


def services(svc: Service, admin: str) -> dict[str, dict[str, Any]]:
    return {s["host"]: s for s in call(svc, admin, "GET", f"{V}/os-services", "2.53").json()["services"]}


def test_a_guest_powered_off_behind_our_back_becomes_shutoff(lab: dict[str, Any]) -> None:
    svc, target, uuid = lab["svc"], lab["target"], lab["servers"]["hb-a"]
    assert show(svc, "hb-a")["status"] == "ACTIVE"
    wait_until("the guest to boot (it answers ACPI then)", lambda: READY in console(target, uuid), 120)
    target.run(f"virsh shutdown kvmfleet-{uuid}")  # the guest powers itself off (ACPI), as from inside
    wait_until("the domain to shut off", lambda: domain_state(target, uuid) == "shut off", 120)
    shown = wait_until("the heartbeats to see it", lambda: (s := show(svc, "hb-a"))["status"] == "SHUTOFF" and s, 4 * INTERVAL + 30)
    assert (shown["vm_state"], shown["power_state"], shown["task_state"]) == ("stopped", "SHUTDOWN", None), shown
    assert len(system_stops(svc, "hb-a")) == 1
    # The server is an ordinary stopped server: started through kvmfleet it runs again.
    svc.cli("server", "start", f"hb-a-{SUFFIX}")
    assert show(svc, "hb-a")["status"] == "ACTIVE" and domain_state(target, uuid) == "running"


def test_the_running_guest_of_a_stopped_server_is_stopped(lab: dict[str, Any]) -> None:
    svc, target, uuid = lab["svc"], lab["target"], lab["servers"]["hb-b"]
    assert show(svc, "hb-b")["status"] == "SHUTOFF" and domain_state(target, uuid) == "shut off"
    target.run(f"virsh start kvmfleet-{uuid}")  # behind kvmfleet's back
    wait_until("the heartbeats to stop it again", lambda: domain_state(target, uuid) == "shut off"
               and system_stops(svc, "hb-b"), 4 * INTERVAL + 60)
    shown = show(svc, "hb-b")
    assert (shown["status"], shown["power_state"], shown["task_state"]) == ("SHUTOFF", "SHUTDOWN", None), shown


def test_a_host_cut_off_is_down_then_up_again(lab: dict[str, Any]) -> None:
    svc, admin, target = lab["svc"], lab["admin"], lab["target"]
    others = [h.name for h in lab["hosts"] if h is not target]
    uuid = lab["servers"]["hb-a"]
    wait_until("every host up", lambda: {s["state"] for s in services(svc, admin).values()} == {"up"}, 3 * INTERVAL)
    target.link(False)
    cut = time.monotonic()
    try:
        seen_others: set[str] = set()

        def down() -> bool:
            now = services(svc, admin)
            seen_others.update(h for h in others if now[h]["state"] != "up")
            return now[target.name]["state"] == "down"

        wait_until(f"{target.name} to be reported down", down, DOWN_TIME + INTERVAL + 30)
        took = time.monotonic() - cut
        seen_down = dt.datetime.now(dt.UTC)
        assert took <= DOWN_TIME + INTERVAL, f"down after {took:.1f}s (service_down_time {DOWN_TIME}, interval {INTERVAL})"
        assert not seen_others, f"hosts that answered went down too: {seen_others}"
        last = json.loads(svc.cli("host", "show", target.name, "-f", "json").stdout)["last_heartbeat_at"]
        silent = (seen_down - dt.datetime.fromisoformat(last)).total_seconds()
        assert silent >= DOWN_TIME - 0.5, f"down {silent:.1f}s after its last answer: before service_down_time ran out"
        # What the operator sees, and what the scheduler does.
        server = call(svc, admin, "GET", f"{V}/servers/{uuid}", "2.16").json()["server"]
        assert server["host_status"] == "UNKNOWN", server["host_status"]
        listed = {r["name"]: r for r in json.loads(svc.cli("server", "list", "-f", "json").stdout)}
        assert listed[f"hb-a-{SUFFIX}"]["host_status"] == "UNKNOWN"
        table = svc.cli("server", "list").stdout
        assert "UNKNOWN" in table and "Host status" in " ".join(table.split()), table
        decision = json.loads(svc.cli("server", "create", f"hb-probe-{SUFFIX}", "--flavor", "hb.nano", "--image", "tiny",
                                      "--project", PROJECT, "--dry-run", "-f", "json").stdout)
        assert decision["rejected"] == {target.name: "ComputeFilter"}, decision
        assert {s["state"] for h, s in services(svc, admin).items() if h != target.name} == {"up"}
    finally:
        target.link(True)
    back = time.monotonic()
    wait_until(f"{target.name} to be up again", lambda: services(svc, admin)[target.name]["state"] == "up",
               3 * INTERVAL + 30)
    print(f"down {took:.1f}s after the cut; up {time.monotonic() - back:.1f}s after the link returned")
    server = call(svc, admin, "GET", f"{V}/servers/{uuid}", "2.16").json()["server"]
    assert (server["host_status"], server["status"]) == ("UP", "ACTIVE"), server
    log = (svc.state / "logs" / "kvmfleet-serve.log").read_text()
    assert f"host {target.name} is down: no answer" in log and f"{target.name} answer again: up" in log
