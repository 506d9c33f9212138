"""Every lifecycle action on a real tiny guest, and a host that stops answering."""

from __future__ import annotations

import ipaddress

import pytest

from .conftest import POWER_OFF, PROJECT

pytestmark = pytest.mark.lab


def _act(fleet, *args):
    """Run a server action; the status it printed."""
    return fleet.json("server", *args)["status"]


def test_every_lifecycle_action_on_a_tiny_guest(fleet, tmp_path):
    user_data = tmp_path / "user-data"
    user_data.write_text("#!/bin/sh\necho e2e-user-data-ran\n")
    row = fleet.create("life", "--flavor", "e2e.nano", "--image", "tiny", "--user-data", str(user_data))[0]
    uuid, host = row["id"], row["host"]
    ready = fleet.wait_ready("life")
    assert f"instance-id={uuid}" in ready and "hostname=life" in ready, ready
    assert any(f"kvmfleet-{uuid}" == d for d in fleet.lab_host(host).domains())
    assert ready in fleet.run("server", "console-log", "life", "-n", "20").stdout

    # Refused before anything runs, naming the state.
    error = fleet.fails("server", "unpause", "life")
    assert "vm_state active" in error, error
    error = fleet.fails("server", "confirm-resize", "life")
    assert "vm_state active" in error, error

    assert _act(fleet, "stop", "life", "--timeout", "60") == "SHUTOFF"
    assert POWER_OFF in fleet.console("life"), "the stop was not graceful (no ACPI power-off in the log)"
    assert fleet.show("life")["power_state"] == "SHUTDOWN"
    assert "cannot stop" in fleet.fails("server", "stop", "life")
    assert _act(fleet, "start", "life") == "ACTIVE"
    fleet.wait_ready("life", fresh=True)

    assert _act(fleet, "reboot", "life") == "ACTIVE"
    fleet.wait_ready("life", fresh=True)
    assert _act(fleet, "reboot", "--hard", "life") == "ACTIVE"

    assert _act(fleet, "pause", "life") == "PAUSED"
    assert _act(fleet, "unpause", "life") == "ACTIVE"
    assert _act(fleet, "suspend", "life") == "SUSPENDED"
    assert _act(fleet, "resume", "life") == "ACTIVE"

    # Resize in place: VERIFY_RESIZE holds both flavors until revert or confirm.
    fleet.run("server", "resize", "life", "e2e.micro")
    shown = fleet.show("life")
    assert (shown["status"], shown["memory_mb"], shown["new_flavor"]) == ("VERIFY_RESIZE", 192, "e2e.micro")
    assert fleet.host_usage()[host]["memory_mb_used"] == 128 + 192
    fleet.run("server", "revert-resize", "life")
    shown = fleet.show("life")
    assert (shown["status"], shown["memory_mb"], shown["flavor"]) == ("ACTIVE", 128, "e2e.nano")
    assert fleet.host_usage()[host]["memory_mb_used"] == 128
    fleet.run("server", "resize", "life", "e2e.micro")
    fleet.run("server", "confirm-resize", "life")
    shown = fleet.show("life")
    assert (shown["status"], shown["memory_mb"], shown["flavor"]) == ("ACTIVE", 192, "e2e.micro")
    assert fleet.host_usage()[host]["memory_mb_used"] == 192

    # Rebuild: a fresh root disk, same identity; the guest boots again (a new console log).
    mac = fleet.show("life")["macs"]
    fleet.run("server", "rebuild", "life")
    shown = fleet.show("life")
    assert (shown["status"], shown["id"], shown["macs"]) == ("ACTIVE", uuid, mac)
    assert f"instance-id={uuid}" in fleet.wait_ready("life")

    actions = [a["action"] for a in fleet.json("server", "events", "life")]
    assert actions == ["create", "stop", "start", "reboot", "reboot", "pause", "unpause", "suspend", "resume",
                       "resize", "revertResize", "resize", "confirmResize", "rebuild"], actions

    fleet.delete("life")
    assert f"kvmfleet-{uuid}" not in fleet.lab_host(host).domains()
    assert "not found" in fleet.fails("server", "show", "life")
    assert fleet.host_usage()[host]["memory_mb_used"] == 0


def _unused_address(fleet) -> str:
    used = {ipaddress.ip_address(h.address) for h in fleet.hosts}
    net = ipaddress.ip_network(f"{fleet.hosts[0].address}/24", strict=False)
    return str(next(a for a in reversed(list(net.hosts())) if a not in used))


def test_unreachable_host_leaves_error_and_nothing_leaked(fleet):
    target = fleet.hosts[0]
    others = [h.name for h in fleet.hosts[1:]]
    for name in others:
        fleet.run("host", "disable", name, "--reason", "e2e: keep builds on one host")
    try:
        # An instance running on the target, then the target stops answering (its address now leads nowhere).
        victim = fleet.create("victim", "--flavor", "e2e.nano", "--image", "tiny")[0]
        assert victim["host"] == target.name
        fleet.run("host", "set", target.name, "--address", _unused_address(fleet))
        error = fleet.fails("server", "stop", "victim")
        assert "victim" in error and target.name in error, error
        shown = fleet.show("victim")
        assert shown["status"] == "ERROR" and shown["fault"], shown

        # A build on the unreachable host: ERROR with the fault, the claim released.
        error = fleet.fails("server", "create", "orphan", "--flavor", "e2e.nano", "--image", "tiny",
                            "--project", PROJECT, "--wait")
        orphan = fleet.show("orphan")
        assert orphan["status"] == "ERROR" and orphan["host"] is None, orphan
        assert target.name in orphan["fault"], orphan["fault"]
        assert fleet.host_usage()[target.name]["memory_mb_used"] == 128  # only the victim's claim
        refresh = fleet.run("host", "refresh", check=False)
        assert refresh.returncode == 2 and "down" in refresh.stdout
        assert fleet.host_usage()[target.name]["state"] == "down"
    finally:
        fleet.run("host", "set", target.name, "--address", target.address)
        for name in others:
            fleet.run("host", "enable", name)
    fleet.run("host", "refresh")
    assert f"kvmfleet-{orphan['id']}" not in target.domains(), "the failed build left a domain"
    # Back on line: the ERROR instance can be deleted and its domain goes with it.
    fleet.delete("victim", "orphan")
    assert not [d for d in target.domains() if victim["id"] in d or orphan["id"] in d]
    assert fleet.host_usage()[target.name]["memory_mb_used"] == 0
