"""Run a scheduler benchmark workload (bench/README.md format) through the real Scheduler.

Every request is placed in list order with ``Scheduler.select_destinations``: the product's
filters, weighers and in-memory consume, with the default (or a given) configuration. The time of
each placement (building the request spec, filtering, weighing, consuming) is measured with
``time.perf_counter``; loading the workload and building the host cache (the ``HostManager`` and
its columnar mirror) are not timed. ``vectorised=False`` runs the scheduler's per-host path, for
comparison; the default is the product's default (vectorised).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from kvmfleet.scheduler.config import SchedulerConfig
from kvmfleet.scheduler.exceptions import InvalidRequest, NoValidHost
from kvmfleet.scheduler.host_state import HostManager
from kvmfleet.scheduler.request_spec import Flavor, ImageMeta, RequestSpec, ServerGroup
from kvmfleet.scheduler.scheduler import Scheduler

SCHEMA_VERSION = 1


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def run_workload(workload: Mapping[str, Any], config: SchedulerConfig | None = None, *,
                 vectorised: bool = True) -> dict[str, Any]:
    """Place every request of ``workload``; return the result document (placements + summary)."""
    if workload.get("schema_version") != SCHEMA_VERSION:
        raise InvalidRequest(f"workload schema_version {workload.get('schema_version')!r} is not supported "
                             f"(expected {SCHEMA_VERSION})")
    scheduler = Scheduler(config, vectorised=vectorised)
    manager = HostManager.from_rows(workload["hosts"])
    groups = {}
    for name, group in (workload.get("groups") or {}).items():
        groups[name] = ServerGroup(name, group["policy"])
    for request in workload["requests"]:
        if request.get("group") and request["group"] not in groups:
            raise InvalidRequest("request {} names server group {}, which the workload does not define".format(request["id"], request["group"]))

    hosts = manager.host_states()
    placements = []
    seconds = []
    cpu_seconds = []
    clock = time.perf_counter
    cpu_clock = time.thread_time
    for r in workload["requests"]:
        cpu_start = cpu_clock()
        start = clock()
        spec = RequestSpec(
            flavor=Flavor(r["flavor"], r["vcpus"], r["memory_mb"], r["disk_gb"]),
            image=ImageMeta(arch=r.get("arch")),
            availability_zone=r.get("az"),
            project=r.get("project"),
            server_group=groups[r["group"]] if r.get("group") else None,
            request_id=r["id"],
        )
        try:
            host = scheduler.select_destinations(spec, hosts, num=1)[0].host.name
        except NoValidHost:
            host = None
        elapsed = clock() - start
        cpu_seconds.append(cpu_clock() - cpu_start)
        seconds.append(elapsed)
        placements.append({"id": r["id"], "host": host, "seconds": elapsed})

    ordered = sorted(seconds)
    n = len(ordered)
    summary = {
        "hosts": len(hosts),
        "requests": n,
        "placed": sum(1 for p in placements if p["host"] is not None),
        "failed": sum(1 for p in placements if p["host"] is None),
        "p50_ms": percentile(ordered, 50) * 1e3,
        "p90_ms": percentile(ordered, 90) * 1e3,
        "p99_ms": percentile(ordered, 99) * 1e3,
        "max_ms": (ordered[-1] * 1e3) if ordered else 0.0,
        "mean_ms": (sum(ordered) / n * 1e3) if n else 0.0,
        "total_s": sum(ordered),
    }
    # CPU time of the placing thread: the same work without the time other processes took the CPU
    # away (the wall-clock figures above include that on a shared machine).
    cpu = sorted(cpu_seconds)
    summary.update({
        "cpu_p50_ms": percentile(cpu, 50) * 1e3,
        "cpu_p90_ms": percentile(cpu, 90) * 1e3,
        "cpu_p99_ms": percentile(cpu, 99) * 1e3,
        "cpu_mean_ms": (sum(cpu) / n * 1e3) if n else 0.0,
    })
    return {
        "placements": placements,
        "summary": summary,
        "scheduler": {
            "filters": [f.name for f in scheduler.filters],
            "weighers": {w.name: w.multiplier for w in scheduler.weighers},
            "max_instances_per_host": scheduler.config.max_instances_per_host,
            "alternates": scheduler.config.alternates,
            "path": "vectorised" if vectorised else "per-host",
        },
        "environment": {"python": platform.python_version(), "implementation": platform.python_implementation(),
                        "machine": platform.machine(), "numpy": np.__version__},
        "workload": dict(workload.get("meta") or {}),
    }
