#!/usr/bin/env python3
"""API latency under concurrent clients (figures, never pass/fail).

For each store size N (default 1,000 and 10,000 servers), a `kvmfleet serve` of its own on a fresh store
(SQLite unless --database-url) into which N ACTIVE servers of the project `bench` are inserted directly
(rows as a build leaves them: flavor, image, host, MAC, launched_at), spread over three fake hosts:

1. `GET /compute/v2.1/servers/detail?limit=1000` at microversion 2.79 (a page of 1,000 servers, as the
   default page size gives), from --clients concurrent clients (closed loop: each sends its next request
   when the previous answer is read), every request with the member's token (so token validation is
   included), --requests in all. Prints p50/p90/p99/max and requests/s. Target: p99 <= 100 ms.
2. (on the first size only) `POST /compute/v2.1/servers` (networks "none"), --posts in all, from the same
   number of clients: latency to the 202 (the instance rows, action and task committed). Target: p99 <= 50 ms.
   The fake hosts do not exist (TEST-NET addresses), so the service's workers fail those builds in the
   background while the benchmark runs, as they would against unreachable hosts.

The same page asked again while the store is unchanged is served from the service's rendered-page cache
(kvmfleet.api.page_cache); `--list-cache-pages 0` turns it off, so every page is rendered afresh.

Usage: .venv/bin/python bench/api_latency.py [--servers 1000 10000] [--clients 50] [--requests 300]
                                              [--posts 300] [--database-url URL] [--list-cache-pages N] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import PROJECT, BenchService, percentiles  # the bench dir is not a package

FAKE_HOSTS = [("bench-h1", "192.0.2.11"), ("bench-h2", "192.0.2.12"), ("bench-h3", "192.0.2.13")]


def insert_rows(svc: BenchService, count: int) -> None:
    """In a child process on the service's store (its settings are read from the environment once)."""
    subprocess.run([sys.executable, __file__, "--insert-rows", str(count)], env=svc.env, check=True)


def _insert_rows(count: int) -> None:
    """The fake hosts (up, huge, heartbeat in the future so they stay fresh) and `count` ACTIVE servers."""
    from kvmfleet.store import get_store
    from kvmfleet.store.models import Flavor, Host, Image, Instance, Project, utcnow
    from kvmfleet.store.states import HostState, PowerState, VmState
    from sqlalchemy import insert, select

    store = get_store()
    now = utcnow()
    with store.transaction() as s:
        project = s.scalars(select(Project).where(Project.name == PROJECT)).one()
        flavor = s.scalars(select(Flavor).where(Flavor.name == "bench.nano")).one()
        image = s.scalars(select(Image).where(Image.name == "tiny")).one()
        for name, address in FAKE_HOSTS:
            s.add(Host(name=name, address=address, state=HostState.UP, enabled=True, vcpus=100000,
                       memory_mb=100000000, local_gb=10000000, arch="x86_64", virt_types=["qemu"],
                       hypervisor_type="QEMU", hypervisor_version="7.2.0",
                       last_heartbeat_at=now + dt.timedelta(days=30)))
        project_id, image_id = project.id, image.id
        flavor_fields = {"flavor_id": flavor.id, "flavor_name": flavor.name, "vcpus": flavor.vcpus,
                         "memory_mb": flavor.memory_mb, "root_gb": flavor.root_gb, "ephemeral_gb": 0, "swap": 0,
                         "flavor_extra_specs": {}}
    rows: list[dict[str, Any]] = []
    for i in range(count):
        host = FAKE_HOSTS[i % len(FAKE_HOSTS)][0]
        rows.append({
            "uuid": str(uuid.uuid4()), "name": f"bench-{i:05d}", "project_id": project_id, "user_id": None,
            "image_id": image_id, "host": host, "node": host, "availability_zone": "nova",
            "vm_state": VmState.ACTIVE, "task_state": None, "power_state": PowerState.RUNNING,
            "config": {"hostname": f"bench-{i:05d}", "networks": ["default"],
                       "macs": [f"52:54:00:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"]},
            "metadata_": {}, "reservation_id": f"r-{i:08x}", "launch_index": 0,
            "launched_at": now, "created_at": now - dt.timedelta(seconds=count - i), **flavor_fields})
    for start in range(0, count, 2000):
        with store.transaction() as s:
            s.execute(insert(Instance), rows[start:start + 2000])
    store.engine.dispose()


async def closed_loop(svc: BenchService, token: str, clients: int, total: int,
                      request: Any) -> tuple[list[float], dict[int, int], float]:
    """`clients` concurrent loops sharing `total` requests; per-request latency and status counts."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    remaining = total
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=svc.url, headers=svc.headers(token), timeout=300, limits=limits) as http:
        async def loop() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                n = total - remaining
                t0 = time.perf_counter()
                r = await request(http, n)
                await r.aread()
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        took = time.perf_counter() - start
    return latencies, statuses, took


def report(label: str, latencies: list[float], statuses: dict[int, int], took: float) -> None:
    p = percentiles(latencies)
    print(f"{label}: p50 {p['p50']:.1f} ms  p90 {p['p90']:.1f} ms  p99 {p['p99']:.1f} ms  max {p['max']:.1f} ms  "
          f"({p['n']} requests in {took:.1f} s, {p['n'] / took:.1f}/s; status {dict(sorted(statuses.items()))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (an empty database) instead of SQLite")
    parser.add_argument("--keep", action="store_true", help="keep the state dirs")
    parser.add_argument("--list-cache-pages", type=int, default=None,
                        help="the service's api.list_cache_pages (0: every page rendered afresh)")
    parser.add_argument("--insert-rows", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.insert_rows is not None:
        _insert_rows(args.insert_rows)
        return
    cache = "default" if args.list_cache_pages is None else args.list_cache_pages
    print(f"{os.cpu_count()} CPUs; {args.clients} concurrent clients; microversion 2.79; list cache pages {cache}")

    for index, count in enumerate(args.servers):
        config = "" if args.list_cache_pages is None else f"api:\n  list_cache_pages: {args.list_cache_pages}\n"
        svc = BenchService(config=config, database_url=args.database_url)
        try:
            svc.prepare()
            t0 = time.monotonic()
            insert_rows(svc, count)
            print(f"\n{count} servers inserted in {time.monotonic() - t0:.1f} s (state {svc.state})")
            svc.start()
            token = svc.token()
            first = httpx.get(f"{svc.url}/compute/v2.1/servers/detail?limit=1000", headers=svc.headers(token),
                              timeout=300)
            if first.status_code != 200:
                raise SystemExit(f"GET /servers/detail: {first.status_code} {first.text[:500]}")
            page = first.json()["servers"]
            print(f"a page: {len(page)} servers, {len(first.content) / 1e6:.2f} MB of JSON"
                  f"{', with servers_links' if first.json().get('servers_links') else ''}")

            async def get_detail(http: httpx.AsyncClient, n: int) -> httpx.Response:
                return await http.get("/compute/v2.1/servers/detail", params={"limit": 1000})

            lat, st, took = asyncio.run(closed_loop(svc, token, 1, 20, get_detail))
            report(f"GET /servers/detail, page of 1000, store of {count}, 1 client (service time)", lat, st, took)
            lat, st, took = asyncio.run(closed_loop(svc, token, args.clients, args.requests, get_detail))
            report(f"GET /servers/detail, page of 1000, store of {count}, {args.clients} clients", lat, st, took)

            if index == 0 and args.posts:
                flavor = httpx.get(f"{svc.url}/compute/v2.1/flavors", headers=svc.headers(token)).json()["flavors"]
                images = httpx.get(f"{svc.url}/image/v2/images?name=tiny", headers=svc.headers(token)).json()
                flavor_id = next(f["id"] for f in flavor if f["name"] == "bench.nano")
                image_id = images["images"][0]["id"]

                async def post(http: httpx.AsyncClient, n: int, image: str = image_id,
                               flavor: str = flavor_id) -> httpx.Response:
                    return await http.post("/compute/v2.1/servers", json={"server": {
                        "name": f"post-{n}", "imageRef": image, "flavorRef": flavor, "networks": "none"}})

                lat, st, took = asyncio.run(closed_loop(svc, token, 1, 20, post))
                report(f"POST /servers to the 202, store of {count}, 1 client (service time)", lat, st, took)
                lat, st, took = asyncio.run(closed_loop(svc, token, args.clients, args.posts, post))
                report(f"POST /servers to the 202, store of {count}, {args.clients} clients", lat, st, took)
        finally:
            svc.stop()
            if not args.keep:
                shutil.rmtree(svc.state, ignore_errors=True)


if __name__ == "__main__":
    main()
