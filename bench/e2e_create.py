"""End-to-end create benchmark on the lab (figures, never pass/fail).

1. One instance: wall time of `kvmfleet server create --wait` (returns once the domain is running)
   against the raw baseline `ssh host 'qemu-img create overlay && virsh define && virsh start'` with an
   equivalent domain, from the same cached base image. Prints both medians and the ratio.
2. A burst of 30 instances over the lab's hosts, sized so exactly 10 fit per host (root disk = a tenth of
   the smallest host's disk capacity; qcow2 overlays are sparse, so this costs nothing): once as one
   request (`--count 30`), once as 30 concurrent `kvmfleet server create --wait` processes racing for the
   claims. Prints instances per second and checks capacity: no host over its schedulable capacity, every
   ACTIVE instance's domain present on its host, nothing else.

Usage: KVMFLEET_LAB=NAME python bench/e2e_create.py [--runs 3] [--burst 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
KVMFLEET = Path(sys.executable).parent / "kvmfleet"
TINY = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(KVMFLEET), *args], capture_output=True, text=True, env=env, timeout=1800, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"kvmfleet {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def cli_json(env: dict[str, str], *args: str):
    return json.loads(cli(env, *args, "-f", "json").stdout)


def ssh_cmd(lab: str, host: str) -> list[str]:
    data = yaml.safe_load((Path("/var/lib/kvmfleet-lab") / lab / "hosts.yml").read_text())
    group = data["all"]["children"]["kvm_hosts"]
    v = {**(group.get("vars") or {}), **(group["hosts"][host] or {})}
    return ["ssh", "-o", "BatchMode=yes", "-i", v["ansible_ssh_private_key_file"],
            *shlex.split(v.get("ansible_ssh_common_args", "")), f"root@{v['ansible_host']}"]


def baseline_xml(name: str, disk: str, log: str, virt_type: str) -> str:
    """A domain like the one the domain module defines (tiny flavor, TCG, serial log, NIC on default)."""
    dom = ET.Element("domain", type=virt_type)
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = "128"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    devices = ET.SubElement(dom, "devices")
    d = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(d, "driver", name="qemu", type="qcow2")
    ET.SubElement(d, "source", file=disk)
    ET.SubElement(d, "target", dev="vda", bus="virtio")
    nic = ET.SubElement(devices, "interface", type="network")
    ET.SubElement(nic, "source", network="default")
    ET.SubElement(nic, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=log, append="off")
    return ET.tostring(dom, encoding="unicode")


def baseline_once(ssh: list[str], base: str, virt_type: str) -> float:
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    workdir = f"/var/lib/libvirt/kvmfleet/instances/{name}"
    xml = baseline_xml(name, f"{workdir}/disk", f"{workdir}/console.log", virt_type)
    script = (f"set -e; mkdir -p {workdir}; qemu-img create -q -f qcow2 -F qcow2 -b {base} {workdir}/disk; "
              f"cat > {workdir}/domain.xml; virsh -q define {workdir}/domain.xml >/dev/null; "
              f"virsh -q start {name} >/dev/null")
    start = time.monotonic()
    subprocess.run([*ssh, script], input=xml, text=True, check=True, capture_output=True)
    elapsed = time.monotonic() - start
    subprocess.run([*ssh, f"virsh -q destroy {name}; virsh -q undefine {name}; rm -rf {workdir}"],
                   capture_output=True, text=True, check=False)
    return elapsed


def capacity_check(env: dict[str, str], lab: str) -> dict[str, object]:
    """Allocations within capacity on every host; each ACTIVE instance's domain exists on its host."""
    hosts = cli_json(env, "host", "list")
    over = [h["name"] for h in hosts
            if h["vcpus_used"] > h["capacity"]["vcpus"] or h["memory_mb_used"] > h["capacity"]["memory_mb"]
            or h["local_gb_used"] > h["capacity"]["disk_gb"]]
    servers = cli_json(env, "server", "list")
    missing = []
    for h in hosts:
        on_host = set(subprocess.run([*ssh_cmd(lab, h["name"]), "virsh list --name"], capture_output=True,
                                     text=True, check=False).stdout.split())
        for s in servers:
            if s["host"] == h["name"] and s["status"] == "ACTIVE" and f"kvmfleet-{s['id']}" not in on_host:
                missing.append(s["name"])
    per_host = {h["name"]: sum(1 for s in servers if s["host"] == h["name"]) for h in hosts}
    return {"hosts_over_capacity": over, "active_without_domain": missing, "per_host": per_host,
            "active": sum(1 for s in servers if s["status"] == "ACTIVE"),
            "error": sum(1 for s in servers if s["status"] == "ERROR")}


def delete_all(env: dict[str, str]) -> None:
    ids = [s["id"] for s in cli_json(env, "server", "list")]
    if ids:
        cli(env, "server", "delete", *ids, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default=os.environ.get("KVMFLEET_LAB"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--burst", type=int, default=30)
    args = parser.parse_args()
    if not args.lab:
        raise SystemExit("name the lab: --lab NAME or KVMFLEET_LAB")
    inventory = Path("/var/lib/kvmfleet-lab") / args.lab / "hosts.yml"
    if not inventory.is_file() or not TINY.is_file():
        raise SystemExit(f"need {inventory} (kvmfleet lab up) and {TINY} (kvmfleet image build-tiny)")
    state = tempfile.mkdtemp(prefix="kvmfleet-bench-")
    env = {**os.environ, "KVMFLEET_STATE_DIR": state, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "KVMFLEET_PROJECT": "bench"}
    # A lab host has few cores: let vCPUs overcommit enough that the disk size decides the fit.
    Path(state, "kvmfleet.yml").write_text("allocation_ratios: {cpu: 16.0, ram: 1.0, disk: 1.0}\n")
    cli(env, "host", "import", "--inventory", str(inventory))
    image = cli_json(env, "image", "register", "tiny", "--file", str(TINY))
    cli(env, "flavor", "create", "bench.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    cli(env, "project", "create", "bench")
    cli(env, "quota", "set", "bench", "--instances", "-1", "--cores", "-1", "--ram", "-1")
    hosts = cli_json(env, "host", "list")
    print(f"lab {args.lab}: {len(hosts)} hosts; state {state}")

    # Warm-up: the image reaches every host's cache once (not what we measure).
    cli(env, "server", "create", "warm", "--flavor", "bench.nano", "--image", "tiny", "--count", str(len(hosts)),
        "--wait", check=False)
    if not [s for s in cli_json(env, "server", "list") if s["status"] == "ACTIVE"]:
        raise SystemExit("warm-up create failed: " + json.dumps(cli_json(env, "server", "list"))[:500])
    delete_all(env)

    # 1. one instance, kvmfleet vs raw ssh + virsh
    ours = []
    for i in range(args.runs):
        start = time.monotonic()
        row = cli_json(env, "server", "create", f"one-{i}", "--flavor", "bench.nano", "--image", "tiny", "--wait")[0]
        ours.append(time.monotonic() - start)
        host = row["host"]
        cli(env, "server", "delete", row["id"])
    virt_type = "qemu"
    base = f"/var/lib/libvirt/kvmfleet/images/sha256-{image['sha256'][:40]}.qcow2"
    raw = [baseline_once(ssh_cmd(args.lab, host), base, virt_type) for _ in range(args.runs)]
    m_ours, m_raw = statistics.median(ours), statistics.median(raw)
    print(f"one instance: kvmfleet server create --wait median {m_ours:.2f}s (runs {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"              raw ssh virsh define/start median {m_raw:.2f}s (runs {', '.join(f'{t:.2f}' for t in raw)})")
    print(f"              ratio kvmfleet/raw {m_ours / m_raw:.1f}x")

    # 2. burst sized to fill the lab exactly
    per_host = 10
    disk = int(min(h["capacity"]["disk_gb"] for h in hosts) // 10)
    cli(env, "flavor", "create", "bench.burst", "--vcpus", "1", "--ram", "128", "--disk", str(disk))
    print(f"burst flavor: 1 vcpu, 128 MiB, {disk} GB sparse root disk -> {per_host} per host")

    start = time.monotonic()
    cli(env, "server", "create", "burst", "--flavor", "bench.burst", "--image", "tiny", "--count", str(args.burst),
        "--wait", check=False)
    took = time.monotonic() - start
    check = capacity_check(env, args.lab)
    print(f"burst as one request (--count {args.burst}): {took:.1f}s, {check['active'] / took:.2f} instances/s; "
          f"{check}")
    delete_all(env)

    failures: list[str] = []

    def one(i: int) -> float:
        t0 = time.monotonic()
        proc = cli(env, "server", "create", f"race-{i}", "--flavor", "bench.burst", "--image", "tiny", "--wait",
                   check=False)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            failures.append(lines[-1][:300] if lines else f"exit {proc.returncode}")
        return time.monotonic() - t0

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.burst) as pool:
        latencies = list(pool.map(one, range(args.burst)))
    took = time.monotonic() - start
    check = capacity_check(env, args.lab)
    print(f"burst as {args.burst} concurrent processes: {took:.1f}s, {check['active'] / took:.2f} instances/s, "
          f"latency median {statistics.median(latencies):.1f}s max {max(latencies):.1f}s; {check}")
    for failure in sorted(set(failures)):
        print(f"  failed create ({failures.count(failure)}x): {failure}")
    violations = len(check["hosts_over_capacity"]) + len(check["active_without_domain"])
    print(f"capacity violations: {violations}")
    delete_all(env)


if __name__ == "__main__":
    main()
