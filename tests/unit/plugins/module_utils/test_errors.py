from __future__ import annotations

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    DomainNotFound,
    ImageError,
    InvalidState,
    KvmfleetError,
    ValidationError,
    WaitTimeout,
)


def test_hierarchy_and_fields():
    for cls in (DomainNotFound, InvalidState, WaitTimeout, ValidationError, ImageError):
        assert issubclass(cls, KvmfleetError)
    err = KvmfleetError("start domain web1: boom", name="web1")
    assert (err.msg, err.details, str(err)) == ("start domain web1: boom", {"name": "web1"}, "start domain web1: boom")


def test_wait_timeout_keeps_last_state_and_partial():
    err = WaitTimeout("timed out", last_state="running", partial={"changed": True})
    assert err.last_state == "running" and err.partial == {"changed": True}
    assert err.to_result() == {"msg": "timed out", "last_state": "running"}


def test_to_result_never_lets_details_override_failed_or_changed():
    err = ValidationError("bad", failed=False, changed=True, value="x")
    assert err.to_result() == {"msg": "bad", "value": "x"}
