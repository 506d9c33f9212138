"""One lab per pytest-xdist worker.

`make test` brings up one lab per worker and names them all in $KVMFLEET_LABS (comma-separated); worker
gwN then runs against the N-th, as $KVMFLEET_LAB, so two workers never share a host. Without xdist (or
without $KVMFLEET_LABS) $KVMFLEET_LAB is left as it was set.
"""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    labs = [lab for lab in os.environ.get("KVMFLEET_LABS", "").split(",") if lab]
    if not worker or not labs:
        return
    index = int(worker.removeprefix("gw"))
    if index >= len(labs):
        raise RuntimeError(f"xdist worker {worker} has no lab: KVMFLEET_LABS names {len(labs)} ({', '.join(labs)})")
    os.environ["KVMFLEET_LAB"] = labs[index]
