#!/usr/bin/env python3
"""Host operations: the domain module through ansible-playbook against raw `ssh <host> virsh ...`.

For define+start, graceful stop and delete of a tiny instance on one lab host, time several runs of
  - module:   ansible-playbook running one kvmfleet.compute.domain task (state running / stopped / absent)
  - baseline: one ssh call doing the same by hand (qemu-img overlay + virsh define + virsh start;
              virsh shutdown + wait for "shut off"; virsh undefine + rm)
and print medians and the module/baseline ratio. Figures, not pass/fail (target: define+start <= 3x).

    python bench/host_ops.py [--lab dev] [--runs 5] [--host lab-h1]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LAB_ROOT = Path(os.environ.get("KVMFLEET_LAB_ROOT", "/var/lib/kvmfleet-lab"))
TINY = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
IMAGES_DIR = "/var/lib/libvirt/kvmfleet/images"
INSTANCES_DIR = "/var/lib/libvirt/kvmfleet/instances"
BASE_NAME = "kvmfleet-tiny.qcow2"
OPS = ("define+start", "graceful stop", "delete")
STATE_FOR = {"define+start": "running", "graceful stop": "stopped", "delete": "absent"}


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(REPO / ".venv" / "bin") + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "build" / "collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


class Bench:
    def __init__(self, lab: str, host: str | None, runs: int):
        self.inventory = LAB_ROOT / lab / "hosts.yml"
        if not self.inventory.is_file():
            sys.exit(f"no lab inventory at {self.inventory}: kvmfleet lab up --name {lab}")
        group = yaml.safe_load(self.inventory.read_text())["all"]["children"]["kvm_hosts"]
        self.host = host or next(iter(group["hosts"]))
        self.address = group["hosts"][self.host]["ansible_host"]
        v = group["vars"]
        self.ssh = ["ssh", "-i", v["ansible_ssh_private_key_file"], *v["ansible_ssh_common_args"].split(),
                    "-o", "BatchMode=yes", "-o", "ControlMaster=no", f"root@{self.address}"]
        self.virt_type = v.get("kvmfleet_virt_type", "kvm")
        self.runs = runs
        self.tmp = Path(tempfile.mkdtemp(prefix="kvmfleet-bench-"))
        self.results: dict[str, dict[str, list[float]]] = {op: {"module": [], "baseline": []} for op in OPS}

    # -- module side ---------------------------------------------------------------------------
    def _playbook(self, name: str, state: str) -> Path:
        task = {"kvmfleet.compute.domain": {
            "name": name, "state": state, "vcpus": 1, "memory_mb": 128, "virt_type": self.virt_type,
            "root_disk": {"image": BASE_NAME, "size_gb": 1}, "nics": [{"network": "default"}],
            "force_stop": False, "stop_timeout": 120}}
        play = [{"name": f"bench {state}", "hosts": self.host, "gather_facts": False, "tasks": [task]}]
        path = self.tmp / f"{name}-{state}.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        return path

    def _ansible(self, args: list[str]) -> float:
        start = time.monotonic()
        proc = subprocess.run(args, capture_output=True, text=True, env=ansible_env(), cwd=str(REPO), check=False)
        took = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        return took

    def module_op(self, name: str, op: str) -> float:
        return self._ansible(["ansible-playbook", "-i", str(self.inventory), str(self._playbook(name, STATE_FOR[op]))])

    def ensure_base_image(self) -> None:
        sha = Path(f"{TINY}.sha256").read_text().split()[0]
        args = {"name": BASE_NAME, "src": str(TINY), "sha256": sha, "format": "qcow2"}
        self._ansible(["ansible", "-i", str(self.inventory), self.host, "-m", "kvmfleet.compute.image",
                       "-a", json.dumps(args)])

    # -- baseline side -------------------------------------------------------------------------
    def _domain_xml(self, name: str) -> str:
        d = f"{INSTANCES_DIR}/{name}"
        dom = ET.Element("domain", type=self.virt_type)
        ET.SubElement(dom, "name").text = name
        ET.SubElement(dom, "memory", unit="MiB").text = "128"
        ET.SubElement(dom, "vcpu").text = "1"
        os_el = ET.SubElement(dom, "os")
        ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
        feats = ET.SubElement(dom, "features")
        ET.SubElement(feats, "acpi")
        dev = ET.SubElement(dom, "devices")
        disk = ET.SubElement(dev, "disk", type="file", device="disk")
        ET.SubElement(disk, "driver", name="qemu", type="qcow2")
        ET.SubElement(disk, "source", file=f"{d}/disk")
        ET.SubElement(disk, "target", dev="vda", bus="virtio")
        nic = ET.SubElement(dev, "interface", type="network")
        ET.SubElement(nic, "source", network="default")
        ET.SubElement(nic, "model", type="virtio")
        serial = ET.SubElement(dev, "serial", type="pty")
        ET.SubElement(serial, "log", file=f"{d}/console.log", append="off")
        ET.SubElement(dev, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
        return ET.tostring(dom, encoding="unicode")

    def _ssh(self, script: str, stdin: str | None = None) -> float:
        start = time.monotonic()
        proc = subprocess.run(self.ssh + [script], input=stdin, capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        if proc.returncode != 0:
            sys.exit(f"ssh {script!r} failed: {proc.stderr.strip()}")
        return took

    def wait_ready(self, name: str, timeout: int = 180) -> None:
        """Not timed: until the guest printed its ready line on the serial log."""
        self._ssh(f"for i in $(seq {timeout * 2}); do grep -q 'kvmfleet-guest: ready' "
                  f"{INSTANCES_DIR}/{name}/console.log 2>/dev/null && exit 0; sleep 0.5; done; exit 1")

    def baseline_op(self, name: str, op: str) -> float:
        d = f"{INSTANCES_DIR}/{name}"
        uri = "qemu:///system"
        if op == "define+start":
            return self._ssh(
                f"set -e; mkdir -p {d}; qemu-img create -q -f qcow2 -F qcow2 -b {IMAGES_DIR}/{BASE_NAME} {d}/disk 1G; "
                f"cat > {d}/domain.xml; virsh -q -c {uri} define {d}/domain.xml >/dev/null; "
                f"virsh -q -c {uri} start {name} >/dev/null", stdin=self._domain_xml(name))
        if op == "graceful stop":
            return self._ssh(
                f"set -e; virsh -q -c {uri} shutdown {name} >/dev/null; "
                f"for i in $(seq 600); do [ \"$(virsh -q -c {uri} domstate {name})\" = 'shut off' ] && exit 0; sleep 0.2; done; "
                f"exit 1")
        return self._ssh(f"set -e; virsh -q -c {uri} undefine {name} >/dev/null; rm -rf {d}")

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> None:
        self.ensure_base_image()
        prefix = "bench" + secrets.token_hex(2)
        for i in range(self.runs):
            for side, fn in (("module", self.module_op), ("baseline", self.baseline_op)):
                name = f"{prefix}-{side[0]}{i}"
                for op in OPS:
                    if op == "graceful stop":
                        self.wait_ready(name)  # a guest still booting ignores the ACPI button
                    self.results[op][side].append(fn(name, op))
            print(f"run {i + 1}/{self.runs}: " + ", ".join(
                f"{op} {self.results[op]['module'][-1]:.2f}s/{self.results[op]['baseline'][-1]:.2f}s" for op in OPS),
                flush=True)

    def report(self) -> None:
        print(f"\nhost {self.host} ({self.address}), virt_type {self.virt_type}, {self.runs} runs, medians:")
        print(f"{'operation':<15} {'module':>9} {'baseline':>9} {'ratio':>7}")
        for op in OPS:
            m = statistics.median(self.results[op]["module"])
            b = statistics.median(self.results[op]["baseline"])
            print(f"{op:<15} {m:>8.2f}s {b:>8.2f}s {m / b:>6.2f}x")
        print("target: define+start ratio <= 3 (module timings include ansible-playbook start-up)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default=os.environ.get("KVMFLEET_LAB", "dev"))
    ap.add_argument("--host", default=None, help="lab host (default: the first)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    bench = Bench(args.lab, args.host, args.runs)
    bench.run()
    bench.report()


if __name__ == "__main__":
    main()
