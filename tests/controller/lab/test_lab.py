"""The lab itself, for real: namespaces, bridge, sshd, libvirtd, virtlogd on this machine.

Uses its own small lab (not the one `make test` brings up for the integration tests) so up/down
can be exercised without disturbing other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kvmfleet.lab import lab as labmod

pytestmark = pytest.mark.lab

KVMFLEET = [sys.executable, "-m", "kvmfleet"]
NAME = "lt" + format(os.getpid() % 0xFFFF, "x")


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(KVMFLEET + list(args), capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kvmfleet {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout


def _netns() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def small_lab():
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root")
    cli("lab", "up", "--name", NAME, "--hosts", "2", "--no-prepare")
    yield labmod.load(NAME)
    cli("lab", "down", "--name", NAME, check=False)


def test_status_reports_every_host_with_ssh_and_libvirt(small_lab):
    rows = json.loads(cli("lab", "status", "--name", NAME, "-f", "json").stdout)
    assert [r["host"] for r in rows] == ["lab-h1", "lab-h2"]
    assert all(r["ssh"] and r["libvirt"] for r in rows), rows
    assert rows[0]["address"] != rows[1]["address"]


def test_hosts_have_own_hostname_and_reach_each_other_by_name(small_lab):
    h1 = small_lab.hosts[0]
    ssh = labmod.ssh_base(small_lab) + [f"root@{h1.address}"]
    out = subprocess.run(ssh + ["hostname; ssh lab-h2 hostname; ip -4 -o addr show eth0; ip route"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "lab-h1"
    assert lines[1] == "lab-h2"  # host-to-host ssh by name, host keys checked
    assert h1.address in lines[2]
    assert "default" not in out.stdout  # no default route: lab traffic never leaves the machine


def test_libvirt_state_is_private_per_host(small_lab):
    h1, h2 = small_lab.hosts
    ssh1 = labmod.ssh_base(small_lab) + [f"root@{h1.address}"]
    ssh2 = labmod.ssh_base(small_lab) + [f"root@{h2.address}"]
    marker = f"/var/lib/libvirt/kvmfleet-lab-test-{os.getpid()}"
    subprocess.run(ssh1 + [f"touch {marker}"], check=True, timeout=30)
    try:
        seen = subprocess.run(ssh2 + [f"test -e {marker} && echo yes || echo no"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        assert seen == "no"
        assert not Path(marker).exists()  # nor in this machine's own /var/lib/libvirt
    finally:
        subprocess.run(ssh1 + [f"rm -f {marker}"], timeout=30, check=False)


def test_host_key_checking_stays_on(small_lab, tmp_path):
    h1 = small_lab.hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    proc = subprocess.run(["ssh", "-i", str(small_lab.key_file), "-o", f"UserKnownHostsFile={empty}",
                           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{h1.address}", "true"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode != 0
    assert "verification failed" in proc.stderr or "No ED25519 host key is known" in proc.stderr
    inv = small_lab.inventory.read_text()
    assert "StrictHostKeyChecking=yes" in inv and str(small_lab.known_hosts) in inv


def test_up_is_idempotent(small_lab):
    before = labmod.load(NAME)
    pids = [labmod._read_pid(h.state_dir / "libvirtd.pid") for h in before.hosts]
    out = cli("lab", "up", "--name", NAME, "--hosts", "2", "--no-prepare").stdout
    assert "already up" in out
    assert [labmod._read_pid(h.state_dir / "libvirtd.pid") for h in before.hosts] == pids


def test_second_lab_gets_another_subnet(small_lab):
    other = NAME + "b"
    try:
        cli("lab", "up", "--name", other, "--hosts", "1", "--no-prepare")
        lab2 = labmod.load(other)
        assert lab2.subnet != small_lab.subnet
        assert lab2.bridge != small_lab.bridge
        rows = json.loads(cli("lab", "status", "--name", NAME, "-f", "json").stdout)
        assert all(r["ssh"] and r["libvirt"] for r in rows)
    finally:
        cli("lab", "down", "--name", other)
    assert f"kf-{other}-" not in _netns()


def test_up_replaces_a_stale_lab_left_by_a_killed_run(small_lab):
    # A killed run leaves namespaces, bridge and mounts but no daemons: kill our own daemons by pid.
    lab = labmod.load(NAME)
    for h in lab.hosts:
        for f in ("libvirtd.pid", "sshd.pid", "virtlogd.pid"):
            pid = labmod._read_pid(h.state_dir / f)
            if pid and labmod._pid_in_netns(pid, labmod._netns_inode(h.netns)):
                os.kill(pid, 9)
    assert not labmod.is_healthy(labmod.load(NAME))
    out = cli("lab", "up", "--name", NAME, "--hosts", "2", "--no-prepare").stdout
    assert "stale" in out
    rows = json.loads(cli("lab", "status", "--name", NAME, "-f", "json").stdout)
    assert all(r["ssh"] and r["libvirt"] for r in rows), rows


def test_down_removes_everything_it_made():
    name = NAME + "d"
    cli("lab", "up", "--name", name, "--hosts", "1", "--no-prepare")
    lab = labmod.load(name)
    pids = [labmod._read_pid(lab.hosts[0].state_dir / f) for f in ("libvirtd.pid", "sshd.pid", "virtlogd.pid")]
    cli("lab", "down", "--name", name)
    assert f"kf-{name}-h1" not in _netns()
    assert lab.bridge not in _links()
    assert not lab.root.exists()
    assert not lab.ns_dir.exists()
    with open("/proc/self/mountinfo") as fh:
        assert str(lab.ns_dir) not in fh.read()
    for pid in pids:
        alive = Path(f"/proc/{pid}/status")
        if alive.exists():  # a zombie awaiting its reaper is not running
            assert "State:\tZ" in alive.read_text()
    out = cli("lab", "down", "--name", name).stdout
    assert "nothing to remove" in out


def test_bad_lab_name_is_refused():
    proc = cli("lab", "up", "--name", "Bad;name", "--hosts", "1", check=False)
    assert proc.returncode != 0
    assert "invalid lab name" in proc.stderr
