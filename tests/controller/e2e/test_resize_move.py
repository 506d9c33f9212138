"""Cold resize, in place and to another host: the disks grow to the new flavor and keep their data; when the
new flavor does not fit next to a filler instance the scheduler moves the instance (its root and ephemeral
disks go host to host over the hosts' own SSH, or through the controller's job dir), a failing destination
is retried on the next alternate; revert brings it back as it was, confirm removes what was kept for a
revert."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def _state(fleet, host: str, uuid: str) -> str:
    return fleet.lab_host(host).run(f"virsh domstate kvmfleet-{uuid} 2>/dev/null || echo absent").strip()


def _disk_gb(fleet, host: str) -> dict[str, int]:
    usage = fleet.host_usage()
    return {h: usage[h]["local_gb_used"] for h in usage}


def _tasks_ran(fleet, server: str) -> set[str]:
    """The playbook tasks that ran (ok) in the job of the server's last action, from its event files."""
    job = fleet.json("server", "events", server)[-1]["events"][0]["job_id"]
    events = [json.loads(e.read_text()) for e in
              (Path(fleet.env["KVMFLEET_STATE_DIR"]) / "jobs" / job).glob("artifacts/*/job_events/*.json")]
    return {e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"}


def test_resize_that_does_not_fit_moves_to_another_host(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    a, _filler = fleet.create_on(src, ("rz-a", "e2e.nano"), ("rz-filler", "e2e.disk200"))
    uuid = a["id"]
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
    ran = _tasks_ran(fleet, "rz-a")
    assert "Copy the source disks from the source host" in ran and "Fetch the disks to the controller" not in ran, ran
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


def test_resize_move_failing_on_a_destination_retries_then_leaves_error_and_the_source_intact(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    b, _filler = fleet.create_on(src, ("rz-b", "e2e.nano"), ("rz-filler2", "e2e.disk200"))
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
    first, second = others
    # One instance on `second` makes `first` the scheduler's choice (more free RAM, CPU and disk).
    fleet.create_on(second, ("rz-weight", "e2e.nano"))
    fleet.lab_host(first).run(f"mkdir -p {stale} && echo stale > {stale}/disk")
    try:
        # The first destination fails and cleans up; the next alternate takes the instance (reschedule).
        fleet.run("server", "resize", "rz-b", "e2e.disk200")
        shown = fleet.show("rz-b")
        assert (shown["status"], shown["host"], shown["flavor"]) == ("VERIFY_RESIZE", second, "e2e.disk200"), shown
        resize = fleet.json("server", "events", "rz-b")[-1]
        tried = [(e["event"], e["host"], e["result"]) for e in resize["events"]]
        assert tried == [("compute_resize_instance", src, "Success"), ("compute_finish_resize", first, "Error")], \
            resize
        assert _state(fleet, first, uuid) == "absent" and _state(fleet, second, uuid) == "running"
        assert fleet.lab_host(first).run(f"ls {stale}").split() == ["disk"]
        usage = _disk_gb(fleet, src)
        assert (usage[src], usage[first], usage[second]) == (200 + 1, 0, 200 + 1), usage
        fleet.run("server", "revert-resize", "rz-b")
        assert (fleet.show("rz-b")["status"], fleet.show("rz-b")["host"]) == ("ACTIVE", src)
        assert _state(fleet, second, uuid) == "absent"

        # Every destination fails: ERROR on the source with each failure named, nothing left anywhere.
        fleet.lab_host(second).run(f"mkdir -p {stale} && echo stale > {stale}/disk")
        error = fleet.fails("server", "resize", "rz-b", "e2e.disk200")
        assert "already exists" in error and first in error and second in error, error
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
        assert (usage[src], usage[first], usage[second]) == (200 + 1, 0, 1), usage
    finally:
        for h in others:
            fleet.lab_host(h).run(f"rm -rf {stale}")
    fleet.delete("rz-b", "rz-filler2", "rz-weight")
    assert _state(fleet, src, uuid) == "absent"


def test_stopped_instance_moves_stopped(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    c, _filler = fleet.create_on(src, ("rz-c", "e2e.nano"), ("rz-filler3", "e2e.disk200"))
    uuid = c["id"]
    fleet.wait_ready("rz-c")
    assert fleet.json("server", "stop", "rz-c")["status"] == "SHUTOFF"
    # This move takes the other way for the disks: through the controller's job dir (compute.resize_transfer).
    config = Path(fleet.env["KVMFLEET_STATE_DIR"]) / "kvmfleet.yml"
    assert not config.exists()
    config.write_text("compute: {resize_transfer: controller}\n")
    try:
        fleet.run("server", "resize", "rz-c", "e2e.disk200")
    finally:
        config.unlink()
    ran = _tasks_ran(fleet, "rz-c")
    assert {"Fetch the disks to the controller", "Put the disks fetched to the controller in place"} <= ran, ran
    assert "Copy the source disks from the source host" not in ran, ran
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


INSTANCES = "/var/lib/libvirt/kvmfleet/instances"
MARKS = {"disk": ("0x5a", "900M"), "disk.eph0": ("0x6b", "0")}  # a pattern per disk, beyond the tiny image


def _mark(fleet, host: str, uuid: str) -> None:
    for disk, (pattern, offset) in MARKS.items():
        fleet.lab_host(host).run(f"qemu-io -f qcow2 -c 'write -P {pattern} {offset} 64k' {INSTANCES}/kvmfleet-{uuid}/{disk}")


def _disks(fleet, host: str, uuid: str) -> dict[str, tuple[int, bool]]:
    """Each disk's virtual size in GiB and whether its mark is still there (read-only, beside the guest)."""
    out = {}
    for disk, (pattern, offset) in MARKS.items():
        path = f"{INSTANCES}/kvmfleet-{uuid}/{disk}"
        info = fleet.lab_host(host).run(f"qemu-img info -U --output=json {path}")
        read = fleet.lab_host(host).run(f"qemu-io -r -U -f qcow2 -c 'read -P {pattern} {offset} 64k' {path}")
        out[disk] = (json.loads(info)["virtual-size"] // 1024 ** 3, "Pattern verification failed" not in read)
    return out


def _files(fleet, host: str, uuid: str) -> list[str]:
    return sorted(fleet.lab_host(host).run(f"ls {INSTANCES}/kvmfleet-{uuid} 2>/dev/null || true").split())


def test_resize_grows_the_disks_and_keeps_their_data(fleet):
    names = [h.name for h in fleet.hosts]
    src, others = names[0], names[1:]
    d, _filler = fleet.create_on(src, ("rz-d", "e2e.eph1"), ("rz-filler4", "e2e.disk200"))
    uuid = d["id"]
    assert d["host"] == src
    fleet.run("server", "stop", "rz-d")
    _mark(fleet, src, uuid)
    fleet.run("server", "start", "rz-d")
    assert _disks(fleet, src, uuid) == {"disk": (1, True), "disk.eph0": (1, True)}

    # Refused before anything changes: a smaller ephemeral disk, an ephemeral disk the server does not have.
    assert "cannot shrink" in fleet.fails("server", "resize", "rz-d", "e2e.nano")
    assert "adds none" in fleet.fails("server", "resize", "rz-filler4", "e2e.eph200")
    assert fleet.show("rz-d")["status"] == "ACTIVE"

    # A real failure half-way, on a stopped server: another process holds the ephemeral disk's write lock,
    # so growing it fails after the root disk grew. The originals are put back; the server stays as it was
    # and the error says why.
    fleet.run("server", "stop", "rz-d")
    eph = f"{INSTANCES}/kvmfleet-{uuid}/disk.eph0"
    host = fleet.lab_host(src)
    host.run(f"nohup sh -c 'sleep 20 | qemu-io -f qcow2 {eph}' >/dev/null 2>&1 </dev/null & sleep 1")
    error = fleet.fails("server", "resize", "rz-d", "e2e.eph2")
    assert "Grow the disks" in error and 'Failed to get "write" lock' in error, error
    shown = fleet.show("rz-d")
    assert (shown["status"], shown["flavor"], shown["root_gb"], shown["new_flavor"]) == \
        ("SHUTOFF", "e2e.eph1", 1, None), shown
    assert _disks(fleet, src, uuid) == {"disk": (1, True), "disk.eph0": (1, True)}
    assert not [f for f in _files(fleet, src, uuid) if f.endswith(".resize-orig")]
    deadline = time.monotonic() + 60
    while host.run(f"qemu-img info {eph} >/dev/null 2>&1 && echo free || true").strip() != "free":
        assert time.monotonic() < deadline, "the lock holder did not go away"
        time.sleep(1)
    fleet.run("server", "start", "rz-d")

    # In place: both disks grow, the originals are kept beside them for a revert.
    fleet.run("server", "resize", "rz-d", "e2e.eph2")
    shown = fleet.show("rz-d")
    assert (shown["status"], shown["host"], shown["root_gb"], shown["ephemeral_gb"]) == ("VERIFY_RESIZE", src, 2, 2)
    assert _disks(fleet, src, uuid) == {"disk": (2, True), "disk.eph0": (2, True)}
    assert {"disk.resize-orig", "disk.eph0.resize-orig"} <= set(_files(fleet, src, uuid))
    fleet.wait_ready("rz-d", fresh=True)
    fleet.run("server", "revert-resize", "rz-d")
    assert _disks(fleet, src, uuid) == {"disk": (1, True), "disk.eph0": (1, True)}
    assert not [f for f in _files(fleet, src, uuid) if f.endswith(".resize-orig")]
    fleet.run("server", "resize", "rz-d", "e2e.eph2")
    fleet.run("server", "confirm-resize", "rz-d")
    shown = fleet.show("rz-d")
    assert (shown["status"], shown["flavor"], shown["root_gb"], shown["ephemeral_gb"]) == ("ACTIVE", "e2e.eph2", 2, 2)
    assert _disks(fleet, src, uuid) == {"disk": (2, True), "disk.eph0": (2, True)}
    assert not [f for f in _files(fleet, src, uuid) if f.endswith(".resize-orig")]

    # To another host (200 GB more does not fit next to the filler): both disks travel and grow.
    fleet.run("server", "resize", "rz-d", "e2e.eph200")
    dest = fleet.show("rz-d")["host"]
    assert dest in others
    assert _disks(fleet, dest, uuid) == {"disk": (200, True), "disk.eph0": (3, True)}
    assert _disks(fleet, src, uuid) == {"disk": (2, True), "disk.eph0": (2, True)}  # the source copy, untouched
    assert f"instance-id={uuid}" in fleet.wait_ready("rz-d")
    # Deleted before confirm: the destination and the kept source copy both go.
    fleet.delete("rz-d")
    assert _state(fleet, src, uuid) == "absent" and _state(fleet, dest, uuid) == "absent"
    assert _files(fleet, src, uuid) == [] and _files(fleet, dest, uuid) == []
    fleet.delete("rz-filler4")
    assert all(v == 0 for v in _disk_gb(fleet, src).values()), fleet.host_usage()
