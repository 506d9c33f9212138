"""Live and cold migration through the CLI, on the lab: the guest keeps running across a live move (its
console's heartbeat goes on on the destination, with no second boot), the domain is on exactly one host
afterwards and the claims move with it; a destination without room, a disabled one and one that breaks an
anti-affinity group are refused before anything moves; two migrations racing for one slot: exactly one
wins; a migration that cannot finish within its timeout, and one aborted by request, leave the guest
running on its source; cold migration with confirm and with revert."""

from __future__ import annotations

import itertools
import re
import subprocess
import time

import pytest
import yaml

from .conftest import KVMFLEET, PROJECT, READY

pytestmark = pytest.mark.lab

# User data the tiny guest runs at boot: a heartbeat on the serial console every second, with its uptime.
HEARTBEAT = """#!/bin/sh
( while :; do read -r up _rest < /proc/uptime; echo "heartbeat uptime=$up"; sleep 1; done ) &
"""
BEAT = re.compile(r"heartbeat uptime=([0-9.]+)")


def _state(fleet, host: str, uuid: str) -> str:
    return fleet.lab_host(host).run(f"virsh domstate kvmfleet-{uuid} 2>/dev/null || echo absent").strip()


def _where(fleet, uuid: str) -> dict[str, str]:
    return {h.name: _state(fleet, h.name, uuid) for h in fleet.hosts}


def _used(fleet) -> dict[str, tuple[int, int]]:
    return {name: (h["memory_mb_used"], h["local_gb_used"]) for name, h in fleet.host_usage().items()}


def _console(fleet, host: str, uuid: str) -> str:
    return fleet.lab_host(host).run(
        f"cat /var/lib/libvirt/kvmfleet/instances/kvmfleet-{uuid}/console.log 2>/dev/null || true")


def _beats(log: str) -> list[float]:
    return [float(m) for m in BEAT.findall(log)]


def _migrations(fleet, server: str) -> list[dict]:
    return fleet.json("server", "migrations", server, "--project", PROJECT)


def _with_config(fleet, config: dict, tmp_path) -> dict[str, str]:
    path = tmp_path / "kvmfleet.yml"
    path.write_text(yaml.safe_dump(config))
    return {**fleet.env, "KVMFLEET_CONFIG": str(path)}


@pytest.fixture
def heartbeat(tmp_path):
    path = tmp_path / "heartbeat.sh"
    path.write_text(HEARTBEAT)
    return str(path)


def _create_only_on(fleet, host: str, name: str, *args: str) -> dict:
    """`create_on` with extra create options (user data, a server group)."""
    others = [h.name for h in fleet.hosts if h.name != host]
    for other in others:
        fleet.run("host", "disable", other, "--reason", "e2e: build on one host")
    try:
        [row] = fleet.create(name, *args)
    finally:
        for other in others:
            fleet.run("host", "enable", other)
    assert row["host"] == host, row
    return row


def test_live_migration_keeps_the_guest_running_and_moves_its_claims(fleet, heartbeat):
    src = fleet.hosts[0].name
    row = _create_only_on(fleet, src, "lm-a", "--flavor", "e2e.eph1", "--image", "tiny", "--user-data", heartbeat)
    uuid = row["id"]
    assert row["host"] == src
    fleet.wait_ready("lm-a")
    deadline = time.monotonic() + 60
    while len(_beats(_console(fleet, src, uuid))) < 3 and time.monotonic() < deadline:
        time.sleep(1)
    before_log = _console(fleet, src, uuid)
    assert before_log.count(READY) == 1 and len(_beats(before_log)) >= 3, before_log[-800:]
    used_before = _used(fleet)

    fleet.run("server", "migrate", "--live", "lm-a", "--project", PROJECT)
    shown = fleet.show("lm-a")
    dest = shown["host"]
    assert dest != src and (shown["status"], shown["task_state"]) == ("ACTIVE", None), shown
    where = _where(fleet, uuid)
    assert where[dest] == "running" and all(s == "absent" for h, s in where.items() if h != dest), where
    assert fleet.lab_host(src).run(f"test -e /var/lib/libvirt/kvmfleet/instances/kvmfleet-{uuid} && echo left "
                                   "|| echo gone").strip() == "gone"

    # The guest never rebooted: the destination's console carries on with the heartbeat, no boot lines.
    last_before = max(_beats(before_log))
    deadline = time.monotonic() + 60
    while len(_beats(_console(fleet, dest, uuid))) < 3 and time.monotonic() < deadline:
        time.sleep(1)
    after_log = _console(fleet, dest, uuid)
    after = _beats(after_log)
    assert len(after) >= 3 and READY not in after_log, after_log[-800:]
    assert after[0] > last_before and after == sorted(after), (last_before, after)
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert max(gaps) < 5, gaps

    # The claims moved: the source gave back what the destination took.
    used_after = _used(fleet)
    assert used_after[src][0] == used_before[src][0] - 128 and used_after[src][1] == used_before[src][1] - 2
    assert used_after[dest][0] == used_before[dest][0] + 128 and used_after[dest][1] == used_before[dest][1] + 2

    [mig] = _migrations(fleet, "lm-a")
    assert (mig["type"], mig["status"], mig["source"], mig["dest"]) == ("live-migration", "completed", src, dest)
    assert mig["memory_processed"] > 0 and mig["downtime_ms"] is not None, mig
    events = [e["event"] for a in fleet.json("server", "events", "lm-a") for e in a["events"]]
    assert "conductor_live_migrate_instance" in events and "compute_live_migration" in events, events

    # Back to the source, named: the scheduler checks it and takes it.
    fleet.run("server", "migrate", "--live", "lm-a", "--host", src)
    assert fleet.show("lm-a")["host"] == src
    assert _where(fleet, uuid)[src] == "running" and _where(fleet, uuid)[dest] == "absent"
    assert _used(fleet) == used_before
    fleet.delete("lm-a")


def test_live_migration_refusals_move_nothing(fleet):
    h1, h2, h3 = (h.name for h in fleet.hosts[:3])
    fleet.create_on(h2, ("lr-filler", "e2e.disk200"))
    [big] = fleet.create_on(h1, ("lr-big", "e2e.disk200"))
    fleet.run("server-group", "create", "lr-anti", "--policy", "anti-affinity", "--project", PROJECT)
    g1 = _create_only_on(fleet, h1, "lr-g1", "--flavor", "e2e.nano", "--image", "tiny", "--group", "lr-anti")
    g2 = _create_only_on(fleet, h2, "lr-g2", "--flavor", "e2e.nano", "--image", "tiny", "--group", "lr-anti")
    used = _used(fleet)
    fleet.run("host", "disable", h3, "--reason", "e2e: maintenance")
    try:
        err = fleet.fails("server", "migrate", "--live", "lr-big", "--host", h2)  # no room next to the filler
        assert "lr-big" in err and h2 in err and "disk" in err.lower(), err
        err = fleet.fails("server", "migrate", "--live", "lr-big", "--host", h3)
        assert h3 in err and "disabled" in err.lower(), err
        err = fleet.fails("server", "migrate", "--live", "lr-g2", "--host", h1)  # lr-g1 is there
        assert h1 in err and ("lr-anti" in err or "affinity" in err.lower()), err
        for name, host, uuid in (("lr-big", h1, big["id"]), ("lr-g2", h2, g2["id"])):
            shown = fleet.show(name)
            assert (shown["status"], shown["host"], shown["task_state"]) == ("ACTIVE", host, None), shown
            where = _where(fleet, uuid)
            assert where[host] == "running" and all(s == "absent" for h, s in where.items() if h != host), where
        assert [m["status"] for m in _migrations(fleet, "lr-big")] == ["error", "error"]
        assert [m["status"] for m in _migrations(fleet, "lr-g2")] == ["error"]
        assert _used(fleet) == used
    finally:
        fleet.run("host", "enable", h3)
        fleet.delete("lr-big", "lr-filler", "lr-g1", "lr-g2")
        fleet.run("server-group", "delete", "lr-anti", "--project", PROJECT, check=False)
    assert g1["host"] == h1


def test_two_migrations_racing_for_one_slot_exactly_one_wins(fleet):
    h1, h2, h3 = (h.name for h in fleet.hosts[:3])
    [s1] = fleet.create_on(h1, ("race-1", "e2e.disk200"))
    [s2] = fleet.create_on(h2, ("race-2", "e2e.disk200"))
    used = _used(fleet)
    try:
        procs = [subprocess.Popen([str(KVMFLEET), "server", "migrate", "--live", name, "--host", h3],
                                  env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in ("race-1", "race-2")]
        outs = [p.communicate(timeout=600) for p in procs]
        codes = [p.returncode for p in procs]
        assert sorted(codes) == [0, 1], (codes, outs)
        winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
        names, srcs, uuids = ("race-1", "race-2"), (h1, h2), (s1["id"], s2["id"])
        assert fleet.show(names[winner])["host"] == h3
        shown = fleet.show(names[loser])
        assert (shown["status"], shown["host"]) == ("ACTIVE", srcs[loser]), (shown, outs[loser])
        assert _where(fleet, uuids[winner])[h3] == "running"
        assert _where(fleet, uuids[loser])[h3] == "absent"
        assert _where(fleet, uuids[loser])[srcs[loser]] == "running"
        now = _used(fleet)
        assert now[h3][1] == used[h3][1] + 200 and now[srcs[loser]] == used[srcs[loser]], (used, now)
    finally:
        fleet.delete("race-1", "race-2")


def test_a_migration_past_its_timeout_is_aborted_and_the_guest_stays(fleet, tmp_path):
    h1 = fleet.hosts[0].name
    [row] = fleet.create_on(h1, ("lt-a", "e2e.nano"))
    fleet.wait_ready("lt-a")
    used = _used(fleet)
    # 1 MiB/s and 1 s per GiB (2 s at least): 128 MiB of memory cannot make it.
    env = _with_config(fleet, {"compute": {"live_migration_completion_timeout": 1,
                                           "live_migration_bandwidth": 1}}, tmp_path)
    proc = subprocess.run([str(KVMFLEET), "server", "migrate", "--live", "lt-a"], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    try:
        assert proc.returncode != 0 and "did not finish within 2s" in proc.stderr, proc.stderr
        assert f"runs on {h1} as before" in " ".join(proc.stderr.split()), proc.stderr
        shown = fleet.show("lt-a")
        assert (shown["status"], shown["host"], shown["task_state"]) == ("ACTIVE", h1, None), shown
        where = _where(fleet, row["id"])
        assert where[h1] == "running" and all(s == "absent" for h, s in where.items() if h != h1), where
        assert _used(fleet) == used
        [mig] = _migrations(fleet, "lt-a")
        assert mig["status"] == "failed" and "did not finish" in mig["error"], mig
    finally:
        fleet.delete("lt-a")


def test_a_migration_aborted_by_request_leaves_the_guest_on_its_source(fleet, tmp_path):
    h1 = fleet.hosts[0].name
    [row] = fleet.create_on(h1, ("la-a", "e2e.nano"))
    fleet.wait_ready("la-a")
    env = _with_config(fleet, {"compute": {"live_migration_bandwidth": 1}}, tmp_path)
    proc = subprocess.Popen([str(KVMFLEET), "server", "migrate", "--live", "la-a"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        running = []
        while time.monotonic() < deadline and not running:
            running = [m for m in _migrations(fleet, "la-a") if m["status"] == "running"]
            time.sleep(0.5)
        assert running, _migrations(fleet, "la-a")
        time.sleep(2)  # into the libvirt job
        fleet.run("server", "migration-abort", "la-a", str(running[0]["id"]))
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode != 0 and "aborted by request" in err, err
        shown = fleet.show("la-a")
        assert (shown["status"], shown["host"]) == ("ACTIVE", h1), shown
        where = _where(fleet, row["id"])
        assert where[h1] == "running" and all(s == "absent" for h, s in where.items() if h != h1), where
        assert [m["status"] for m in _migrations(fleet, "la-a")] == ["cancelled"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fleet.delete("la-a")


def test_cold_migration_confirm_and_revert(fleet):
    h1 = fleet.hosts[0].name
    [row] = fleet.create_on(h1, ("cm-a", "e2e.nano"))
    uuid = row["id"]
    used = _used(fleet)
    try:
        fleet.run("server", "migrate", "cm-a")
        shown = fleet.show("cm-a")
        dest = shown["host"]
        assert dest != h1 and (shown["status"], shown["flavor"]) == ("VERIFY_RESIZE", "e2e.nano"), shown
        assert _state(fleet, dest, uuid) == "running" and _state(fleet, h1, uuid) == "shut off"
        fleet.run("server", "revert-resize", "cm-a")
        shown = fleet.show("cm-a")
        assert (shown["status"], shown["host"]) == ("ACTIVE", h1), shown
        assert _state(fleet, dest, uuid) == "absent" and _state(fleet, h1, uuid) == "running"
        assert _used(fleet) == used

        fleet.run("server", "migrate", "cm-a", "--host", dest)
        assert fleet.show("cm-a")["host"] == dest
        fleet.run("server", "confirm-resize", "cm-a")
        shown = fleet.show("cm-a")
        assert (shown["status"], shown["host"]) == ("ACTIVE", dest), shown
        assert _state(fleet, h1, uuid) == "absent" and _state(fleet, dest, uuid) == "running"
        now = _used(fleet)
        assert now[h1][0] == used[h1][0] - 128 and now[dest][0] == used[dest][0] + 128, (used, now)
        statuses = [(m["type"], m["status"]) for m in _migrations(fleet, "cm-a")]
        assert statuses == [("migration", "confirmed"), ("migration", "reverted")], statuses
        err = fleet.fails("server", "migrate", "cm-a", "--host", dest)
        assert "already there" in err, err
        err = fleet.fails("server", "migrate", "cm-a", "--host", "no-such-host")
        assert "Compute host no-such-host could not be found" in err, err
    finally:
        fleet.delete("cm-a")
