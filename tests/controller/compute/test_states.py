"""The operation guards (compute/states.py) against the cases in cases/state_guards.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kvmfleet.compute.errors import InvalidInstanceState
from kvmfleet.compute.states import OPERATIONS

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "state_guards.yml").read_text())


@pytest.mark.parametrize(("op", "vm_state", "task_state", "expect"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_guard(op, vm_state, task_state, expect):
    check = OPERATIONS[op].check
    if expect == "allowed":
        check(vm_state, task_state, "srv")
        return
    with pytest.raises(InvalidInstanceState) as err:
        check(vm_state, task_state, "srv")
    assert expect in err.value.msg and "srv" in err.value.msg


def test_every_operation_has_cases():
    assert {c[0] for c in CASES} == set(OPERATIONS)
