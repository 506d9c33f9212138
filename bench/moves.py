#!/usr/bin/env python3
"""Moves and failures on the lab (figures and ratios, never pass/fail).

A `kvmfleet serve` of its own (bench/_service.py) with the lab's hosts imported, then:

1. Live migration of an idle, booted tiny guest (1 vCPU, 128 MiB, 1 GB qcow2 overlay on the cached base
   image, the config-drive seed, no NIC) between the same two hosts, each run in the direction opposite
   to the last, after one untimed round trip each (it caches the base image on both hosts):
   - controller: `kvmfleet server migrate S --live --host DEST` (process start to exit); libvirt's downtime
     is the migration row's downtime_ms (`kvmfleet server migrations S`);
   - raw: one ssh to the source running what instance_live_migrate.yml does by hand for a domain defined
     from the controller server's own XML (renamed, new uuid, no metadata): create the empty overlay on the
     destination and copy the seed there, then `virsh migrate` with domain_migrate's flags (--live --p2p
     --persistent --persistent-xml --undefinesource --abort-on-error --copy-storage-inc --migrateuri
     tcp://DEST_ADDRESS, to qemu+ssh://root@DEST/system?no_tty=1), then remove the source's directory;
     downtime from libvirt's job-completed event on the source (`virsh event --event job-completed`).
   Heartbeats are off meanwhile (compute.heartbeat_interval 0), so no host refresh runs beside a move.
2. Cut-off: three servers built on the first host (the others disabled meanwhile); its eth0 is put down in
   its network namespace; time to os-services (2.53) `down` and to every one of its servers showing
   host_status UNKNOWN (GET /servers/{id}, 2.16), polled every 0.25 s; once with the default heartbeats
   (10 s / 30 s, unless --skip-defaults) and once with 3 s / 10 s.
3. Evacuate, during the 3 s / 10 s cut-off: `kvmfleet host evacuate H` of those three servers, total time
   and per server (the evacuation rows' created_at -> updated_at); then the link back and the time until
   the host is up again (held down until the stale copies are removed).
The link is always put back (finally), every server and the raw domain deleted, the service stopped.

    python bench/moves.py --lab NAME [--runs 3] [--skip-defaults] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import BenchService

LAB_ROOT = Path(os.environ.get("KVMFLEET_LAB_ROOT", "/var/lib/kvmfleet-lab"))
INSTANCES_DIR = "/var/lib/libvirt/kvmfleet/instances"
V = "/compute/v2.1"
QUIET = "compute: {heartbeat_interval: 0}\n"
FAST = (3, 10)
DEFAULTS = (10, 30)
POLL = 0.25


def heartbeats(interval: int, down: int) -> str:
    return f"compute: {{heartbeat_interval: {interval}, service_down_time: {down}}}\n"


class Host:
    def __init__(self, name: str, v: dict[str, Any]) -> None:
        self.name = name
        self.address = v["ansible_host"]
        self.netns = v.get("kvmfleet_lab_netns", "")
        self.ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlMaster=no",
                    "-i", v["ansible_ssh_private_key_file"], *shlex.split(v.get("ansible_ssh_common_args", "")),
                    f"{v.get('ansible_user', 'root')}@{self.address}"]

    def run(self, script: str, check: bool = True, stdin: str | None = None) -> str:
        proc = subprocess.run([*self.ssh, script], input=stdin, capture_output=True, text=True, timeout=900,
                              check=False)
        if check and proc.returncode != 0:
            raise SystemExit(f"ssh {self.name} {script[:200]!r}: rc {proc.returncode}: {proc.stderr.strip()[-1500:]}")
        return proc.stdout

    def link(self, up: bool) -> None:
        if not self.netns:
            raise SystemExit(f"{self.name}: no kvmfleet_lab_netns in the inventory")
        subprocess.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "eth0", "up" if up else "down"],
                       check=True, capture_output=True, timeout=30)


def lab_hosts(inventory: Path) -> list[Host]:
    group = yaml.safe_load(inventory.read_text())["all"]["children"]["kvm_hosts"]
    gv = group.get("vars") or {}
    return [Host(name, {**gv, **(hv or {})}) for name, hv in group["hosts"].items()]


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def utc(value: str) -> dt.datetime:
    """os-services' updated_at (Nova's naive UTC time) as an aware datetime."""
    t = dt.datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def stamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


class Moves:
    def __init__(self, lab: str, runs: int, skip_defaults: bool) -> None:
        self.inventory = LAB_ROOT / lab / "hosts.yml"
        if not self.inventory.is_file():
            raise SystemExit(f"no lab inventory at {self.inventory}: kvmfleet lab up --name {lab}")
        self.hosts = lab_hosts(self.inventory)
        if len(self.hosts) < 3:
            raise SystemExit("the benchmark needs a lab of 3 hosts")
        self.by_name = {h.name: h for h in self.hosts}
        self.runs, self.skip_defaults = runs, skip_defaults
        self.svc = BenchService(QUIET)
        self.suffix = secrets.token_hex(2)
        self.servers: list[str] = []
        self.raw: tuple[str, str] | None = None  # (domain, host it is on)
        self.summary: dict[str, Any] = {"lab": lab, "runs": runs}

    # -- service ---------------------------------------------------------------------------------
    def restart(self, config: str) -> None:
        self.svc.stop()
        (self.svc.state / "kvmfleet.yml").write_text(config)
        self.svc.start()

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.svc.url, timeout=30, headers={"X-Auth-Token": self.svc.token(admin=True)})

    def services(self, http: httpx.Client) -> dict[str, dict[str, Any]]:
        r = http.get(f"{V}/os-services", headers={"OpenStack-API-Version": "compute 2.53"})
        r.raise_for_status()
        return {s["host"]: s for s in r.json()["services"]}

    def states(self, http: httpx.Client) -> dict[str, str]:
        return {h: s["state"] for h, s in self.services(http).items()}

    def host_status(self, http: httpx.Client, server_id: str) -> str:
        r = http.get(f"{V}/servers/{server_id}", headers={"OpenStack-API-Version": "compute 2.16"})
        r.raise_for_status()
        return r.json()["server"].get("host_status")

    def wait(self, what: str, predicate: Any, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            time.sleep(POLL)
        raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")

    def create(self, name: str, *extra: str) -> dict[str, Any]:
        self.servers.append(name)
        return self.svc.cli_json("server", "create", name, "--flavor", "bench.nano", "--image", "tiny", "--wait",
                                 *extra)[0]

    def wait_ready(self, host: Host, domain: str, timeout: int = 240) -> None:
        host.run(f"for i in $(seq {timeout * 2}); do grep -q 'kvmfleet-guest: ready' "
                 f"{INSTANCES_DIR}/{domain}/console.log 2>/dev/null && exit 0; sleep 0.5; done; exit 1")

    # -- 1. live migration -----------------------------------------------------------------------
    def define_raw(self, host: Host, template_domain: str) -> str:
        """A domain like the controller's server (its inactive XML, renamed), overlay and seed of its own."""
        name = f"bench-raw-{self.suffix}"
        root = ET.fromstring(host.run(f"virsh dumpxml --inactive {template_domain}"))
        for tag in ("metadata", "uuid"):
            for el in root.findall(tag):
                root.remove(el)
        root.find("name").text = name
        ET.SubElement(root, "uuid").text = str(uuid.uuid4())
        xml = ET.tostring(root, encoding="unicode").replace(f"{INSTANCES_DIR}/{template_domain}/",
                                                            f"{INSTANCES_DIR}/{name}/")
        base = self.base_image(host, template_domain)
        src, dst = f"{INSTANCES_DIR}/{template_domain}", f"{INSTANCES_DIR}/{name}"
        host.run(f"set -e; mkdir -p {dst}; qemu-img create -q -f qcow2 -F qcow2 -b {base} {dst}/disk 1G; "
                 f"cp {src}/disk.config {dst}/disk.config; cat > {dst}/domain.xml; "
                 f"virsh -q define {dst}/domain.xml >/dev/null; rm {dst}/domain.xml; virsh -q start {name} >/dev/null",
                 stdin=xml)
        self.raw = (name, host.name)
        return name

    def base_image(self, host: Host, domain: str) -> str:
        info = host.run(f"qemu-img info --output=json -U {INSTANCES_DIR}/{domain}/disk")
        return json.loads(info)["backing-filename"]

    def controller_move(self, server: str, dest: Host) -> dict[str, float]:
        start = time.monotonic()
        self.svc.cli("server", "migrate", server, "--live", "--host", dest.name, "-f", "json")
        took = time.monotonic() - start
        row = self.svc.cli_json("server", "migrations", server)[0]
        if row["status"] != "completed" or row["dest"] != dest.name:
            raise SystemExit(f"controller migration of {server}: {row}")
        job = (stamp(row["updated_at"]) - stamp(row["created_at"])).total_seconds()
        return {"total_s": took, "row_s": job, "downtime_ms": row["downtime_ms"]}

    def raw_move(self, name: str, source: Host, dest: Host, base: str) -> dict[str, float]:
        d = f"{INSTANCES_DIR}/{name}"
        hop = "ssh -o BatchMode=yes -o ConnectTimeout=10"
        script = (
            f"set -e; {hop} root@{dest.name} 'mkdir -p {d} && qemu-img create -q -f qcow2 -F qcow2 -b {base} "
            f"{d}/disk 1G'; scp -q -o BatchMode=yes {d}/disk.config root@{dest.name}:{d}/disk.config; "
            f"virsh dumpxml --inactive --security-info {name} > /tmp/{name}.xml; "
            # libvirt's figures of the job: its job-completed event on the source
            f"virsh event --domain {name} --event job-completed --timeout 900 > /tmp/{name}.event & ev=$!; "
            f"sleep 0.2; t0=$(date +%s.%N); "
            f"virsh migrate --live --p2p --persistent --persistent-xml /tmp/{name}.xml --undefinesource "
            f"--abort-on-error --copy-storage-inc --migrateuri tcp://{dest.address} {name} "
            f"'qemu+ssh://root@{dest.name}/system?no_tty=1'; t1=$(date +%s.%N); rm -rf {d} /tmp/{name}.xml; "
            f"wait $ev || true; cat /tmp/{name}.event; rm -f /tmp/{name}.event; "
            f"echo \"virsh_migrate $t0 $t1\"")
        start = time.monotonic()
        out = source.run(script)
        took = time.monotonic() - start
        self.raw = (name, dest.name)
        t0, t1 = (float(x) for x in re.search(r"virsh_migrate (\S+) (\S+)", out).groups())
        downtime = re.search(r"\bdowntime:\s+(\d+)", out)  # the event's field, in ms
        return {"total_s": took, "virsh_migrate_s": t1 - t0, "downtime_ms": int(downtime.group(1)) if downtime else None}

    def migration(self) -> None:
        a, b = self.hosts[0], self.hosts[1]
        for other in self.hosts[1:]:
            self.svc.cli("host", "disable", other.name, "--reason", "bench: build on the first host")
        try:
            server = f"bench-lm-{self.suffix}"
            row = self.create(server, "--network", "")
        finally:
            for other in self.hosts[1:]:
                self.svc.cli("host", "enable", other.name)
        domain = row["domain"]
        base = self.base_image(a, domain)
        raw = self.define_raw(a, domain)
        self.wait_ready(a, domain)
        self.wait_ready(a, raw)
        # Untimed round trip each: the base image cached on both hosts, ssh host keys seen.
        self.controller_move(server, b)
        self.controller_move(server, a)
        if b.run(f"test -f {base} && echo yes", check=False).strip() != "yes":
            raise SystemExit(f"{b.name} has no {base} after the warm-up")
        self.raw_move(raw, a, b, base)
        self.raw_move(raw, b, a, base)
        results: dict[str, list[dict[str, float]]] = {"controller": [], "raw": []}
        here, there = a, b
        for i in range(self.runs):
            results["controller"].append(self.controller_move(server, there))
            results["raw"].append(self.raw_move(raw, here, there, base))
            c, r = results["controller"][-1], results["raw"][-1]
            print(f"live migration {i + 1}/{self.runs} {here.name}->{there.name}: controller {c['total_s']:.2f}s "
                  f"(downtime {ms(c['downtime_ms'])}), raw {r['total_s']:.2f}s (virsh migrate {r['virsh_migrate_s']:.2f}s, "
                  f"downtime {ms(r['downtime_ms'])})", flush=True)
            here, there = there, here
        med = {side: {k: median([x[k] for x in rows]) for k in rows[0]} for side, rows in results.items()}
        self.summary["live_migration"] = {"hosts": [a.name, b.name], "runs": results, "median": med,
                                          "ratio_total": med["controller"]["total_s"] / med["raw"]["total_s"]}
        # Neither guest stays for the heartbeats of what follows.
        self.svc.cli("server", "delete", server)
        self.servers.remove(server)
        self.remove_raw()

    # -- 2. cut-off (and 3. evacuate) --------------------------------------------------------------
    def build_three(self) -> list[dict[str, Any]]:
        target = self.hosts[0]
        for other in self.hosts[1:]:
            self.svc.cli("host", "disable", other.name, "--reason", "bench: build on the first host")
        try:
            rows = [self.create(f"bench-ev{i}-{self.suffix}") for i in range(3)]
        finally:
            for other in self.hosts[1:]:
                self.svc.cli("host", "enable", other.name)
        if {r["host"] for r in rows} != {target.name}:
            raise SystemExit(f"servers not on {target.name}: {[(r['name'], r['host']) for r in rows]}")
        return rows

    def cut_off(self, interval: int, down_time: int, servers: list[dict[str, Any]], evacuate: bool) -> dict[str, Any]:
        target = self.hosts[0]
        self.restart(heartbeats(interval, down_time))
        with self.admin() as http:
            self.wait("every host up", lambda: set(self.states(http).values()) == {"up"}, 3 * down_time + 60)
            # Cut right after a fresh answer of this service's heartbeats (the last one before the restart may be
            # older): the time to down is then about service_down_time, the longest it can be.
            seen = self.services(http)[target.name]["updated_at"]
            self.wait(f"a fresh heartbeat of {target.name}",
                      lambda: self.services(http)[target.name]["updated_at"] != seen, 3 * interval + 120)
            out: dict[str, Any] = {"heartbeat_interval": interval, "service_down_time": down_time}
            flagged: dict[str, float] = {}
            target.link(False)
            cut = time.monotonic()
            last_answer = utc(self.services(http)[target.name]["updated_at"])
            out["answer_before_cut_s"] = (dt.datetime.now(dt.UTC) - last_answer).total_seconds()
            try:
                down_at = None
                while time.monotonic() - cut < 3 * down_time + 120:
                    if down_at is None and self.states(http)[target.name] == "down":
                        down_at = time.monotonic() - cut
                        out["answer_to_down_s"] = (dt.datetime.now(dt.UTC) - last_answer).total_seconds()
                    for s in servers:
                        if s["id"] not in flagged and self.host_status(http, s["id"]) == "UNKNOWN":
                            flagged[s["id"]] = time.monotonic() - cut
                    if down_at is not None and len(flagged) == len(servers):
                        break
                    time.sleep(POLL)
                else:
                    raise SystemExit(f"{target.name} not down with its servers flagged: down {down_at}, {flagged}")
                out.update(to_down_s=down_at, to_flagged_s=max(flagged.values()),
                           others_up=all(v == "up" for h, v in self.states(http).items() if h != target.name))
                print(f"cut-off {target.name} (heartbeats {interval}s/{down_time}s): down after {down_at:.1f}s "
                      f"({out['answer_to_down_s']:.1f}s after its last answer, {out['answer_before_cut_s']:.1f}s "
                      f"before the cut), its {len(servers)} servers UNKNOWN after {out['to_flagged_s']:.1f}s", flush=True)
                if evacuate:
                    out["evacuate"] = self.evacuate(target, servers)
            finally:
                target.link(True)
            back = time.monotonic()
            self.wait(f"{target.name} up again", lambda: self.states(http)[target.name] == "up", 6 * down_time + 180)
            out["up_after_link_s"] = time.monotonic() - back
            print(f"  {target.name} up again {out['up_after_link_s']:.1f}s after the link returned", flush=True)
        return out

    def evacuate(self, target: Host, servers: list[dict[str, Any]]) -> dict[str, Any]:
        start = time.monotonic()
        proc = self.svc.cli("host", "evacuate", target.name, "-f", "json", check=False)
        took = time.monotonic() - start
        out: dict[str, Any] = {"total_s": took, "rc": proc.returncode}
        if proc.returncode != 0:
            out["error"] = proc.stderr.strip()[-2000:]
            print(f"  host evacuate {target.name} FAILED after {took:.1f}s (rc {proc.returncode}): {out['error']}",
                  flush=True)
            return out
        report = json.loads(proc.stdout)
        per = {}
        for s in servers:
            rows = [m for m in self.svc.cli_json("server", "migrations", s["name"]) if m["type"] == "evacuation"]
            if rows:
                per[s["name"]] = {"status": rows[0]["status"], "dest": rows[0]["dest"],
                                  "row_s": (stamp(rows[0]["updated_at"]) - stamp(rows[0]["created_at"])).total_seconds()}
        statuses = {s["name"]: self.svc.cli_json("server", "show", s["name"])["status"] for s in servers}
        out.update(report=report, servers=per, status=statuses)
        print(f"  host evacuate {target.name}: {len(report)} servers in {took:.1f}s; "
              + ", ".join(f"{n} -> {p['dest']} {p['row_s']:.1f}s ({statuses[n]})" for n, p in per.items()), flush=True)
        return out

    # -- run -------------------------------------------------------------------------------------
    def run(self) -> None:
        self.svc.prepare()
        self.svc.start()
        try:
            self.svc.cli("host", "import", "--inventory", str(self.inventory))
            self.migration()
            servers = self.build_three()
            cuts = []
            if not self.skip_defaults:
                cuts.append(self.cut_off(*DEFAULTS, servers, evacuate=False))
            cuts.append(self.cut_off(*FAST, servers, evacuate=True))
            self.summary["cut_off"] = cuts
        finally:
            for h in self.hosts:
                h.link(True)
            self.cleanup()
            self.svc.stop()

    def cleanup(self) -> None:
        for name in self.servers:
            self.svc.cli("server", "delete", name, check=False)
        self.remove_raw()

    def remove_raw(self) -> None:
        if self.raw is not None:
            name, where = self.raw
            self.by_name[where].run(f"virsh -q destroy {name} >/dev/null 2>&1; virsh -q undefine {name} >/dev/null 2>&1; "
                                    f"rm -rf {INSTANCES_DIR}/{name}", check=False)
            self.raw = None

    def report(self) -> None:
        lm = self.summary["live_migration"]
        med = lm["median"]
        print(f"\nlive migration {lm['hosts'][0]} <-> {lm['hosts'][1]}, idle tiny guest, median of {self.runs}:")
        print(f"  controller `server migrate --live`: {med['controller']['total_s']:.2f}s (migration row "
              f"{med['controller']['row_s']:.2f}s), libvirt downtime {ms(med['controller']['downtime_ms'])}")
        print(f"  raw ssh + virsh migrate:           {med['raw']['total_s']:.2f}s (virsh migrate "
              f"{med['raw']['virsh_migrate_s']:.2f}s), libvirt downtime {ms(med['raw']['downtime_ms'])}")
        print(f"  ratio controller/raw (total): {lm['ratio_total']:.2f}x")
        for c in self.summary["cut_off"]:
            print(f"cut-off, heartbeats {c['heartbeat_interval']}s / service_down_time {c['service_down_time']}s: "
                  f"down {c['to_down_s']:.1f}s ({c['answer_to_down_s']:.1f}s after the last answer), servers UNKNOWN {c['to_flagged_s']:.1f}s, "
                  f"up {c['up_after_link_s']:.1f}s after the link returned")
            ev = c.get("evacuate")
            if ev:
                if ev["rc"]:
                    print(f"  evacuate of 3 servers: failed (rc {ev['rc']}) after {ev['total_s']:.1f}s")
                else:
                    print(f"  evacuate of 3 servers: {ev['total_s']:.1f}s total; per server (migration row) "
                          + ", ".join(f"{p['row_s']:.1f}s" for p in ev["servers"].values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab", default=os.environ.get("KVMFLEET_LAB", "dev"))
    ap.add_argument("--runs", type=int, default=3, help="timed live migrations each way (default 3)")
    ap.add_argument("--skip-defaults", action="store_true", help="no cut-off with the default heartbeats (10 s / 30 s)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
    args = ap.parse_args()
    bench = Moves(args.lab, max(1, args.runs), args.skip_defaults)
    bench.run()
    bench.report()
    if args.json:
        print(json.dumps(bench.summary, indent=2, default=str))


if __name__ == "__main__":
    main()
