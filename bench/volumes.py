#!/usr/bin/env python3
"""Volumes on the lab (figures and ratios, never pass/fail).

A state dir of its own (bench/_service.py's store, identity, flavor bench.nano, image tiny; no `kvmfleet serve`:
the volume and server commands run the host side inline), the lab's hosts imported, one tiny guest (1 vCPU,
128 MiB, no NIC) on the first host, one volume (default type `local`, a qcow2 in the host's pool directory),
then:

1. Sequential throughput, guest against host. The guest's user data waits for the disk whose serial is the
   volume id's first 20 characters, then (busybox dd, bs=1M, timed with /proc/uptime: busybox date has no %N)
   writes --mib MiB of zeros to it with conv=fsync, drops its page cache (/proc/sys/vm/drop_caches) and waits
   for the disk to grow; meanwhile the bench drops the host's cached pages of the volume file (GNU dd
   iflag=nocache count=0, posix_fadvise DONTNEED of that file only: the machine is shared, so no global
   drop_caches) and signals with `kvmfleet volume extend` (+1 GiB); the guest then reads the MiB back.
   On the same lab host (ssh) the same amount goes to a plain file in the same pool directory
   (/var/lib/libvirt/kvmfleet/volumes): GNU dd conv=fsync, the file's pages dropped the same way, read back.
   Figures: guest MiB/s, host MiB/s, ratio guest/host for write and read. The guest runs under TCG
   (virt_type qemu), so the ratio is mostly the cost of emulation, not of the volume path.
2. Hot-plug: --runs times `kvmfleet volume detach` then `kvmfleet volume attach` on the running guest, the wall
   time of each CLI call (it returns once the volume is available / in-use) and the time from the call's
   start until the guest's console says the disk is gone / present (its watcher polls /sys/block every 0.2 s;
   the console is followed with `tail -F` over one ssh); median/min/max.
The volume is detached, the server and the volume deleted, the host's test file and the state dir removed,
whatever happens.

    python bench/volumes.py --lab NAME [--runs 3] [--mib 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import BenchService

LAB_ROOT = Path(os.environ.get("KVMFLEET_LAB_ROOT", "/var/lib/kvmfleet-lab"))
INSTANCES_DIR = "/var/lib/libvirt/kvmfleet/instances"
POOL_DIR = "/var/lib/libvirt/kvmfleet/volumes"
TAG = "kvmfleet-bench-vol:"

GUEST = """#!/bin/sh
(
say() { echo "@TAG@ $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
find_dev() {
    dev=
    for d in /sys/block/vd*; do
        [ "$(cat "$d/serial" 2>/dev/null)" = "@SERIAL@" ] && dev=${d##*/}
    done
}
find_dev
while [ -z "$dev" ]; do sleep 0.2; find_dev; done
say "present dev=$dev"
size=$(cat /sys/block/$dev/size)
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(up); dd if=/dev/zero of=/dev/$dev bs=1M count=@MIB@ conv=fsync 2>/tmp/dd.w; rc=$?; t1=$(up)
say "write rc=$rc t0=$t0 t1=$t1 dd=$(tail -n 1 /tmp/dd.w | tr ' ' _)"
echo 3 > /proc/sys/vm/drop_caches
say "written size=$size"
while [ "$(cat /sys/block/$dev/size)" = "$size" ]; do sleep 0.2; done
t0=$(up); dd if=/dev/$dev of=/dev/null bs=1M count=@MIB@ 2>/tmp/dd.r; rc=$?; t1=$(up)
say "read rc=$rc t0=$t0 t1=$t1 dd=$(tail -n 1 /tmp/dd.r | tr ' ' _)"
state=present
while :; do
    find_dev
    if [ -n "$dev" ]; then now="present dev=$dev"; else now=gone; fi
    [ "${now%% *}" != "$state" ] && say "$now"
    state=${now%% *}
    sleep 0.2
done
) >/dev/console 2>&1 &
"""

HOST = """set -e
f={path}
t() {{ date +%s.%N; }}
t0=$(t); dd if=/dev/zero of=$f bs=1M count={mib} conv=fsync status=none; t1=$(t)
dd if=$f iflag=nocache count=0 status=none
cached=$(fincore -n -b -o RES $f 2>/dev/null | tr -d " " || echo -)
t2=$(t); dd if=$f of=/dev/null bs=1M status=none; t3=$(t)
rm -f $f
echo "host $t0 $t1 $t2 $t3 $cached"
"""


class Host:
    def __init__(self, name: str, v: dict[str, Any]) -> None:
        self.name = name
        self.address = v["ansible_host"]
        self.ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlMaster=no",
                    "-i", v["ansible_ssh_private_key_file"], *shlex.split(v.get("ansible_ssh_common_args", "")),
                    f"{v.get('ansible_user', 'root')}@{self.address}"]

    def run(self, script: str, check: bool = True) -> str:
        proc = subprocess.run([*self.ssh, script], capture_output=True, text=True, timeout=600, check=False)
        if check and proc.returncode != 0:
            raise SystemExit(f"ssh {self.name} {script[:200]!r}: rc {proc.returncode}: {proc.stderr.strip()[-1500:]}")
        return proc.stdout


def lab_hosts(inventory: Path) -> list[Host]:
    group = yaml.safe_load(inventory.read_text())["all"]["children"]["kvm_hosts"]
    gv = group.get("vars") or {}
    return [Host(name, {**gv, **(hv or {})}) for name, hv in group["hosts"].items()]


class Console:
    """A guest's console.log followed over one ssh (`tail -F`): every line with the time it arrived here."""

    def __init__(self, host: Host, domain: str) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([*host.ssh, f"exec tail -n +1 -F {INSTANCES_DIR}/{domain}/console.log"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\r\n")))
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)

    def wait(self, pattern: str, since: int = 0, timeout: float = 120) -> tuple[float, re.Match[str]]:
        """The first line from index `since` on matching `pattern`: (its arrival time, the match)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.lines):
                    at, line = self.lines[i]
                    m = rx.search(line)
                    if m:
                        return at, m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(text for _, text in self.lines[-15:])
                    raise SystemExit(f"timed out after {timeout:.0f}s waiting for /{pattern}/ on the console:\n{tail}")
                self.cond.wait(min(left, 1.0))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt_stats(s: dict[str, float]) -> str:
    return f"median {s['median']:.2f}s (min {s['min']:.2f}s, max {s['max']:.2f}s)"


class Volumes:
    def __init__(self, lab: str, runs: int, mib: int) -> None:
        self.inventory = LAB_ROOT / lab / "hosts.yml"
        if not self.inventory.is_file():
            raise SystemExit(f"no lab inventory at {self.inventory}: kvmfleet lab up --name {lab}")
        self.hosts = lab_hosts(self.inventory)
        self.host = self.hosts[0]
        self.runs, self.mib = runs, mib
        self.suffix = secrets.token_hex(2)
        self.server = f"bench-vol-{self.suffix}"
        self.svc = BenchService()
        self.volume: dict[str, Any] | None = None
        self.attached = False
        self.created_server = False
        self.console: Console | None = None
        self.host_file = f"{POOL_DIR}/bench-host-{self.suffix}.raw"
        self.summary: dict[str, Any] = {"lab": lab, "host": self.host.name, "runs": runs, "mib": mib,
                                        "virt_type": "qemu (TCG)"}

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        self.svc.prepare()
        self.svc.cli("host", "import", "--inventory", str(self.inventory))
        for other in self.hosts[1:]:
            self.svc.cli("host", "disable", other.name, "--reason", "bench: build on the first host")
        self.volume = self.svc.cli_json("volume", "create", "--size", "1", "--name", f"bench-vol-{self.suffix}")
        serial = self.volume["id"][:20]
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write(GUEST.replace("@TAG@", TAG).replace("@SERIAL@", serial).replace("@MIB@", str(self.mib)))
        try:
            self.created_server = True
            row = self.svc.cli_json("server", "create", self.server, "--flavor", "bench.nano", "--image", "tiny",
                                    "--network", "", "--user-data", f.name, "--wait")[0]
        finally:
            os.unlink(f.name)
        if row["host"] != self.host.name:
            raise SystemExit(f"server {self.server} on {row['host']}, not {self.host.name}")
        self.console = Console(self.host, row["domain"])
        self.domain = row["domain"]
        self.console.wait(r"kvmfleet-guest: ready", timeout=300)

    def attach(self) -> float:
        start = time.monotonic()
        self.svc.cli("volume", "attach", self.volume["id"], self.server, "-f", "json")
        self.attached = True
        return time.monotonic() - start

    def detach(self) -> float:
        start = time.monotonic()
        self.svc.cli("volume", "detach", self.volume["id"], "-f", "json")
        self.attached = False
        return time.monotonic() - start

    def volume_path(self) -> str:
        serial = self.volume["id"][:20]
        for line in self.host.run(f"virsh -q domblklist --details {self.domain}").splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1] == "disk" and parts[3].startswith(POOL_DIR):
                return parts[3]
        raise SystemExit(f"no disk of the pool {POOL_DIR} on {self.domain} (volume serial {serial})")

    def cached(self, path: str) -> str:
        return self.host.run(f"fincore -n -b -o RES {shlex.quote(path)} 2>/dev/null || echo -", check=False).strip()

    # -- 1. throughput ---------------------------------------------------------------------------
    def throughput(self) -> None:
        assert self.console is not None
        mark = self.console.mark()
        took = self.attach()
        _, m = self.console.wait(r"present dev=(\w+)", mark)
        dev = m.group(1)
        _, w = self.console.wait(r"write rc=(\d+) t0=(\S+) t1=(\S+) dd=(\S*)", mark, timeout=600)
        self.console.wait(r"written size=", mark, timeout=120)
        path = self.volume_path()
        self.host.run(f"dd if={shlex.quote(path)} iflag=nocache count=0 status=none")
        vol_cached = self.cached(path)
        mark = self.console.mark()
        self.svc.cli("volume", "extend", self.volume["id"], "--size", "2", "-f", "json")
        _, r = self.console.wait(r"read rc=(\d+) t0=(\S+) t1=(\S+) dd=(\S*)", mark, timeout=600)
        if w.group(1) != "0" or r.group(1) != "0":
            raise SystemExit(f"guest dd failed: write rc {w.group(1)} ({w.group(4)}), read rc {r.group(1)} ({r.group(4)})")
        guest = {"write_s": float(w.group(3)) - float(w.group(2)), "read_s": float(r.group(3)) - float(r.group(2)),
                 "dd_write": w.group(4).replace("_", " "), "dd_read": r.group(4).replace("_", " "),
                 "device": dev, "volume_file": path, "host_cached_bytes_before_read": vol_cached}
        out = self.host.run(HOST.format(path=shlex.quote(self.host_file), mib=self.mib))
        t0, t1, t2, t3, host_cached = re.search(r"^host (\S+) (\S+) (\S+) (\S+)\s+(\S+)", out, re.MULTILINE).groups()
        host = {"write_s": float(t1) - float(t0), "read_s": float(t3) - float(t2),
                "file": self.host_file, "cached_bytes_before_read": host_cached}
        for side in (guest, host):
            side["write_mib_s"] = self.mib / side["write_s"]
            side["read_mib_s"] = self.mib / side["read_s"]
        self.summary["throughput"] = {
            "first_attach_s": took, "guest": guest, "host": host,
            "ratio_write": guest["write_mib_s"] / host["write_mib_s"],
            "ratio_read": guest["read_mib_s"] / host["read_mib_s"]}
        print(f"throughput {self.mib} MiB: guest write {guest['write_mib_s']:.1f} MiB/s, read {guest['read_mib_s']:.1f} "
              f"MiB/s; host write {host['write_mib_s']:.1f} MiB/s, read {host['read_mib_s']:.1f} MiB/s", flush=True)

    # -- 2. hot-plug -----------------------------------------------------------------------------
    def hotplug(self) -> None:
        assert self.console is not None
        rows: list[dict[str, float]] = []
        for i in range(self.runs):
            row: dict[str, float] = {}
            for what, call, seen in (("detach", self.detach, r"kvmfleet-bench-vol: gone"),
                                     ("attach", self.attach, r"kvmfleet-bench-vol: present dev=")):
                mark = self.console.mark()
                start = time.monotonic()
                row[f"{what}_s"] = call()
                at, _ = self.console.wait(seen, mark, timeout=120)
                row[f"{what}_guest_s"] = at - start
            rows.append(row)
            print(f"hot-plug {i + 1}/{self.runs}: detach {row['detach_s']:.2f}s (guest sees it gone after "
                  f"{row['detach_guest_s']:.2f}s), attach {row['attach_s']:.2f}s (guest sees it after "
                  f"{row['attach_guest_s']:.2f}s)", flush=True)
        self.summary["hotplug"] = {"runs": rows, **{k: stats([r[k] for r in rows]) for k in rows[0]}}

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.setup()
            self.throughput()
            self.hotplug()
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.console is not None:
            self.console.stop()
        if self.volume is not None and self.attached:
            self.svc.cli("volume", "detach", self.volume["id"], check=False)
        if self.created_server:
            self.svc.cli("server", "delete", self.server, check=False)
        if self.volume is not None:
            self.svc.cli("volume", "delete", self.volume["id"], check=False)
        for other in self.hosts[1:]:
            self.svc.cli("host", "enable", other.name, check=False)
        self.host.run(f"rm -f {shlex.quote(self.host_file)}", check=False)
        shutil.rmtree(self.svc.state, ignore_errors=True)

    def report(self) -> None:
        t = self.summary["throughput"]
        g, h = t["guest"], t["host"]
        print(f"\nsequential {self.mib} MiB, bs=1M, fsync'd writes, cold reads, on {self.host.name}:")
        print(f"  guest (volume {g['device']}, qcow2):       write {g['write_mib_s']:7.1f} MiB/s ({g['write_s']:.2f}s), "
              f"read {g['read_mib_s']:7.1f} MiB/s ({g['read_s']:.2f}s)")
        print(f"  host  (raw file, same pool dir): write {h['write_mib_s']:7.1f} MiB/s ({h['write_s']:.2f}s), "
              f"read {h['read_mib_s']:7.1f} MiB/s ({h['read_s']:.2f}s)")
        print(f"  ratio guest/host: write {t['ratio_write']:.2f}x, read {t['ratio_read']:.2f}x")
        print("  (the guest runs under TCG emulation, virt_type qemu: the ratio is mostly the cost of emulating the "
              "guest's CPU, not of the volume path)")
        print(f"  (host pages of either file before its read, fincore: volume {g['host_cached_bytes_before_read']} B, "
              f"file {h['cached_bytes_before_read']} B; the lab's disk may itself be virtual, with a cache beneath it)")
        hp = self.summary["hotplug"]
        print(f"hot-plug on the running guest, {self.runs} runs:")
        print(f"  `volume detach`: {fmt_stats(hp['detach_s'])}; guest sees the disk gone: {fmt_stats(hp['detach_guest_s'])}")
        print(f"  `volume attach`: {fmt_stats(hp['attach_s'])}; guest sees the disk:      {fmt_stats(hp['attach_guest_s'])}")
        print("  (guest times: from the CLI call's start to the watcher's console line; it polls every 0.2 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default=os.environ.get("KVMFLEET_LAB", "dev"))
    ap.add_argument("--runs", type=int, default=3, help="detach/attach pairs timed (default 3)")
    ap.add_argument("--mib", type=int, default=256, help="MiB written and read back, guest and host (default 256)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
    args = ap.parse_args()
    if not 1 <= args.mib <= 1024:
        raise SystemExit("--mib: 1..1024 (the volume is 1 GiB)")
    bench = Volumes(args.lab, max(1, args.runs), args.mib)
    bench.run()
    bench.report()
    if args.json:
        print(json.dumps(bench.summary, indent=2, default=str))


if __name__ == "__main__":
    main()
