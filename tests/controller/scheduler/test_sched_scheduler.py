"""Scheduler behaviour beyond single filters/weighers: multi-create, NoValidHost, explain, host cache.

Every test using a scheduler runs on both paths (the ``sched`` fixture: vectorised and per host)."""

from __future__ import annotations

import json
import logging

import pytest
from kvmfleet.scheduler import (
    Flavor,
    HostManager,
    HostState,
    ImageMeta,
    InvalidRequest,
    NoValidHost,
    RequestSpec,
    Scheduler,
    SchedulerConfig,
    ServerGroup,
)

SMALL = Flavor("m1.small", 1, 2048, 20)


def hosts(n=3, **fields):
    row = {"vcpus": 8, "memory_mb": 16384, "disk_gb": 200, **fields}
    return [HostState.from_dict({"name": f"h{i + 1}", **row}) for i in range(n)]


@pytest.fixture(params=["vectorised", "per-host"])
def sched(request):
    """Scheduler(...) on one path; every test here runs on both."""
    vectorised = request.param == "vectorised"

    def make(config=None, **kwargs):
        return Scheduler(config, vectorised=vectorised, **kwargs)
    return make


def usage(states):
    return {h.name: (h.vcpus_used, h.memory_mb_used, h.disk_gb_used, h.num_instances) for h in states}


def test_multi_create_anti_affinity_uses_distinct_hosts(sched):
    states = hosts(3)
    group = ServerGroup("web", "anti-affinity")
    spec = RequestSpec(flavor=SMALL, server_group=group, num_instances=3)
    selections = sched().select_destinations(spec, states)
    assert sorted(s.name for s in selections) == ["h1", "h2", "h3"]
    assert group.hosts == {"h1": 1, "h2": 1, "h3": 1}
    assert all(h.server_group_instances == {"web": 1} for h in states)


def test_multi_create_affinity_uses_one_host_even_when_others_are_emptier(sched):
    states = hosts(3)  # all equal: h1 wins the tie, then the RAM weigher alone would prefer h2 and h3
    group = ServerGroup("db", "affinity")
    spec = RequestSpec(flavor=SMALL, server_group=group, num_instances=3)
    selections = sched().select_destinations(spec, states)
    assert [s.name for s in selections] == ["h1", "h1", "h1"]
    assert states[0].num_instances == 3 and states[0].memory_mb_used == 3 * 2048


def test_multi_create_without_group_spreads_by_free_ram(sched):
    states = hosts(3)
    selections = sched().select_destinations(RequestSpec(flavor=SMALL, num_instances=3), states)
    assert [s.name for s in selections] == ["h1", "h2", "h3"]


def test_multi_create_soft_policies(sched):
    config = SchedulerConfig(weighers=["ServerGroupSoftAffinityWeigher", "ServerGroupSoftAntiAffinityWeigher"])
    soft_anti = ServerGroup("spread", "soft-anti-affinity")
    chosen = sched(config).select_destinations(
        RequestSpec(flavor=SMALL, server_group=soft_anti, num_instances=3), hosts(3))
    assert sorted(s.name for s in chosen) == ["h1", "h2", "h3"]
    # a fourth member still gets a host (soft): one of the hosts gets a second member
    soft = ServerGroup("pack", "soft-affinity", hosts={"h2": 1})
    chosen = sched(config).select_destinations(RequestSpec(flavor=SMALL, server_group=soft, num_instances=3),
                                                   hosts(3))
    assert [s.name for s in chosen] == ["h2", "h2", "h2"]


def test_anti_affinity_max_server_per_host(sched):
    states = hosts(2)
    group = ServerGroup("g", "anti-affinity", max_server_per_host=2)
    chosen = sched().select_destinations(RequestSpec(flavor=SMALL, server_group=group, num_instances=4), states)
    assert sorted(s.name for s in chosen) == ["h1", "h1", "h2", "h2"]


def test_failed_multi_create_gives_everything_back(sched, caplog):
    states = hosts(3)
    before = usage(states)
    group = ServerGroup("web", "anti-affinity", hosts={"h3": 1})
    spec = RequestSpec(flavor=SMALL, server_group=group, num_instances=3)
    with caplog.at_level(logging.WARNING, logger="kvmfleet.scheduler"), pytest.raises(NoValidHost) as err:
        sched().select_destinations(spec, states)
    assert usage(states) == before
    assert group.hosts == {"h3": 1}
    assert all(h.server_group_instances == {} for h in states)
    assert err.value.filter_name == "ServerGroupAntiAffinityFilter"
    assert "instance 3 of 3" in err.value.msg
    records = [r for r in caplog.records if r.name.startswith("kvmfleet.scheduler")]
    assert len(records) == 1 and records[0].getMessage() == err.value.msg


def test_no_valid_host_message_names_the_filter_and_every_count(sched, caplog):
    states = hosts(4)
    states[0].enabled = False
    states[1].up = False
    states[2].az = "az2"
    spec = RequestSpec(flavor=Flavor("huge", 4, 65536, 20), availability_zone="nova")
    with caplog.at_level(logging.WARNING, logger="kvmfleet.scheduler"), pytest.raises(NoValidHost) as err:
        sched().select_destinations(spec, states)
    exc = err.value
    assert exc.filter_name == "ResourceFilter"
    assert exc.counts == [
        ("ServerGroupAffinityFilter", 4, 4), ("AvailabilityZoneFilter", 4, 3), ("ImagePropertiesFilter", 3, 3),
        ("ComputeFilter", 3, 1), ("ResourceFilter", 1, 0),
    ]
    assert exc.msg == (
        "No valid host was found for the request (flavor huge (4 vcpus, 65536 MB RAM, 20 GB disk), availability "
        "zone nova): ResourceFilter removed the last 1 host(s). Filter results: ServerGroupAffinityFilter 4->4, "
        "AvailabilityZoneFilter 4->3, ImagePropertiesFilter 3->3, ComputeFilter 3->1, ResourceFilter 1->0.")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("kvmfleet.scheduler")]
    assert messages == [exc.msg]


def test_no_hosts_at_all(sched):
    with pytest.raises(NoValidHost) as err:
        sched().select_destinations(RequestSpec(flavor=SMALL), [])
    assert err.value.filter_name is None
    assert "there are no compute hosts" in err.value.msg


def test_explain_reports_the_rejecting_filter_per_host_and_weights(sched):
    states = [HostState.from_dict({"name": f"h{i + 1}", "vcpus": 8, "memory_mb": 16384, "disk_gb": 200, **extra})
              for i, extra in enumerate([{"enabled": False}, {"arch": "aarch64"}, {"memory_mb_used": 15000}, {},
                                         {"memory_mb_used": 4096}])]
    spec = RequestSpec(flavor=SMALL, image=ImageMeta(arch="x86_64"))
    explanation = sched().explain(spec, states)
    assert explanation.rejected == {"h2": "ImagePropertiesFilter", "h1": "ComputeFilter", "h3": "ResourceFilter"}
    assert [w.name for w in explanation.weighed] == ["h4", "h5"]
    h4, h5 = explanation.weighed
    assert h4.weights == {"RAMWeigher": pytest.approx(1.0)} and h5.weights == {"RAMWeigher": 0.0}
    assert explanation.message is None
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["rejected"]["h3"] == "ResourceFilter"
    assert [f["filter"] for f in data["filters"]][:4] == [
        "ServerGroupAffinityFilter", "AvailabilityZoneFilter", "ImagePropertiesFilter", "ComputeFilter"]
    # explain consumed nothing
    assert all(h.num_instances == 0 for h in states)


def test_explain_when_nothing_passes_carries_the_message(sched):
    states = hosts(2, enabled=False)
    explanation = sched().explain(RequestSpec(flavor=SMALL), states)
    assert explanation.weighed == []
    assert explanation.rejected == {"h1": "ComputeFilter", "h2": "ComputeFilter"}
    assert "ComputeFilter removed the last 2 host(s)" in explanation.message


def test_ignore_and_force_hosts(sched):
    states = hosts(4)
    spec = RequestSpec(flavor=SMALL, ignore_hosts={"h1"}, force_hosts={"h1", "h3"})
    explanation = sched().explain(spec, states)
    assert explanation.rejected == {"h1": "ignore_hosts", "h2": "force_hosts", "h4": "force_hosts"}
    (selection,) = sched().select_destinations(spec, states)
    assert selection.name == "h3"
    with pytest.raises(NoValidHost) as err:
        sched().select_destinations(RequestSpec(flavor=SMALL, force_hosts={"nope"}), states)
    assert err.value.filter_name == "force_hosts"


def test_alternates_and_consume(sched):
    states = [HostState.from_dict({"name": f"h{i + 1}", "vcpus": 8, "memory_mb": 16384, "disk_gb": 200,
                                   "memory_mb_used": 1000 * i}) for i in range(4)]
    (selection,) = sched().select_destinations(RequestSpec(flavor=SMALL), states, alternates=2)
    assert selection.name == "h1"
    assert [a.name for a in selection.alternates] == ["h2", "h3"]
    assert states[0].memory_mb_used == 2048 and states[0].free_memory_mb == 16384 - 512 - 2048
    assert states[0].free_vcpus == 8 * 4.0 - 1 and states[0].free_disk_gb == 200 - 20
    states[0].release(RequestSpec(flavor=SMALL))
    assert states[0].free_memory_mb == 16384 - 512 and states[0].num_instances == 0
    # default alternates: max_attempts - 1
    (selection,) = sched(SchedulerConfig(max_attempts=4)).select_destinations(RequestSpec(flavor=SMALL), states)
    assert len(selection.alternates) == 3


def test_host_subset_size_picks_among_the_best_repeatably(sched):
    def pick(seed):
        states = [HostState.from_dict({"name": f"h{i + 1}", "vcpus": 8, "memory_mb": 16384, "disk_gb": 200,
                                       "memory_mb_used": 1000 * i}) for i in range(6)]
        config = SchedulerConfig(host_subset_size=3, seed=seed)
        return sched(config).select_destinations(RequestSpec(flavor=SMALL), states)[0].name

    picks = [pick(seed) for seed in range(12)]
    assert picks == [pick(seed) for seed in range(12)]  # a fixed seed repeats
    assert set(picks) == {"h1", "h2", "h3"}  # random among the 3 best, never beyond


def test_host_manager_refresh_updates_in_place():
    rows = [{"name": "b", "vcpus": 4, "memory_mb": 8192, "disk_gb": 100},
            {"name": "a", "vcpus": 8, "memory_mb": 16384, "disk_gb": 100}]
    manager = HostManager(lambda: list(rows))
    manager.refresh()
    listed = manager.host_states()
    assert [h.name for h in listed] == ["a", "b"]
    a = manager["a"]
    rows[0] = {**rows[0], "vcpus_used": 2}
    rows[1] = {**rows[1], "memory_mb_used": 1024, "failed_builds": 2}
    manager.refresh()
    assert manager["a"] is a and a.free_memory_mb == 16384 - 512 - 1024 and a.failed_builds == 2
    assert manager.host_states() is listed  # same hosts: the cached list is kept
    rows.pop(0)
    rows.append({"name": "c", "vcpus": 2, "memory_mb": 4096, "disk_gb": 10})
    manager.refresh()
    assert [h.name for h in manager.host_states()] == ["a", "c"] and "b" not in manager
    with pytest.raises(InvalidRequest, match="unknown field.*vcpu_used"):
        manager.load([{"name": "a", "vcpus": 1, "memory_mb": 1024, "disk_gb": 1},
                      {"name": "d", "vcpus": 1, "memory_mb": 1024, "disk_gb": 1, "vcpu_used": 1}])
    assert [h.name for h in manager.host_states()] == ["a", "c"]  # the bad load changed nothing
    with pytest.raises(InvalidRequest, match="twice"):
        manager.load([{"name": "a", "vcpus": 1, "memory_mb": 1024, "disk_gb": 1}] * 2)


@pytest.mark.parametrize("bad, match", [
    ({"vcpus": -1}, "vcpus must be a non-negative integer"),
    ({"cpu_allocation_ratio": 0}, "cpu_allocation_ratio must be a positive number"),
    ({"aggregates": [{"metadata": {}}]}, "each aggregate needs a name"),
])
def test_bad_host_rows_are_refused(bad, match):
    with pytest.raises(InvalidRequest, match=match):
        HostState.from_dict({"name": "h", "vcpus": 4, "memory_mb": 1024, "disk_gb": 10, **bad})


@pytest.mark.parametrize("data, match", [
    ({"flavor": {"name": "f", "vcpus": 0, "memory_mb": 1, "disk_gb": 0}}, "flavor vcpus"),
    ({"flavor": {"name": "f", "vcpus": 1, "memory_mb": 512, "disk_gb": 1}, "image": {"min_ram": 1024}},
     "below the image's min_ram 1024"),
    ({"flavor": {"name": "f", "vcpus": 1, "memory_mb": 512, "disk_gb": 1},
      "server_group": {"name": "g", "policy": "sticky"}}, "policy 'sticky' is not one of"),
    ({"flavor": {"name": "f", "vcpus": 1, "memory_mb": 512, "disk_gb": 1},
      "server_group": {"name": "g", "policy": "affinity", "max_server_per_host": 2}}, "only to anti-affinity"),
    ({"flavor": {"name": "f", "vcpus": 1, "memory_mb": 512, "disk_gb": 1}, "zone": "az1"}, "unknown key.*zone"),
])
def test_bad_request_specs_are_refused(data, match):
    with pytest.raises(InvalidRequest, match=match):
        RequestSpec.from_dict(data)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(InvalidRequest, match="unknown key.*filters"):
        SchedulerConfig.from_dict({"filters": ["ComputeFilter"]})
    with pytest.raises(InvalidRequest, match="host_subset_size must be an integer >= 1"):
        SchedulerConfig.from_dict({"host_subset_size": 0})
    with pytest.raises(InvalidRequest, match="multiplier for RAMWeigher must be a number"):
        SchedulerConfig.from_dict({"multipliers": {"RAMWeigher": "high"}})
