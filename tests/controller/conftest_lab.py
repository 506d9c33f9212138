"""Lab helpers shared by the end-to-end and API tests: the lab's hosts as seen over ssh."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class LabHost:
    name: str
    address: str
    ssh: list[str]
    netns: str = ""  # the lab host's network namespace on this machine

    def link(self, up: bool) -> None:
        """Cut the host off the lab network (its eth0 down in its namespace), or put it back: a real
        network fault, sshd and libvirtd keep running behind it."""
        assert self.netns, f"{self.name}: no network namespace in the inventory (kvmfleet_lab_netns)"
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "eth0", "up" if up else "down"],
                       check=True, capture_output=True, timeout=30)

    def run(self, command: str, check: bool = True) -> str:
        proc = subprocess.run([*self.ssh, command], capture_output=True, text=True, timeout=60, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"ssh {self.name} {command!r}: rc {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def domains(self) -> list[str]:
        return [d for d in self.run("virsh list --all --name").split() if d]


def lab_hosts(inventory: Path) -> list[LabHost]:
    data = yaml.safe_load(inventory.read_text())
    group = data["all"]["children"]["kvm_hosts"]
    gv = group.get("vars") or {}
    hosts = []
    for name, hv in group["hosts"].items():
        v = {**gv, **(hv or {})}
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-i", v["ansible_ssh_private_key_file"],
               *shlex.split(v.get("ansible_ssh_common_args", "")), f"{v.get('ansible_user', 'root')}@{v['ansible_host']}"]
        hosts.append(LabHost(name, v["ansible_host"], ssh, v.get("kvmfleet_lab_netns", "")))
    return hosts


