#!/usr/bin/env python3
"""A burst of POST /servers through the API to all ACTIVE, against raw `ssh host virsh` (figures, never
pass/fail).

A `kvmfleet serve` of its own (temp state dir, SQLite) with the lab's hosts imported, the tiny image and a
1 vCPU / 128 MiB / 1 GB flavor. After a warm-up (one server per host, so every host caches the image):

1. --burst (30) concurrent `POST /compute/v2.1/servers` (one server each, on the default network), from the
   first request to every server ACTIVE as `GET /servers/detail` reports it (polled every 0.5 s); then
   where each landed and whether its domain runs there; then all deleted.
2. The same domains (as many per host as the API put there; same vCPU, memory, overlay on the cached base
   image, NIC on `default`, serial log) defined and started with raw `ssh host virsh`: one ssh per host,
   the hosts in parallel, each host's domains created in parallel (`&` ... `wait`), timed from the start to
   the last `virsh start` returning.
Prints both wall times and the ratio API/raw (target <= 2), for each of --runs rounds.

Usage: KVMFLEET_LAB=NAME .venv/bin/python bench/api_burst.py [--lab NAME] [--burst 30] [--runs 1] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import BenchService  # the bench dir is not a package
from e2e_create import baseline_xml, ssh_cmd

CONFIG = "allocation_ratios: {cpu: 16.0, ram: 1.0, disk: 1.0}\n"  # lab hosts have few cores: let vCPUs overcommit


def servers(http: httpx.Client) -> list[dict[str, Any]]:
    r = http.get("/compute/v2.1/servers/detail", params={"all_tenants": "1", "limit": 1000})
    r.raise_for_status()
    return r.json()["servers"]


def wait_all(http: httpx.Client, ids: set[str], timeout: float = 1800) -> tuple[float, list[dict[str, Any]]]:
    """Poll until every server in `ids` is ACTIVE or ERROR; the time that took and the servers."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [s for s in servers(http) if s["id"] in ids]
        if len(rows) == len(ids) and all(s["status"] in ("ACTIVE", "ERROR") for s in rows):
            return time.monotonic(), rows
        if time.monotonic() > deadline:
            raise SystemExit(f"not all ACTIVE after {timeout}s: {[(s['name'], s['status']) for s in rows]}")
        time.sleep(0.5)


def delete_all(http: httpx.Client, timeout: float = 1800) -> None:
    for s in servers(http):
        http.delete(f"/compute/v2.1/servers/{s['id']}")
    deadline = time.monotonic() + timeout
    while servers(http):
        if time.monotonic() > deadline:
            raise SystemExit("servers still there after delete")
        time.sleep(1)


def post_burst(svc: BenchService, token: str, body: dict[str, Any], count: int) -> tuple[float, set[str], list[str]]:
    """`count` POSTs released together; the start time, the accepted ids, the refusals."""
    barrier = threading.Barrier(count)
    ids: set[str] = set()
    refused: list[str] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=svc.url, headers=svc.headers(token), timeout=300) as http:
            payload = {"server": {**body["server"], "name": f"burst-{i}"}}
            barrier.wait()
            r = http.post("/compute/v2.1/servers", json=payload)
            if r.status_code == 202:
                ids.add(r.json()["server"]["id"])
            else:
                refused.append(f"{r.status_code} {r.text[:200]}")

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return start, ids, refused


def raw_burst(lab: str, per_host: dict[str, int], base: str) -> float:
    """The same number of domains per host, with ssh + virsh; wall time to the last start."""
    names: dict[str, list[str]] = {h: [f"raw-{uuid.uuid4().hex[:8]}" for _ in range(n)] for h, n in per_host.items()}

    def script(host_names: list[str]) -> str:
        lines = ["set -e"]
        for name in host_names:
            workdir = f"/var/lib/libvirt/kvmfleet/instances/{name}"
            xml = baseline_xml(name, f"{workdir}/disk", f"{workdir}/console.log", "qemu")
            lines.append(f"( mkdir -p {workdir} && qemu-img create -q -f qcow2 -F qcow2 -b {base} {workdir}/disk && "
                         f"cat > {workdir}/domain.xml <<'XMLEOF'\n{xml}\nXMLEOF\n"
                         f"virsh -q define {workdir}/domain.xml >/dev/null && virsh -q start {name} >/dev/null ) &")
        lines.append("wait")
        return "\n".join(lines) + "\n"

    def run(host: str) -> None:
        subprocess.run(ssh_cmd(lab, host) + ["bash -s"], input=script(names[host]), text=True, check=True,
                       capture_output=True, timeout=1800)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(run, names))
    took = time.monotonic() - start
    for host, host_names in names.items():
        cleanup = "; ".join(f"virsh -q destroy {n}; virsh -q undefine {n}; rm -rf /var/lib/libvirt/kvmfleet/instances/{n}"
                            for n in host_names)
        subprocess.run(ssh_cmd(lab, host) + [cleanup], capture_output=True, text=True, check=False, timeout=600)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default=os.environ.get("KVMFLEET_LAB"))
    parser.add_argument("--burst", type=int, default=30)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    args = parser.parse_args()
    if not args.lab:
        raise SystemExit("name the lab: --lab NAME or KVMFLEET_LAB")
    inventory = Path("/var/lib/kvmfleet-lab") / args.lab / "hosts.yml"
    if not inventory.is_file():
        raise SystemExit(f"need {inventory} (kvmfleet lab up --name {args.lab} --hosts 3)")

    svc = BenchService(config=CONFIG)
    try:
        svc.prepare()
        svc.cli("host", "import", "--inventory", str(inventory))
        image = svc.cli_json("image", "show", "tiny")
        base = f"/var/lib/libvirt/kvmfleet/images/sha256-{image['sha256'][:40]}.qcow2"
        svc.start()
        token = svc.token()
        admin = httpx.Client(base_url=svc.url, headers=svc.headers(svc.token(admin=True)), timeout=300)
        flavor_id = next(f["id"] for f in admin.get("/compute/v2.1/flavors").json()["flavors"]
                         if f["name"] == "bench.nano")
        network_id = admin.get("/network/v2.0/networks", params={"name": "default"}).json()["networks"][0]["id"]
        body = {"server": {"imageRef": image["id"], "flavorRef": flavor_id, "networks": [{"uuid": network_id}]}}
        hosts = [h["name"] for h in svc.cli_json("host", "list")]
        print(f"lab {args.lab}: hosts {', '.join(hosts)}; state {svc.state}")

        _, ids, refused = post_burst(svc, token, body, len(hosts))  # warm-up: the image into every cache
        if refused:
            raise SystemExit(f"warm-up refused: {refused}")
        wait_all(admin, ids)
        delete_all(admin)

        ratios = []
        for run in range(args.runs):
            start, ids, refused = post_burst(svc, token, body, args.burst)
            done, rows = wait_all(admin, ids)
            api_took = done - start
            per_host: dict[str, int] = {}
            for s in rows:
                if s["status"] == "ACTIVE":
                    per_host[s["OS-EXT-SRV-ATTR:host"]] = per_host.get(s["OS-EXT-SRV-ATTR:host"], 0) + 1
            missing = []
            for host in per_host:
                running = set(subprocess.run(ssh_cmd(args.lab, host) + ["virsh list --name"], capture_output=True,
                                             text=True, check=False).stdout.split())
                missing += [s["name"] for s in rows if s.get("OS-EXT-SRV-ATTR:host") == host
                            and s["status"] == "ACTIVE" and s["OS-EXT-SRV-ATTR:instance_name"] not in running]
            errors = [s["name"] for s in rows if s["status"] == "ERROR"]
            print(f"run {run + 1}: API burst of {args.burst} POST /servers: {len(ids)} accepted, {len(refused)} refused,"
                  f" all ACTIVE/ERROR in {api_took:.1f} s; per host {per_host}; ERROR {errors}; "
                  f"ACTIVE without a running domain {missing}")
            for r in sorted(set(refused)):
                print(f"  refused ({refused.count(r)}x): {r}")
            delete_all(admin)
            raw_took = raw_burst(args.lab, per_host, base)
            ratio = api_took / raw_took
            ratios.append(ratio)
            print(f"run {run + 1}: raw ssh virsh, the same {sum(per_host.values())} domains: {raw_took:.1f} s; "
                  f"ratio API/raw {ratio:.2f}")
        print(f"ratio API/raw, median of {len(ratios)}: {statistics.median(ratios):.2f} (target <= 2)")
    finally:
        svc.stop()
        if not args.keep:
            shutil.rmtree(svc.state, ignore_errors=True)


if __name__ == "__main__":
    main()
