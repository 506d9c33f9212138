"""The guard every executor job runs ansible-playbook under: no playbook outlives the kvmfleet process
that started it (a `kvmfleet serve` or a CLI killed with -9 included).

ansible-runner starts the guard (its `binary`) in place of ansible-playbook. The guard:
- asks the kernel for SIGTERM when its parent (the controller thread that runs the job) dies
  (PR_SET_PDEATHSIG), and quits at once if that parent is already gone;
- becomes a child subreaper, so ansible's workers (each in a session of its own) stay its descendants;
- starts ansible-playbook with PR_SET_PDEATHSIG=SIGKILL, in case the guard itself is killed;
- on SIGTERM, SIGINT or SIGHUP (the parent died, or the runner cancelled the job) stops the whole process
  tree below it (SIGTERM, then SIGKILL after a short wait) and exits; otherwise exits with the
  playbook's status.
Standard library only: it runs before anything else is imported.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
KILL_WAIT = 3.0


_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: the child only calls prctl


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _is_ssh_master(pid: int) -> bool:
    """An ssh ControlPersist master ("ssh: <path> [mux]"): shared by later jobs, it ends by itself."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    return cmdline.startswith(b"ssh: ") and b"[mux]" in cmdline


def _descendants(root: int) -> list[int]:
    """Every process below `root` (by parent pid, read from /proc) but ssh masters, deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        if not _is_ssh_master(pid):
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _stop_tree() -> None:
    me = os.getpid()
    _signal_all(_descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + KILL_WAIT
    while time.monotonic() < deadline and _descendants(me):
        time.sleep(0.1)
        _reap()
    _signal_all(_descendants(me), signal.SIGKILL)
    _reap()


def _reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    parent = os.getppid()
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        sys.exit(143)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    real = shutil.which("ansible-playbook", path=os.environ.get("PATH"))
    if real is None:
        sys.stderr.write("kvmfleet ansible guard: ansible-playbook not found on PATH\n")
        sys.exit(127)
    stopping: list[int] = []

    def on_signal(sig: int, _frame: object) -> None:
        stopping.append(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    # The guard has one thread, so preexec_fn is safe here.
    child = subprocess.Popen([real, *sys.argv[1:]],
                             preexec_fn=lambda: _prctl(PR_SET_PDEATHSIG, signal.SIGKILL))  # noqa: PLW1509
    while True:
        if stopping:
            _stop_tree()
            sys.exit(128 + stopping[0])
        try:
            rc = child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        _stop_tree()  # workers a finished playbook left behind
        sys.exit(rc if rc >= 0 else 128 - rc)


if __name__ == "__main__":
    main()
