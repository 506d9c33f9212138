#!/usr/bin/env python3
"""Tiny guest image boot benchmark: seconds from QEMU start to the ready line, under TCG.

    .venv/bin/python bench/tiny_boot.py [--runs N] [--json]

Builds (or takes from the cache) the tiny image, boots it N times with a NoCloud seed on virtio and
QEMU user-mode networking (restrict=on), and reports wall seconds and QEMU CPU seconds to the ready
line, and seconds from system_powerdown to QEMU's exit. Figures, never pass/fail; the CPU figure
moves less than wall time when other work shares the machine. The load average is printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from kvmfleet.images.tiny import build_tiny
from kvmfleet.images.tiny_boot import READY_RE, QemuGuest, make_nocloud_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    image = build_tiny()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        seed = make_nocloud_seed(Path(tmp) / "seed.iso", "bench", "iid-bench", "#!/bin/sh\necho bench\n")
        for _ in range(args.runs):
            load = os.getloadavg()[0]
            with QemuGuest(image.path, seed=seed, network="user") as guest:
                _, wall = guest.wait_for(READY_RE, 300)
                cpu = guest.cpu_seconds()
                guest.qmp("system_powerdown")
                t0 = time.monotonic()
                rc = guest.wait_exit(120)
                stop = time.monotonic() - t0 if rc is not None else None
            runs.append({"ready_wall_s": round(wall, 2), "ready_cpu_s": round(cpu, 2),
                         "powerdown_s": round(stop, 2) if stop is not None else None, "loadavg_1m": load})
    result = {
        "image": image.as_dict(),
        "runs": runs,
        "median_ready_wall_s": round(statistics.median(r["ready_wall_s"] for r in runs), 2),
        "median_ready_cpu_s": round(statistics.median(r["ready_cpu_s"] for r in runs), 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"image {image.path} ({image.size} bytes, cached={image.cached})")
    for i, r in enumerate(runs, 1):
        print(f"run {i}: ready {r['ready_wall_s']:.2f} s wall / {r['ready_cpu_s']:.2f} s CPU, "
              f"powerdown->exit {r['powerdown_s']} s, load {r['loadavg_1m']:.1f}")
    print(f"median: ready {result['median_ready_wall_s']:.2f} s wall / {result['median_ready_cpu_s']:.2f} s CPU")


if __name__ == "__main__":
    main()
