#!/usr/bin/env python3
"""Tenant networks on the lab: guest traffic over VXLAN against the hosts' own path, and how fast a security
group rule reaches the hosts' filters (figures and ratios, never pass/fail).

A state dir of its own (bench/_service.py's store, identity, flavor bench.nano, image tiny), the lab's hosts
imported, a `kvmfleet serve` of its own (for the key pair and the admin's port update, and its periodic
converge), a key pair made from a key that ssh-keygen generates here, a VXLAN network `bench-net`
(10.78.0.0/24) and a group `bench-sg` (ingress icmp and tcp/5001), then two tiny guests (1 vCPU, 128 MiB),
A on the first lab host and B on the second, each with a NIC on `default` (DHCP: the way in, by SSH from the
lab host's network namespace) and one on bench-net. Then:

1. Throughput and latency. B listens with busybox `nc -l -p 5001` and times the stream from its first byte
   to its end (/proc/uptime); A sends --mib MiB (`dd bs=64k | nc`); then A pings B (busybox `ping -c 20
   -i 0.2`, min/avg/max). The baseline is the same between the two lab hosts themselves over the lab bridge
   (`ip netns exec`, the same busybox nc from Debian's busybox-static, timed with date +%s.%N; busybox ping:
   this machine has no other nc or ping). Ratios guest/host. The same guest pair is measured again after
   the admin disabled port security on both tenant ports (Neutron's PUT port_security_enabled=false,
   security_groups=[]: the nwfilter becomes accept-all), which separates the filter's cost from that of
   the VXLAN path and the emulation. Be warned: the lab's guests run under TCG (virt_type qemu), so guest
   figures are dominated by emulating the guest's CPU, not by VXLAN or nwfilter; busybox nc's small buffers
   bound the host figure too.
2. A rule change on 10 ports. Four more bench-net ports in bench-sg are hot-plugged into each guest
   (`kvmfleet port create` + `server interface-attach`), so 10 ports, 5 per host. Each run adds an ingress
   rule tcp/(9100 + run) to bench-sg and times, from the moment `security-group rule-create` returned, until
   every one of the 10 ports' nwfilters (`virsh nwfilter-dumpxml kf-port-<id>` polled every 0.1 s on each
   lab host by one ssh each; the lab hosts share this machine's clock) carries it; then the same for
   `rule-delete` until none does. Once with `kvmfleet serve` running (its converge every 2 s), once with
   the service stopped and kvmfleet.network.reconcile.converge(store) called directly (a python process
   right after the CLI returned; its start-up counts). Median/min/max over --runs.
   Whether traffic is then actually allowed is not measured here (tests/controller/api/test_tenant_networks.py
   checks that tcp/8080 opens within seconds).
Servers, ports, networks, the group, the service (by its pid) and the state dir are removed whatever happens.

    python bench/network.py --lab NAME [--runs 3] [--mib 32] [--json]
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
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import BenchService

LAB_ROOT = Path(os.environ.get("KVMFLEET_LAB_ROOT", "/var/lib/kvmfleet-lab"))
NET, SUBNET, GROUP, KEY = "bench-net", "bench-sub", "bench-sg", "bench-key"
CIDR = "10.78.0.0/24"
NC_PORT = 5001
RULE_PORT_BASE = 9100
EXTRA_PORTS = 4  # per guest, beside its first tenant NIC: 2 x (1 + 4) = 10 ports
PINGS = "-c 20 -i 0.2"

# the receiver: the stream timed from its first byte to its end; `clock` prints seconds
RECEIVER = """echo listening
busybox nc -l -p {port} | {{ dd bs=1 count=1 >/dev/null 2>&1; t0=$({clock}); cat >/dev/null; t1=$({clock}); \
echo "rx $t0 $t1"; }}
"""
GUEST_CLOCK = "cut -d' ' -f1 /proc/uptime"
HOST_CLOCK = "date +%s.%N"

# on a lab host: until every listed port's filter has (or has not) `pattern`, each port's first time
WATCHER = """pat={pattern}; want={want}; end=$(( $(date +%s) + {timeout} ))
left="{ids}"
echo watching
while [ -n "$left" ]; do
    next=
    for id in $left; do
        if virsh nwfilter-dumpxml kf-port-$id 2>/dev/null | grep -qF -- "$pat"; then has=present; else has=absent; fi
        if [ $has = $want ]; then echo "seen $id $(date +%s.%N)"; else next="$next $id"; fi
    done
    left=$next
    [ -z "$left" ] && break
    if [ $(date +%s) -ge $end ]; then echo "timeout$left"; exit 1; fi
    sleep 0.1
done
echo done
"""


class Host:
    def __init__(self, name: str, v: dict[str, Any]) -> None:
        self.name = name
        self.address = v["ansible_host"]
        self.netns = v.get("kvmfleet_lab_netns", "")
        self.ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlMaster=no",
                    "-i", v["ansible_ssh_private_key_file"], *shlex.split(v.get("ansible_ssh_common_args", "")),
                    f"{v.get('ansible_user', 'root')}@{self.address}"]


def lab_hosts(inventory: Path) -> list[Host]:
    group = yaml.safe_load(inventory.read_text())["all"]["children"]["kvm_hosts"]
    gv = group.get("vars") or {}
    return [Host(name, {**gv, **(hv or {})}) for name, hv in group["hosts"].items()]


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt_stats(s: dict[str, float]) -> str:
    return f"median {s['median']:.2f}s (min {s['min']:.2f}s, max {s['max']:.2f}s)"


def parse_ping(out: str) -> dict[str, float]:
    m = re.search(r"min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)", out)
    loss = re.search(r"(\d+(?:\.\d+)?)% packet loss", out)
    if not m:
        raise SystemExit(f"no ping summary in: {out[-500:]!r}")
    return {"min_ms": float(m.group(1)), "avg_ms": float(m.group(2)), "max_ms": float(m.group(3)),
            "loss_pct": float(loss.group(1)) if loss else -1.0}


class Network:
    def __init__(self, lab: str, runs: int, mib: int) -> None:
        self.inventory = LAB_ROOT / lab / "hosts.yml"
        if not self.inventory.is_file():
            raise SystemExit(f"no lab inventory at {self.inventory}: kvmfleet lab up --name {lab}")
        self.hosts = lab_hosts(self.inventory)
        if len(self.hosts) < 2 or not all(h.netns for h in self.hosts[:2]):
            raise SystemExit(f"lab {lab}: two hosts with kvmfleet_lab_netns needed (kvmfleet lab up --hosts 2)")
        self.runs, self.mib = runs, mib
        self.suffix = secrets.token_hex(2)
        self.svc = BenchService()
        self.tmp = Path(tempfile.mkdtemp(prefix="kvmfleet-netbench-"))
        self.key = self.tmp / "id_ed25519"
        self.servers: dict[str, dict[str, Any]] = {}  # "a"/"b" -> id, host, addresses, ports
        self.created: list[str] = []
        self.extra_ports: list[str] = []
        self.summary: dict[str, Any] = {"lab": lab, "runs": runs, "mib": mib, "virt_type": "qemu (TCG)",
                                        "hosts": [h.name for h in self.hosts[:2]]}

    # -- plumbing --------------------------------------------------------------------------------
    def api(self, method: str, path: str, admin: bool = False, **kw: Any) -> Any:
        r = httpx.request(method, self.svc.url + path, headers=self.svc.headers(self.svc.token(admin)),
                          timeout=60, **kw)
        if r.status_code >= 400:
            raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def ssh_argv(self, who: str, command: str) -> list[str]:
        s = self.servers[who]
        return ["ip", "netns", "exec", s["host"].netns, "ssh", "-i", str(self.key), "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=accept-new",
                "-o", f"UserKnownHostsFile={self.tmp / 'known_hosts'}", "-o", "PasswordAuthentication=no",
                "-o", "IdentitiesOnly=yes", f"root@{s['default_ip']}", command]

    def guest(self, who: str, command: str, timeout: float = 120, check: bool = True) -> str:
        proc = subprocess.run(self.ssh_argv(who, command), capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode != 0:
            raise SystemExit(f"guest {who} {command[:120]!r}: rc {proc.returncode}: {proc.stderr.strip()[-800:]}")
        return proc.stdout

    def netns_argv(self, host: Host, command: str) -> list[str]:
        return ["ip", "netns", "exec", host.netns, "sh", "-c", command]

    # -- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        self.svc.prepare()
        self.svc.cli("host", "import", "--inventory", str(self.inventory))
        self.svc.start()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kvmfleet-bench", "-f", str(self.key)],
                       check=True, capture_output=True, timeout=60)
        self.api("POST", "/compute/v2.1/os-keypairs",
                 json={"keypair": {"name": KEY, "public_key": self.key.with_suffix(".pub").read_text().strip()}})
        self.svc.cli("network", "create", NET, "--project", "bench")
        self.svc.cli("subnet", "create", SUBNET, "--network", NET, "--cidr", CIDR)
        self.svc.cli("security-group", "create", GROUP, "--project", "bench")
        self.svc.cli("security-group", "rule-create", GROUP, "--protocol", "icmp")
        self.svc.cli("security-group", "rule-create", GROUP, "--protocol", "tcp", "--port", str(NC_PORT))
        for who, host in (("a", self.hosts[0]), ("b", self.hosts[1])):
            self.build(who, host)
        for who in self.servers:
            self.wait_ssh(who)

    def build(self, who: str, host: Host) -> None:
        name = f"bench-net-{who}-{self.suffix}"
        others = [h.name for h in self.hosts if h.name != host.name]
        for other in others:
            self.svc.cli("host", "disable", other, "--reason", "bench: build elsewhere")
        try:
            self.created.append(name)
            row = self.svc.cli_json("server", "create", name, "--flavor", "bench.nano", "--image", "tiny",
                                    "--project", "bench", "--nic", "net=default", "--nic", f"net={NET}",
                                    "--key-name", KEY, "--security-group", GROUP, "--wait")[0]
        finally:
            for other in others:
                self.svc.cli("host", "enable", other, check=False)
        if row["host"] != host.name:
            raise SystemExit(f"server {name} on {row['host']}, not {host.name}")
        deadline = time.monotonic() + 240
        while True:
            addresses = self.api("GET", f"/compute/v2.1/servers/{row['id']}")["server"]["addresses"]
            ips = {n: [a["addr"] for a in v] for n, v in addresses.items()}
            if ips.get("default") and ips.get(NET):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"server {name} has no address on default and {NET} after 240s: {ips}")
            time.sleep(2)
        self.servers[who] = {"id": row["id"], "name": name, "host": host, "default_ip": ips["default"][0],
                             "tenant_ip": ips[NET][0]}
        print(f"guest {who}: {name} on {host.name}, default {ips['default'][0]}, {NET} {ips[NET][0]}", flush=True)

    def wait_ssh(self, who: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run(self.ssh_argv(who, "true"), capture_output=True, timeout=30,
                              check=False).returncode == 0:
                return
            time.sleep(2)
        raise SystemExit(f"no ssh into guest {who} within {timeout:.0f}s")

    def tenant_ports(self) -> dict[str, list[str]]:
        """lab host name -> ids of the bench-net ports of the guest there."""
        ports = self.svc.cli_json("port", "list")
        net_id = self.svc.cli_json("network", "show", NET)["id"]
        out: dict[str, list[str]] = {}
        for s in self.servers.values():
            out[s["host"].name] = sorted(p["id"] for p in ports
                                         if p["device_id"] == s["id"] and p["network_id"] == net_id)
        return out

    # -- 1. throughput and latency ---------------------------------------------------------------
    def stream(self, rx_argv: list[str], tx_argv: list[str]) -> float:
        """Seconds the receiver took from the stream's first byte to its end."""
        rx = subprocess.Popen(rx_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            assert rx.stdout is not None
            if rx.stdout.readline().strip() != "listening":
                raise SystemExit(f"receiver did not start: {rx.stderr.read() if rx.stderr else ''}")
            time.sleep(1.0)
            tx = subprocess.run(tx_argv, capture_output=True, text=True, timeout=900, check=False)
            if tx.returncode != 0:
                raise SystemExit(f"sender rc {tx.returncode}: {tx.stderr.strip()[-800:]}")
            out, err = rx.communicate(timeout=120)  # closes the receiver's stdin too (nc read it)
        finally:
            if rx.poll() is None:
                rx.kill()
                rx.wait(timeout=30)
        m = re.search(r"rx (\S+) (\S+)", out)
        if not m:
            raise SystemExit(f"receiver printed no times: {out!r} {err.strip()[-500:]!r}")
        return float(m.group(2)) - float(m.group(1))

    def measure_guests(self) -> dict[str, Any]:
        b_ip = self.servers["b"]["tenant_ip"]
        count = self.mib * 16
        took = self.stream(self.ssh_argv("b", RECEIVER.format(port=NC_PORT, clock=GUEST_CLOCK)),
                           self.ssh_argv("a", f"dd if=/dev/zero bs=64k count={count} 2>/dev/null | "
                                              f"busybox nc {b_ip} {NC_PORT}"))
        ping = parse_ping(self.guest("a", f"busybox ping {PINGS} -q {b_ip}", timeout=120))
        return {"seconds": took, "mib_s": self.mib / took, **ping}

    def measure_hosts(self) -> dict[str, Any]:
        h1, h2 = self.hosts[0], self.hosts[1]
        count = self.mib * 16
        took = self.stream(self.netns_argv(h2, RECEIVER.format(port=NC_PORT, clock=HOST_CLOCK)),
                           self.netns_argv(h1, f"dd if=/dev/zero bs=64k count={count} 2>/dev/null | "
                                               f"busybox nc {h2.address} {NC_PORT}"))
        ping = subprocess.run(self.netns_argv(h1, f"busybox ping {PINGS} -q {h2.address}"), capture_output=True,
                              text=True, timeout=120, check=False)
        return {"seconds": took, "mib_s": self.mib / took, **parse_ping(ping.stdout)}

    def traffic(self, label: str) -> None:
        guest = self.measure_guests()
        host = self.summary.get("traffic_host") or self.measure_hosts()
        self.summary["traffic_host"] = host
        row = {"guest": guest, "ratio_throughput": guest["mib_s"] / host["mib_s"],
               "ratio_rtt_avg": guest["avg_ms"] / host["avg_ms"]}
        self.summary.setdefault("traffic", {})[label] = row
        print(f"{label}: guest {guest['mib_s']:.2f} MiB/s, rtt avg {guest['avg_ms']:.3f} ms; host "
              f"{host['mib_s']:.2f} MiB/s, rtt avg {host['avg_ms']:.3f} ms", flush=True)

    def disable_port_security(self) -> None:
        ports = self.first_ports
        for port_id in ports.values():
            self.api("PUT", f"/network/v2.0/ports/{port_id}", admin=True,
                     json={"port": {"port_security_enabled": False, "security_groups": []}})
        start = time.monotonic()
        self.watch({h: [p] for h, p in ports.items()}, "action='drop'", "absent", lambda: None)
        self.summary["port_security_off_applied_s"] = time.monotonic() - start

    # -- 2. rule change on 10 ports --------------------------------------------------------------
    def attach_extra_ports(self) -> None:
        for who, s in self.servers.items():
            for i in range(EXTRA_PORTS):
                port = self.svc.cli_json("port", "create", "--network", NET, "--security-group", GROUP,
                                         "--name", f"bench-{who}{i}-{self.suffix}", "--project", "bench")
                self.extra_ports.append(port["id"])
                self.svc.cli("server", "interface-attach", s["id"], "--port", port["id"])
        print(f"attached {len(self.extra_ports)} more ports", flush=True)

    def watch(self, ports: dict[str, list[str]], pattern: str, want: str, act: Any,
              timeout: int = 180) -> tuple[float, dict[str, float], Any]:
        """Start a watcher on each host, call `act()`; (the time act returned, port -> first time seen, act's
        result). Raises when a port never gets there."""
        procs = []
        by_name = {h.name: h for h in self.hosts}
        try:
            for host_name, ids in ports.items():
                script = WATCHER.format(pattern=shlex.quote(pattern), want=want, timeout=timeout, ids=" ".join(ids))
                p = subprocess.Popen([*by_name[host_name].ssh, script], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
                procs.append(p)
                assert p.stdout is not None
                if p.stdout.readline().strip() != "watching":
                    raise SystemExit(f"watcher on {host_name} did not start: {p.stderr.read() if p.stderr else ''}")
            result = act()
            t0 = time.time()
            seen: dict[str, float] = {}
            for p in procs:
                out, err = p.communicate(timeout=timeout + 60)
                if p.returncode != 0:
                    raise SystemExit(f"filters not {want} {pattern!r}: {out.strip()[-300:]} {err.strip()[-300:]}")
                for line in out.splitlines():
                    parts = line.split()
                    if len(parts) == 3 and parts[0] == "seen":
                        seen[parts[1]] = float(parts[2])
            return t0, seen, result
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=30)

    def converge_directly(self) -> float:
        code = ("import time; from kvmfleet.store import get_store; from kvmfleet.network.reconcile import converge;"
                "t = time.monotonic(); converge(get_store()); print(time.monotonic() - t)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.svc.env,
                              timeout=600, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"converge failed: {proc.stderr.strip()[-1500:]}")
        return float(proc.stdout.strip().splitlines()[-1])

    def rule_step(self, mode: str, argv: tuple[str, ...], made: dict[str, str] | None
                  ) -> tuple[float, float, float | None]:
        """The CLI call (its time, when it returned), then in mode direct the converge (its own time)."""
        start = time.monotonic()
        if made is not None:
            made["id"] = self.svc.cli_json(*argv)["id"]
        else:
            self.svc.cli(*argv)
        cli_s, returned = time.monotonic() - start, time.time()
        return cli_s, returned, (self.converge_directly() if mode == "direct" else None)

    def rule_runs(self, mode: str) -> None:
        ports = self.tenant_ports()
        n = sum(len(v) for v in ports.values())
        rows: list[dict[str, float]] = []
        for i in range(self.runs):
            dport = RULE_PORT_BASE + i + (100 if mode == "direct" else 0)
            row: dict[str, float] = {}
            made: dict[str, str] = {}
            add = ("security-group", "rule-create", GROUP, "--protocol", "tcp", "--port", str(dport))
            for what, want in (("add", "present"), ("delete", "absent")):
                argv = add if what == "add" else ("security-group", "rule-delete", made["id"])
                _, seen, (cli_s, returned, conv_s) = self.watch(
                    ports, f"dstportstart='{dport}'", want,
                    lambda argv=argv, keep=made if what == "add" else None: self.rule_step(mode, argv, keep))
                # from the moment the CLI returned (the rule committed); serve may apply it even before
                times = [max(0.0, at - returned) for at in seen.values()]
                row[f"{what}_all_s"] = max(times)
                row[f"{what}_first_s"] = min(times)
                row[f"{what}_cli_s"] = cli_s
                if conv_s is not None:
                    row[f"{what}_converge_s"] = conv_s
            rows.append(row)
            print(f"rule change ({mode}) {i + 1}/{self.runs}: add on all {n} ports after {row['add_all_s']:.2f}s "
                  f"(first {row['add_first_s']:.2f}s), delete after {row['delete_all_s']:.2f}s", flush=True)
        self.summary.setdefault("rule_change", {})[mode] = {
            "ports": n, "runs": rows, **{k: stats([r[k] for r in rows]) for k in rows[0]}}

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.setup()
            self.first_ports = {h: ids[0] for h, ids in self.tenant_ports().items()}
            self.traffic("port_security_on")
            self.attach_extra_ports()
            self.rule_runs("serve")
            self.svc.stop()
            self.rule_runs("direct")
            self.svc.start()
            self.disable_port_security()
            self.traffic("port_security_off")
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        try:
            for name in self.created:
                self.svc.cli("server", "delete", name, check=False)
            for port_id in self.extra_ports:
                self.svc.cli("port", "delete", port_id, check=False)
            self.svc.cli("security-group", "delete", GROUP, check=False)
            self.svc.cli("network", "delete", NET, check=False)
            for h in self.hosts:
                self.svc.cli("host", "enable", h.name, check=False)
        finally:
            self.svc.stop()
            shutil.rmtree(self.svc.state, ignore_errors=True)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self) -> None:
        h = self.summary["traffic_host"]
        print(f"\n{self.mib} MiB over busybox nc (bs=64k) and `ping {PINGS}`, {self.hosts[0].name} -> "
              f"{self.hosts[1].name}:")
        print(f"  hosts over the lab bridge:             {h['mib_s']:8.2f} MiB/s ({h['seconds']:.2f}s), rtt "
              f"min/avg/max {h['min_ms']:.3f}/{h['avg_ms']:.3f}/{h['max_ms']:.3f} ms")
        for label, text in (("port_security_on", "guests over VXLAN, nwfilter on:      "),
                            ("port_security_off", "guests over VXLAN, port security off:")):
            t = self.summary["traffic"].get(label)
            if not t:
                continue
            g = t["guest"]
            print(f"  {text} {g['mib_s']:8.2f} MiB/s ({g['seconds']:.2f}s), rtt min/avg/max "
                  f"{g['min_ms']:.3f}/{g['avg_ms']:.3f}/{g['max_ms']:.3f} ms (loss {g['loss_pct']:.0f}%); "
                  f"ratio guest/host: throughput {t['ratio_throughput']:.3f}x, rtt {t['ratio_rtt_avg']:.1f}x")
        print("  (the guests run under TCG emulation, virt_type qemu: their figures are mostly the cost of emulating "
              "the guest's CPU; on/off separates the filter's share)")
        for mode, text in (("serve", "with `kvmfleet serve` (converge every 2 s)"),
                           ("direct", "converge(store) called right after the CLI")):
            r = self.summary["rule_change"].get(mode)
            if not r:
                continue
            print(f"security group rule on {r['ports']} ports, {text}, {self.runs} runs, from `rule-create` returning:")
            print(f"  on every port's nwfilter: {fmt_stats(r['add_all_s'])}; first port: {fmt_stats(r['add_first_s'])}")
            print(f"  rule-delete, gone from every filter: {fmt_stats(r['delete_all_s'])}")
            print(f"  (the CLI call itself: {fmt_stats(r['add_cli_s'])}"
                  + (f"; the converge call: {fmt_stats(r['add_converge_s'])})" if mode == "direct" else ")"))
        if "port_security_off_applied_s" in self.summary:
            print(f"port security off on 2 ports, filters accept-all after "
                  f"{self.summary['port_security_off_applied_s']:.2f}s (serve's converge)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default=os.environ.get("KVMFLEET_LAB", "dev"))
    ap.add_argument("--runs", type=int, default=3, help="rule add/delete pairs timed per mode (default 3)")
    ap.add_argument("--mib", type=int, default=32, help="MiB streamed, guests and hosts (default 32)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
    args = ap.parse_args()
    if not 1 <= args.mib <= 512:
        raise SystemExit("--mib: 1..512")
    if not 1 <= args.runs <= 10:
        raise SystemExit("--runs: 1..10")
    bench = Network(args.lab, args.runs, args.mib)
    bench.run()
    bench.report()
    if args.json:
        print(json.dumps(bench.summary, indent=2, default=str))


if __name__ == "__main__":
    main()
