"""Compare-and-set saves: a wrong expected state is an error naming actual and expected, never an overwrite."""

from __future__ import annotations

import threading

import pytest
from kvmfleet.store import (
    InvalidInput,
    NotFound,
    PowerState,
    TaskState,
    UnexpectedTaskState,
    UnexpectedVmState,
    VmState,
    api_status,
    get_instance,
    save_instance,
)


def _state(store, uuid):
    with store.transaction() as s:
        i = get_instance(s, uuid)
        return i.vm_state, i.task_state


def test_save_with_expected_task_state(store, make):
    uuid = make.instance(make.project())
    with store.transaction() as s:
        i = save_instance(s, uuid, {"task_state": TaskState.SPAWNING}, expected_task_state=TaskState.SCHEDULING)
        assert i.task_state is TaskState.SPAWNING
    with store.transaction() as s:
        i = save_instance(s, uuid, {"vm_state": VmState.ACTIVE, "task_state": None,
                                    "power_state": PowerState.RUNNING},
                          expected_task_state=TaskState.SPAWNING, expected_vm_state=VmState.BUILDING)
        assert i.status == "ACTIVE"
        assert i.updated_at is not None
    assert _state(store, uuid) == (VmState.ACTIVE, None)


def test_conflict_names_actual_and_expected_and_writes_nothing(store, make):
    uuid = make.instance(make.project())
    with pytest.raises(UnexpectedTaskState) as err, store.transaction() as s:
        save_instance(s, uuid, {"task_state": TaskState.POWERING_OFF, "name": "changed"},
                      expected_task_state=None)
    assert "task_state is scheduling" in err.value.msg
    assert "expected None" in err.value.msg
    assert err.value.details["actual"] is TaskState.SCHEDULING
    with store.transaction() as s:
        i = get_instance(s, uuid)
        assert (i.task_state, i.name) == (TaskState.SCHEDULING, "vm")


def test_expected_vm_state_and_lists(store, make):
    uuid = make.instance(make.project())
    expected = "vm_state is building, expected one of active, stopped"
    with pytest.raises(UnexpectedVmState, match=expected), store.transaction() as s:
        save_instance(s, uuid, {"task_state": TaskState.DELETING}, expected_vm_state=(VmState.ACTIVE, VmState.STOPPED))
    with store.transaction() as s:
        save_instance(s, uuid, {"task_state": TaskState.DELETING},
                      expected_task_state=(None, TaskState.SCHEDULING), expected_vm_state=[VmState.BUILDING])
    assert _state(store, uuid) == (VmState.BUILDING, TaskState.DELETING)


def test_missing_and_deleted_instances_and_bad_fields(store, make):
    from kvmfleet.store import utcnow

    with pytest.raises(NotFound), store.transaction() as s:
        save_instance(s, "00000000-0000-0000-0000-000000000000", {"task_state": None})
    uuid = make.instance(make.project(), deleted_at=utcnow(), vm_state=VmState.DELETED)
    with pytest.raises(NotFound), store.transaction() as s:
        save_instance(s, uuid, {"task_state": None}, expected_task_state=TaskState.SCHEDULING)
    with pytest.raises(InvalidInput, match="no_such_field"), store.transaction() as s:
        save_instance(s, uuid, {"no_such_field": 1})


def test_racing_transitions_exactly_one_wins(store, make):
    uuid = make.instance(make.project())
    n = 6
    barrier = threading.Barrier(n, timeout=30)
    won, lost, errors = [], [], []

    def worker(k):
        try:
            barrier.wait()
            with store.transaction() as s:
                save_instance(s, uuid, {"task_state": TaskState.SPAWNING, "node": f"n{k}"},
                              expected_task_state=TaskState.SCHEDULING)
            won.append(k)
        except UnexpectedTaskState:
            lost.append(k)
        except Exception as exc:  # noqa: BLE001 - any other outcome is a test failure, reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(won) == 1 and len(lost) == n - 1
    with store.transaction() as s:
        assert get_instance(s, uuid).node == f"n{won[0]}"


@pytest.mark.parametrize(("vm_state", "task_state", "status"), [
    ("active", None, "ACTIVE"), ("building", "scheduling", "BUILD"), ("stopped", None, "SHUTOFF"),
    ("paused", None, "PAUSED"), ("suspended", None, "SUSPENDED"), ("active", "rebooting", "REBOOT"),
    ("active", "resize_prep", "RESIZE"), ("resized", None, "VERIFY_RESIZE"), ("active", "migrating", "MIGRATING"),
    ("error", None, "ERROR"), ("active", "powering-off", "ACTIVE"), ("stopped", "powering-on", "SHUTOFF"),
    ("resized", "resize_reverting", "REVERT_RESIZE"), ("active", "rebooting_hard", "HARD_REBOOT"),
    ("deleted", None, "DELETED"), ("nonsense", None, "UNKNOWN"),
])
def test_api_status_map(vm_state, task_state, status):
    assert api_status(vm_state, task_state) == status


def test_power_state_codes():
    assert [p.code for p in PowerState] == [0, 1, 3, 4, 6, 7]
    assert PowerState.from_code(4) is PowerState.SHUTDOWN
    assert PowerState.from_libvirt("shutoff") is PowerState.SHUTDOWN
