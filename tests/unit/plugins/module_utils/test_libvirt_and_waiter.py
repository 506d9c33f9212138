"""_libvirt and _waiter against libvirt's own in-process test driver (test:///default), a real driver."""

from __future__ import annotations

import uuid

import pytest

libvirt = pytest.importorskip("libvirt")

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    DomainNotFound,
    KvmfleetError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    STATE,
    connect,
    domain_state,
    get_domain,
    libvirt_errors,
    lookup_domain,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._waiter import observe, wait

URI = "test:///default"


@pytest.fixture
def conn():
    c = connect(URI)
    yield c
    c.close()


@pytest.fixture
def dom(conn):
    name = f"kf-unit-{uuid.uuid4().hex[:8]}"
    d = conn.defineXML(f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
                       "<os><type>hvm</type></os></domain>")
    yield d
    if d.isActive():
        d.destroy()
    d.undefineFlags(1)


def test_state_names():
    assert STATE[1] == "running" and STATE[3] == "paused" and STATE[5] == "shutoff"


def test_libvirt_errors_as_context_manager_names_what_we_were_doing(conn):
    with pytest.raises(KvmfleetError) as info, libvirt_errors("start domain web1"):
        conn.networkLookupByName("no-such-network")
    assert info.value.msg.startswith("start domain web1: ")
    assert "no-such-network" in info.value.msg
    assert isinstance(info.value.__cause__, libvirt.libvirtError)


def test_libvirt_errors_as_decorator(conn):
    @libvirt_errors("list networks")
    def broken():
        conn.networkLookupByName("nope")

    with pytest.raises(KvmfleetError, match="^list networks: "):
        broken()


def test_other_exceptions_pass_through_unchanged():
    with pytest.raises(ZeroDivisionError), libvirt_errors("divide"):
        print(1 / 0)


def test_missing_domain(conn):
    assert lookup_domain(conn, "kf-unit-missing") is None
    with pytest.raises(DomainNotFound, match="kf-unit-missing"):
        get_domain(conn, "kf-unit-missing")
    assert observe(conn, "kf-unit-missing") == "absent"


def test_bad_uri_is_a_clear_error():
    with pytest.raises(KvmfleetError, match="^connect to test:///no/such/file.xml: "):
        connect("test:///no/such/file.xml")


def test_domain_state_follows_the_domain(dom):
    assert domain_state(dom) == "shutoff"
    dom.create()
    assert domain_state(dom) == "running"
    dom.suspend()
    assert domain_state(dom) == "paused"
    dom.resume()
    dom.managedSave(0)
    assert domain_state(dom) == "suspended"  # shut off with a managed save image


def test_wait_returns_when_the_predicate_holds(conn, dom):
    assert wait(conn, dom.name(), "shutoff", timeout=1) == "shutoff"
    dom.create()
    assert wait(conn, dom.name(), "running", timeout=1) == "running"
    assert wait(conn, dom.name(), lambda s: s != "absent", timeout=1) == "running"


def test_wait_timeout_carries_the_last_state(conn, dom):
    dom.create()
    clock = iter(range(100)).__next__  # a fake clock: each poll is one second later
    slept = []
    with pytest.raises(WaitTimeout) as info:
        wait(conn, dom.name(), "shutoff", timeout=3, clock=clock, sleep=slept.append)
    assert info.value.last_state == "running"
    assert "running" in info.value.msg and "shutoff" in info.value.msg
    assert len(slept) == 2


def test_wait_with_real_clock_times_out_quickly(conn, dom):
    dom.create()
    with pytest.raises(WaitTimeout):
        wait(conn, dom.name(), "paused", timeout=0.3, interval=0.05)


def test_unknown_predicate_is_refused(conn, dom):
    with pytest.raises(ValidationError):
        wait(conn, dom.name(), "rebooted", timeout=1)
