from __future__ import annotations

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import InvalidState
from ansible_collections.kvmfleet.compute.plugins.module_utils._plan import (
    TARGET_STATES,
    TRANSITIONS,
    boots_fresh,
    config_changes,
    metadata_changes,
    pending_restart,
    power_steps,
    state_reached,
)
from conftest import case_params


@pytest.mark.parametrize("case", case_params("power_steps"))
def test_power_steps(case):
    if "error" in case:
        with pytest.raises(InvalidState) as info:
            power_steps(case["current"], case["target"])
        assert case["error"] in info.value.msg
        return
    assert [list(step) for step in power_steps(case["current"], case["target"])] == case["steps"]


@pytest.mark.parametrize("target", TARGET_STATES)
@pytest.mark.parametrize("current", ["absent", "running", "blocked", "paused", "shutdown", "shutoff",
                                     "crashed", "pmsuspended", "suspended"])
def test_every_state_reaches_every_target_and_then_plans_nothing(current, target):
    steps = power_steps(current, target)
    final = steps[-1][1] if steps else current
    assert state_reached(final, target)
    assert power_steps(final, target) == []  # idempotent: a second run has nothing to do


def test_transition_table_only_names_targets():
    assert set(TRANSITIONS) == set(TARGET_STATES)


@pytest.mark.parametrize("case", case_params("config_changes"))
def test_config_changes(case):
    got = config_changes(case["current"], case["desired"])
    assert {k: list(v) for k, v in got.items()} == case["expected"]


@pytest.mark.parametrize("case", case_params("metadata_changes"))
def test_metadata_changes(case):
    assert metadata_changes(case["current"], case["desired"]) == case["expected"]


@pytest.mark.parametrize("case", case_params("pending_restart"))
def test_pending_restart(case):
    assert pending_restart(case["persistent"], case["live"], case["state"]) == case["expected"]


@pytest.mark.parametrize("case", case_params("boots_fresh"))
def test_boots_fresh(case):
    assert boots_fresh(case["current"], [tuple(step) for step in case["steps"]]) is case["expected"]
