"""Which disks a resize carries (compute/moves.py) and which domains a host refresh reaps (compute/hosts.py),
against the cases in cases/resize_disks.yml and cases/reap.yml."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from kvmfleet.compute.hosts import _reapable
from kvmfleet.compute.moves import _resize_disks
from kvmfleet.store.models import Instance
from kvmfleet.store.states import TaskState, VmState

CASES = Path(__file__).parent / "cases"
RESIZE = yaml.safe_load((CASES / "resize_disks.yml").read_text())
REAP = yaml.safe_load((CASES / "reap.yml").read_text())


@pytest.mark.parametrize(("old", "new", "disks"), RESIZE, ids=[f"{o}->{n}" for o, n, _ in RESIZE])
def test_resize_disks(old, new, disks):
    assert _resize_disks(old, new) == disks


def _instance(case: dict | None) -> Instance | None:
    if case is None:
        return None
    inst = Instance(uuid="u1", name="srv", project_id="p", vm_state=VmState(case.get("vm_state", "active")),
                    task_state=TaskState(case["task_state"]) if case.get("task_state") else None,
                    host=case.get("host"), old_flavor={"source_host": case["source_host"]}
                    if "source_host" in case else None)
    if case.get("deleted"):
        inst.deleted_at = dt.datetime.now(dt.UTC)
    return inst


@pytest.mark.parametrize(("instance", "reaped"), REAP, ids=[str(c[0]) for c in REAP])
def test_reapable(instance, reaped):
    assert _reapable(_instance(instance), "h1") is reaped
