"""Claims: allocation + host generation compare-and-set in one transaction; capacity re-checked there."""

from __future__ import annotations

import multiprocessing
import queue
import sys
import threading
from pathlib import Path

import pytest
from kvmfleet.scheduler.claims import (
    ClaimConflict,
    InsufficientResources,
    Resources,
    allocations_for,
    claim,
    confirm_move,
    host_usage,
    move_claim,
    release,
    revert_move,
)
from kvmfleet.store import Allocation, AllocationKind, NotFound, get_host
from sqlalchemy import func, select

ONE = Resources(vcpus=1, memory_mb=256, disk_gb=1)


def _generation(store, host):
    with store.transaction() as s:
        return get_host(s, host).generation


def _allocations(store, host=None):
    with store.transaction() as s:
        stmt = select(func.count(Allocation.id))
        if host:
            stmt = stmt.where(Allocation.host_id == get_host(s, host).id)
        return s.execute(stmt).scalar_one()


def test_claim_bumps_generation_and_release_frees(store, make):
    host = make.host()
    uuid = make.instance(make.project())
    gen = _generation(store, host)
    c = claim(store.session_factory, uuid, host, ONE, gen)
    assert c.generation == gen + 1 == _generation(store, host)
    with store.transaction() as s:
        assert host_usage(s, c.host_id) == {"vcpus": 1, "memory_mb": 256, "disk_gb": 1}
    assert release(store.session_factory, uuid) == [host]
    assert _generation(store, host) == gen + 2
    assert _allocations(store) == 0
    assert release(store.session_factory, uuid) == []  # nothing left: no-op


def test_stale_generation_is_a_conflict(store, make):
    host = make.host()
    project = make.project()
    a, b = make.instance(project, "a"), make.instance(project, "b")
    gen = _generation(store, host)
    claim(store.session_factory, a, host, ONE, gen)
    with pytest.raises(ClaimConflict, match=rf"generation is {gen + 1}, expected {gen}"):
        claim(store.session_factory, b, host, ONE, gen)
    assert _allocations(store) == 1
    assert _generation(store, host) == gen + 1  # the lost claim bumped nothing


def test_capacity_uses_ratios_and_reserved_and_lists_every_resource(store, make):
    # capacity: vcpus (2-0)*1.0 = 2, memory (1024-512)*1.5 = 768, disk (10-0)*1.0 = 10
    host = make.host(vcpus=2, memory_mb=1024, local_gb=10, ram_allocation_ratio=1.5)
    project = make.project()
    a, b = make.instance(project, "a"), make.instance(project, "b")
    claim(store.session_factory, a, host, Resources(1, 512, 4))
    with pytest.raises(InsufficientResources) as err:
        claim(store.session_factory, b, host, Resources(2, 512, 7))
    over = {o["resource"]: o for o in err.value.details["over"]}
    assert set(over) == {"vcpus", "memory_mb", "disk_gb"}
    assert over["memory_mb"] == {"resource": "memory_mb", "requested": 512, "used": 512, "capacity": 768.0}
    assert "host h1 has not enough capacity" in err.value.msg
    claim(store.session_factory, b, host, Resources(1, 256, 6))  # exactly fills every resource
    assert _allocations(store) == 2


def test_default_ratios_come_from_config(store, make, tmp_path, monkeypatch):
    from kvmfleet.config import reset_settings

    cfg = tmp_path / "kvmfleet.yml"
    cfg.write_text("allocation_ratios: {cpu: 16.0}\nreserved: {host_memory_mb: 1024}\n")
    monkeypatch.setenv("KVMFLEET_CONFIG", str(cfg))
    reset_settings()
    from kvmfleet.store import Host

    with store.transaction() as s:
        s.add(Host(name="cfg", vcpus=2, memory_mb=4096, local_gb=10))
    with store.transaction() as s:
        h = get_host(s, "cfg")
        assert (h.cpu_allocation_ratio, h.ram_allocation_ratio, h.reserved_host_memory_mb) == (16.0, 1.0, 1024)
        assert h.capacity == {"vcpus": 32.0, "memory_mb": 3072.0, "disk_gb": 10.0}


def test_claim_errors(store, make):
    host = make.host()
    uuid = make.instance(make.project())
    with pytest.raises(NotFound, match="host nope not found"):
        claim(store.session_factory, uuid, "nope", ONE)
    with pytest.raises(NotFound, match="instance"):
        claim(store.session_factory, "00000000-0000-0000-0000-000000000000", host, ONE)
    claim(store.session_factory, uuid, host, ONE)
    with pytest.raises(ClaimConflict, match="already holds an allocation on host h1"):
        claim(store.session_factory, uuid, host, ONE)
    with pytest.raises(ValueError):
        Resources(-1, 0, 0)


def test_resources_from_flavor():
    assert Resources.from_flavor({"vcpus": 2, "memory_mb": 512, "root_gb": 1, "ephemeral_gb": 2, "swap": 1}) \
        == Resources(2, 512, 4)


def test_resize_on_other_host_then_confirm(store, make):
    src, dst = make.host("src"), make.host("dst")
    uuid = make.instance(make.project())
    claim(store.session_factory, uuid, src, ONE)
    c = move_claim(store.session_factory, uuid, dst, Resources(2, 512, 2), _generation(store, dst))
    assert c.host_name == "dst"
    with store.transaction() as s:
        kinds = {(a.kind, a.host.name, a.vcpus) for a in allocations_for(s, uuid)}
    assert kinds == {(AllocationKind.MIGRATION, "src", 1), (AllocationKind.INSTANCE, "dst", 2)}
    with pytest.raises(ClaimConflict, match="already in progress"):
        move_claim(store.session_factory, uuid, dst, ONE)
    assert confirm_move(store.session_factory, uuid) == ["src"]
    with store.transaction() as s:
        assert [(a.kind, a.host.name) for a in allocations_for(s, uuid)] == [(AllocationKind.INSTANCE, "dst")]


def test_resize_on_same_host_counts_both_until_revert(store, make):
    host = make.host(vcpus=2)
    uuid = make.instance(make.project())
    claim(store.session_factory, uuid, host, ONE)
    with pytest.raises(InsufficientResources, match="vcpus requested 2, used 1, capacity 2"):
        move_claim(store.session_factory, uuid, host, Resources(2, 256, 1))
    # swapping in place (keep_source=False) does not count the old allocation
    move_claim(store.session_factory, uuid, host, Resources(2, 256, 1), keep_source=False)
    with store.transaction() as s:
        assert [(a.kind, a.vcpus) for a in allocations_for(s, uuid)] == [(AllocationKind.INSTANCE, 2)]
    move_claim(store.session_factory, uuid, host, Resources(0, 256, 1))  # e.g. a shrink: both held
    c = revert_move(store.session_factory, uuid)
    assert c.resources == Resources(2, 256, 1)
    with store.transaction() as s:
        assert [(a.kind, a.vcpus) for a in allocations_for(s, uuid)] == [(AllocationKind.INSTANCE, 2)]


def _race_threads(store, make, use_generation: bool) -> tuple[list, list, list]:
    host = make.host(vcpus=2)  # capacity 2 vcpus
    project = make.project()
    claim(store.session_factory, make.instance(project, "first"), host, ONE)
    n = 8
    uuids = [make.instance(project, f"r{k}") for k in range(n)]
    gen = _generation(store, host) if use_generation else None
    barrier = threading.Barrier(n, timeout=30)
    won, lost, errors = [], [], []

    def worker(uuid):
        try:
            barrier.wait()
            claim(store.session_factory, uuid, host, ONE, gen)
            won.append(uuid)
        except ClaimConflict as exc:
            lost.append(exc)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(u,)) for u in uuids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return won, lost, errors


@pytest.mark.parametrize("use_generation", [True, False], ids=["generation-cas", "capacity-recheck"])
def test_threads_racing_for_last_capacity_exactly_one_allocation(store, make, use_generation):
    won, lost, errors = _race_threads(store, make, use_generation)
    assert errors == []
    assert len(won) == 1 and len(lost) == 7
    assert _allocations(store, "h1") == 2
    if not use_generation:  # without a generation check, capacity is what refuses the others
        assert all(isinstance(e, InsufficientResources) for e in lost)


def test_processes_racing_for_last_capacity_exactly_one_allocation(store, make, db_url):
    host = make.host(vcpus=2)
    project = make.project()
    claim(store.session_factory, make.instance(project, "first"), host, ONE)
    n = 4
    uuids = [make.instance(project, f"p{k}") for k in range(n)]
    outcomes = _run_processes(n, "claim_worker", [(db_url, u, host, None) for u in uuids])
    assert [o for o in outcomes if o[0] == "error"] == []
    assert sorted(o[0] for o in outcomes) == ["lost"] * (n - 1) + ["won"]
    assert _allocations(store, host) == 2


def _run_processes(n, func_name, arg_list):
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)  # spawn children inherit sys.path and import the worker module
    import store_race_workers

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=getattr(store_race_workers, func_name), args=(*args, barrier, results))
             for args in arg_list]
    for p in procs:
        p.start()
    outcomes = []
    try:
        for _ in procs:
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {n} processes reported: {outcomes}")
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    return outcomes
