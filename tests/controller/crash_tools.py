"""Helpers of the crash tests (tests/controller/api/test_service_crash.py, tests/controller/e2e/test_crash_*):
processes under a controller, read from /proc, and the lab hosts' domains as libvirt reports them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conftest_lab import LabHost


def process_tree(pid: int) -> list[int]:
    """The pids below `pid` now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text(errors="replace")
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def qemu_guests() -> set[str]:
    """The domain names (``guest=`` of ``-name``) of every QEMU process on this machine now: the lab hosts'
    guests are processes here, so this sees a domain start within milliseconds, without asking a host."""
    names = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = cmdline(int(entry))
            if "qemu-system" in argv and " -name guest=" in argv:
                names.add(argv.split(" -name guest=", 1)[1].split(",", 1)[0].split(" ", 1)[0])
    return names


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def playbooks_of(pid: int) -> list[int]:
    """The ansible-playbook processes (the guard included) below `pid`."""
    return [p for p in process_tree(pid) if "ansible-playbook" in cmdline(p)]


def assert_no_playbook_left(pids: list[int], timeout: float = 20) -> None:
    """None of the playbook processes a killed controller had may stay alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.5)
    left = [(p, cmdline(p)[:120]) for p in pids if alive(p)]
    assert not left, f"ansible-playbook processes outlived their controller: {left}"


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def domain_states(hosts: list[LabHost]) -> dict[str, dict[str, str]]:
    """{uuid: {host: libvirt state}} of every kvmfleet domain on the lab hosts."""
    out: dict[str, dict[str, str]] = {}
    for h in hosts:
        for line in h.run("for d in $(virsh list --all --name | grep '^kvmfleet-'); do "
                          "echo \"$d $(virsh domstate $d)\"; done").splitlines():
            name, _, state = line.partition(" ")
            if name:
                out.setdefault(name.removeprefix("kvmfleet-"), {})[h.name] = state.strip()
    return out
