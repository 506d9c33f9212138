"""Count-based quotas: every resource over is listed; racing requests for the last unit, one wins."""

from __future__ import annotations

import threading

import pytest
from kvmfleet import quota
from kvmfleet.store import Instance, InvalidInput, utcnow
from test_claims import _run_processes


def test_defaults_are_novas(store, make):
    project = make.project()
    with store.transaction() as s:
        assert quota.limits(s, project) == {"instances": 10, "cores": 20, "ram": 51200}
        assert quota.usage(s, project) == {"instances": 0, "cores": 0, "ram": 0}


def test_limits_layering(store, make):
    project = make.project()
    with store.transaction() as s:
        quota.set_default_limits(s, cores=8)
        assert quota.set_limits(s, project, ram=1024) == {"instances": 10, "cores": 8, "ram": 1024}
        assert quota.reset_limits(s, project) == {"instances": 10, "cores": 8, "ram": 51200}
        with pytest.raises(InvalidInput, match="unknown quota resource 'disk'"):
            quota.set_limits(s, project, disk=3)
        with pytest.raises(InvalidInput, match=">= -1"):
            quota.set_limits(s, project, ram=-2)


def test_usage_counts_live_instances_and_pending_resize(store, make):
    project = make.project()
    make.instance(project, "a", vcpus=2, memory_mb=512)
    make.instance(project, "b", vcpus=1, memory_mb=256, new_flavor={"vcpus": 4, "memory_mb": 128})
    make.instance(project, "gone", vcpus=8, memory_mb=8192, deleted_at=utcnow(), vm_state="deleted")
    make.instance(make.project("other"), "x", vcpus=8, memory_mb=8192)
    with store.transaction() as s:
        assert quota.usage(s, project) == {"instances": 2, "cores": 6, "ram": 768}


def test_over_quota_lists_every_resource(store, make):
    project = make.project(instances=2, cores=3, ram=1024)
    make.instance(project, "a", vcpus=2, memory_mb=512)
    with store.transaction() as s, pytest.raises(quota.OverQuota) as err:
        quota.check(s, project, {"instances": 2, "cores": 2, "ram": 1024})
    over = {o["resource"]: o for o in err.value.over}
    assert over == {
        "instances": {"resource": "instances", "requested": 2, "used": 1, "limit": 2},
        "cores": {"resource": "cores", "requested": 2, "used": 2, "limit": 3},
        "ram": {"resource": "ram", "requested": 1024, "used": 512, "limit": 1024},
    }
    assert err.value.msg.startswith("Quota exceeded for instances, cores, ram in project demo")
    with store.transaction() as s:  # within limits: passes, and unlimited (-1) never fails
        quota.check(s, project, {"instances": 1, "cores": 1, "ram": 512})
        quota.set_limits(s, project, cores=-1)
        quota.check(s, project, {"instances": 1, "cores": 1000, "ram": 0})


def test_recheck_after_limit_lowered(store, make):
    project = make.project()
    make.instance(project, "a", vcpus=4)
    with store.transaction() as s:
        quota.recheck(s, project)
        quota.set_limits(s, project, cores=2)
        with pytest.raises(quota.OverQuota, match="cores: requested 0, used 4, limit 2"):
            quota.recheck(s, project)
        quota.check(s, project, {"cores": -2})  # shrinking never fails


def _create(store, project_id, name):
    with store.transaction() as s:
        quota.check(s, project_id, {"instances": 1, "cores": 1, "ram": 256})
        s.add(Instance(name=name, project_id=project_id, flavor_name="t", vcpus=1, memory_mb=256))


def _live_count(store, project_id):
    with store.transaction() as s:
        return quota.usage(s, project_id)["instances"]


def test_threads_racing_for_last_instance_exactly_one_wins(store, make):
    project = make.project(instances=3)
    make.instance(project, "a")
    make.instance(project, "b")
    n = 8
    barrier = threading.Barrier(n, timeout=30)
    won, lost, errors = [], [], []

    def worker(k):
        try:
            barrier.wait()
            _create(store, project, f"r{k}")
            won.append(k)
        except quota.OverQuota:
            lost.append(k)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert (len(won), len(lost)) == (1, n - 1)
    assert _live_count(store, project) == 3


def test_processes_racing_for_last_instance_exactly_one_wins(store, make, db_url):
    project = make.project(instances=1)
    n = 4
    outcomes = _run_processes(n, "quota_worker", [(db_url, project, f"p{k}") for k in range(n)])
    assert [o for o in outcomes if o[0] == "error"] == []
    assert sorted(o[0] for o in outcomes) == ["lost"] * (n - 1) + ["won"]
    assert all("instances: requested 1, used 1, limit 1" in o[1] for o in outcomes if o[0] == "lost")
    assert _live_count(store, project) == 1
