#!/usr/bin/env python3
"""Scheduler benchmark: the same as `kvmfleet bench scheduler` (see bench/README.md).

    .venv/bin/python bench/scheduler.py --workload W.json --out R.json [--config C.yaml] [--json]
"""

import sys

from kvmfleet.cli import main

if __name__ == "__main__":
    sys.argv[1:1] = ["bench", "scheduler"]
    main()
