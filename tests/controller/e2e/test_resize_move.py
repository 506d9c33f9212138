"""Cold resize that must leave its host: the new flavor does not fit next to a filler instance, so the
scheduler moves the instance (its root disk overlay travels through the controller's job dir); revert
brings it back to the source, confirm removes the source copy."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.lab


def _state(fleet, host: str, uuid: str) -> str:
    return fleet.lab_host(host).run(f"virsh domstate kvmfleet-{uuid} 2>/dev/null || echo absent").strip()


def _disk_gb(fleet, host: str) -> dict[str, int]:
    usage = fleet.host_usage()
    return {h: usage[h]["local_gb_used"] for h in usage}


def test_resize_that_does_not_fit_moves_to_another_host(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    # Both instances land on src: the others are disabled while they are built.
    for h in others:
        fleet.run("host", "disable", h, "--reason", "e2e resize: fill the source")
    try:
        a = fleet.create("rz-a", "--flavor", "e2e.nano", "--image", "tiny")[0]
        filler = fleet.create("rz-filler", "--flavor", "e2e.disk200", "--image", "tiny")[0]
    finally:
        for h in others:
            fleet.run("host", "enable", h)
    uuid = a["id"]
    assert (a["host"], filler["host"]) == (src, src)
    fleet.wait_ready("rz-a")

    # 200 GB more does not fit next to the filler: the scheduler picks another host.
    fleet.run("server", "resize", "rz-a", "e2e.disk200")
    shown = fleet.show("rz-a")
    dest = shown["host"]
    assert dest in others, shown
    assert (shown["status"], shown["new_flavor"], shown["old_flavor"], shown["root_gb"]) == \
        ("VERIFY_RESIZE", "e2e.disk200", "e2e.nano", 200), shown
    assert _state(fleet, src, uuid) == "shut off"
    assert _state(fleet, dest, uuid) == "running"
    ready = fleet.wait_ready("rz-a")  # read from the destination's console log
    assert f"instance-id={uuid}" in ready and "hostname=rz-a" in ready, ready
    disk = fleet.lab_host(dest).run(
        f"qemu-img info --force-share /var/lib/libvirt/kvmfleet/instances/kvmfleet-{uuid}/disk")
    assert "virtual size: 200 GiB" in disk, disk
    usage = _disk_gb(fleet, src)
    assert usage[src] == 200 + 1 and usage[dest] == 200, usage  # the source hold stays until confirm/revert
    tasks = [e["event"] for a_ in fleet.json("server", "events", "rz-a") for e in a_["events"]]
    assert "compute_resize_instance" in tasks, tasks

    # Revert: the destination copy goes, the instance runs again on its source with the old flavor.
    fleet.run("server", "revert-resize", "rz-a")
    shown = fleet.show("rz-a")
    assert (shown["status"], shown["host"], shown["flavor"], shown["root_gb"], shown["new_flavor"]) == \
        ("ACTIVE", src, "e2e.nano", 1, None), shown
    assert _state(fleet, dest, uuid) == "absent"
    assert _state(fleet, src, uuid) == "running"
    fleet.wait_ready("rz-a", fresh=True)
    usage = _disk_gb(fleet, src)
    assert usage[src] == 200 + 1 and usage[dest] == 0, usage

    # Resize again and confirm: the source copy and the source hold go.
    fleet.run("server", "resize", "rz-a", "e2e.disk200")
    dest = fleet.show("rz-a")["host"]
    assert dest in others
    fleet.run("server", "confirm-resize", "rz-a")
    shown = fleet.show("rz-a")
    assert (shown["status"], shown["host"], shown["flavor"], shown["old_flavor"]) == \
        ("ACTIVE", dest, "e2e.disk200", None), shown
    assert _state(fleet, src, uuid) == "absent"
    assert _state(fleet, dest, uuid) == "running"
    assert f"instance-id={uuid}" in fleet.wait_ready("rz-a")
    usage = _disk_gb(fleet, src)
    assert usage[src] == 200 and usage[dest] == 200, usage
    actions = [a_["action"] for a_ in fleet.json("server", "events", "rz-a")]
    assert actions == ["create", "resize", "revertResize", "resize", "confirmResize"], actions

    fleet.delete("rz-a", "rz-filler")
    assert _state(fleet, dest, uuid) == "absent"
    assert all(v == 0 for v in _disk_gb(fleet, src).values()), fleet.host_usage()


def test_resize_move_failing_on_the_destination_leaves_error_and_the_source_intact(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    for h in others:
        fleet.run("host", "disable", h, "--reason", "e2e resize: fill the source")
    try:
        b = fleet.create("rz-b", "--flavor", "e2e.nano", "--image", "tiny")[0]
        fleet.create("rz-filler2", "--flavor", "e2e.disk200", "--image", "tiny")
    finally:
        for h in others:
            fleet.run("host", "enable", h)
    uuid = b["id"]
    assert b["host"] == src
    # No host at all takes the new flavor: refused by the scheduler, the instance keeps running as it was.
    error = fleet.fails("server", "resize", "rz-b", "e2e.huge")
    assert "No valid host" in error, error
    shown = fleet.show("rz-b")
    assert (shown["status"], shown["host"], shown["flavor"], shown["new_flavor"]) == \
        ("ACTIVE", src, "e2e.nano", None), shown
    assert _state(fleet, src, uuid) == "running"
    usage = _disk_gb(fleet, src)
    assert usage[src] == 200 + 1 and all(usage[h] == 0 for h in others), usage
    # A stale file where the destination's root disk would go: the domain module refuses to overwrite it.
    stale = f"/var/lib/libvirt/kvmfleet/instances/kvmfleet-{uuid}"
    for h in others:
        fleet.lab_host(h).run(f"mkdir -p {stale} && echo stale > {stale}/disk")
    try:
        error = fleet.fails("server", "resize", "rz-b", "e2e.disk200")
        assert "already exists" in error, error
        shown = fleet.show("rz-b")
        assert (shown["status"], shown["host"], shown["flavor"], shown["new_flavor"]) == \
            ("ERROR", src, "e2e.nano", None), shown
        assert "already exists" in shown["fault"], shown
        for h in others:
            assert _state(fleet, h, uuid) == "absent"
            assert fleet.lab_host(h).run(f"ls {stale}").split() == ["disk"]  # only the stale file, not ours
        assert _state(fleet, src, uuid) == "shut off"
        fleet.lab_host(src).run(f"test -s {stale}/disk")
        usage = _disk_gb(fleet, src)
        assert usage[src] == 200 + 1 and all(usage[h] == 0 for h in others), usage
    finally:
        for h in others:
            fleet.lab_host(h).run(f"rm -rf {stale}")
    fleet.delete("rz-b", "rz-filler2")
    assert _state(fleet, src, uuid) == "absent"


def test_stopped_instance_moves_stopped(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    for h in others:
        fleet.run("host", "disable", h, "--reason", "e2e resize: fill the source")
    try:
        c = fleet.create("rz-c", "--flavor", "e2e.nano", "--image", "tiny")[0]
        fleet.create("rz-filler3", "--flavor", "e2e.disk200", "--image", "tiny")
    finally:
        for h in others:
            fleet.run("host", "enable", h)
    uuid = c["id"]
    fleet.wait_ready("rz-c")
    assert fleet.json("server", "stop", "rz-c")["status"] == "SHUTOFF"
    fleet.run("server", "resize", "rz-c", "e2e.disk200")
    shown = fleet.show("rz-c")
    dest = shown["host"]
    assert dest in others and (shown["status"], shown["power_state"]) == ("VERIFY_RESIZE", "SHUTDOWN"), shown
    assert _state(fleet, dest, uuid) == "shut off" and _state(fleet, src, uuid) == "shut off"
    fleet.run("server", "confirm-resize", "rz-c")
    shown = fleet.show("rz-c")
    assert (shown["status"], shown["host"], shown["flavor"]) == ("SHUTOFF", dest, "e2e.disk200"), shown
    assert _state(fleet, src, uuid) == "absent"
    fleet.delete("rz-c", "rz-filler3")
    assert _state(fleet, dest, uuid) == "absent"
