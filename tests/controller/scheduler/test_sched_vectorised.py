"""The vectorised path (NumPy over the hosts' columns) and the per-host path agree exactly.

A generated workload (the shared gen_workload.py), enriched with what the generator leaves out
(down hosts, failed builds, aggregates and flavor extra specs, every server-group policy,
ignore/force hosts, deletes), goes through three schedulers side by side, each on its own copy of
the hosts: vectorised on a HostManager's list (columns kept current by consume/release), vectorised
on a plain list (columns built per call) and per host. Every selection (host, weight, each
weigher's share, alternates), every NoValidHost message and every sampled explanation must be
identical.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
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
from kvmfleet.scheduler.columns import NUMERIC, HostColumns
from kvmfleet.scheduler.filters import HostFilter
from kvmfleet.scheduler.filters.resources import ResourceFilter
from kvmfleet.scheduler.plugins import load_filters, load_weighers
from kvmfleet.scheduler.scheduler import has_vector_form
from kvmfleet.scheduler.weighers import HostWeigher
from sched_tools import schedbench_dir

ALL_FILTERS = ["ServerGroupAffinityFilter", "AvailabilityZoneFilter", "ImagePropertiesFilter", "ComputeFilter",
               "ResourceFilter", "AggregateInstanceExtraSpecsFilter", "ServerGroupAntiAffinityFilter",
               "NumInstancesFilter"]
ALL_WEIGHERS = ["RAMWeigher", "CPUWeigher", "DiskWeigher", "ServerGroupSoftAffinityWeigher",
                "ServerGroupSoftAntiAffinityWeigher", "BuildFailureWeigher", "NumInstancesWeigher"]

CONFIGS = {
    "default": {},
    "pack": {"multipliers": {"RAMWeigher": -1.0, "CPUWeigher": -0.5, "DiskWeigher": -2.0}},
    "everything": {"enabled_filters": ALL_FILTERS, "weighers": ALL_WEIGHERS, "max_instances_per_host": 4,
                   "multipliers": {"NumInstancesWeigher": -1.5, "ServerGroupSoftAffinityWeigher": 3.0}},
    # 12 best hosts (argpartition path), a seeded random pick among the best 3
    "subset_many_alternates": {"host_subset_size": 3, "seed": 11, "max_attempts": 12,
                               "multipliers": {"NumInstancesWeigher": 1.0}},
    "one_weigher_no_alternates": {"weighers": ["DiskWeigher"], "max_attempts": 1},
    "no_weighers": {"weighers": [], "max_attempts": 3},
}


def generate(schedbench, tmp_path, hosts, requests, seed):
    out = tmp_path / "w.json"
    proc = subprocess.run([sys.executable, str(schedbench / "gen_workload.py"), "--hosts", str(hosts),
                           "--requests", str(requests), "--seed", str(seed), "--out", str(out)],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def enrich(workload, seed):
    """Host rows and requests using what the generator does not: the same for every scheduler."""
    rng = random.Random(seed)
    rows = []
    for h in workload["hosts"]:
        row = dict(h)
        if rng.random() < 0.03:
            row["up"] = False
        if rng.random() < 0.05:
            row["failed_builds"] = rng.randint(1, 3)
        if rng.random() < 0.3:
            row["aggregates"] = [{"name": "fast", "metadata": {"ssd": "true", "gen": str(rng.choice([2, 3, 4]))}}]
        if rng.random() < 0.1:
            row["memory_mb_used"] = rng.randint(0, row["memory_mb"] // 2)
        rows.append(row)
    policies = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
    groups = {}
    for i, (name, g) in enumerate(sorted(workload["groups"].items())):
        policy = g["policy"] if i % 3 == 0 else policies[i % 4]
        groups[name] = {"policy": policy,
                        "max_server_per_host": 2 if policy == "anti-affinity" and i % 5 == 0 else None}
    names = [h["name"] for h in rows]
    requests = []
    for r in workload["requests"]:
        req = dict(r)
        x = rng.random()
        if x < 0.08:
            req["extra_specs"] = {"aggregate_instance_extra_specs:ssd": "true"}
        elif x < 0.12:
            req["extra_specs"] = {"gen": ">= 3", "hw:cpu_policy": "dedicated"}
        x = rng.random()
        if x < 0.03:
            req["ignore_hosts"] = rng.sample(names, 3)
        elif x < 0.05:
            req["force_hosts"] = rng.sample(names, 4)
        req["delete_later"] = rng.random() < 0.2
        requests.append(req)
    return rows, groups, requests


class Run:
    """One scheduler on its own copy of the hosts and groups."""

    def __init__(self, rows, groups, config, vectorised, plain_list, filters=None, weighers=None):
        self.manager = HostManager.from_rows(rows)
        self.hosts = list(self.manager.host_states()) if plain_list else self.manager.host_states()
        self.groups = {name: ServerGroup(name, g["policy"], g["max_server_per_host"]) for name, g in groups.items()}
        self.scheduler = Scheduler(SchedulerConfig.from_dict(config), vectorised=vectorised,
                                   filters=filters, weighers=weighers)
        self.placed = []  # (spec, host name) that may be deleted later

    def spec(self, r):
        return RequestSpec(flavor=Flavor(r["flavor"], r["vcpus"], r["memory_mb"], r["disk_gb"],
                                         extra_specs=r.get("extra_specs") or {}),
                           image=ImageMeta(arch=r.get("arch")), availability_zone=r.get("az"),
                           server_group=self.groups[r["group"]] if r.get("group") else None,
                           ignore_hosts=frozenset(r.get("ignore_hosts") or ()),
                           force_hosts=frozenset(r["force_hosts"]) if r.get("force_hosts") else None,
                           request_id=r["id"])

    def place(self, r, explain):
        spec = self.spec(r)
        out = {}
        if explain:
            out["explain"] = self.scheduler.explain(spec, self.hosts).to_dict()
        try:
            (selection,) = self.scheduler.select_destinations(spec, self.hosts, num=1)
        except NoValidHost as exc:
            out["error"] = (exc.msg, exc.filter_name, exc.counts)
            return out
        out["selection"] = selection.to_dict()
        if r["delete_later"]:
            self.placed.append((spec, selection.name))
        return out

    def churn(self, step):
        """Every 40 requests: delete the oldest deletable instance, mark a build failure, heal one."""
        if step % 40 or not self.placed:
            return
        spec, name = self.placed.pop(0)
        self.manager[name].release(spec)
        if spec.server_group is not None:
            spec.server_group.remove_member(name)
        host = self.manager.host_states()[step % len(self.manager)]
        host.failed_builds += 1  # a direct assignment: the manager's columns must follow
        self.manager.host_states()[(step * 7) % len(self.manager)].failed_builds = 0


def run_side_by_side(runs, requests, explain_every=37):
    placed = failed = 0
    for step, r in enumerate(requests):
        results = [run.place(r, explain=step % explain_every == 0) for run in runs]
        for other, result in zip(runs[1:], results[1:]):
            assert result == results[0], (r["id"], other.scheduler.vectorised)
        if "selection" in results[0]:
            placed += 1
        else:
            failed += 1
        for run in runs:
            run.churn(step + 1)
    return placed, failed


@pytest.mark.parametrize("name", list(CONFIGS))
def test_generated_workload_identical_on_both_paths(tmp_path, schedbench, name):
    workload = generate(schedbench, tmp_path, 300, 800, 3)
    rows, groups, requests = enrich(workload, 5)
    config = CONFIGS[name]
    runs = [Run(rows, groups, config, vectorised=True, plain_list=False),
            Run(rows, groups, config, vectorised=True, plain_list=True),
            Run(rows, groups, config, vectorised=False, plain_list=False)]
    placed, failed = run_side_by_side(runs, requests)
    assert placed > 600  # the comparison covered real placements, and some refusals
    assert failed > 0
    # the manager's columns still mirror its states exactly after 800 consumes, releases and edits
    assert_columns_match(runs[0].manager)


def test_vectorised_path_is_taken_and_the_per_host_path_is_not():
    """Both paths are really exercised by the test above (not the same code twice)."""
    manager = HostManager.from_rows([{"name": f"h{i}", "vcpus": 8, "memory_mb": 16384, "disk_gb": 100}
                                     for i in range(3)])
    calls = []

    class Spy(ResourceFilter):
        name = "ResourceFilter"

        def mask(self, cols, spec):
            calls.append("mask")
            return super().mask(cols, spec)

        def filter_all(self, hosts, spec):
            calls.append("filter_all")
            return super().filter_all(hosts, spec)

    spec = RequestSpec(flavor=Flavor("f", 1, 512, 1))
    for vectorised in (True, False):
        Scheduler(SchedulerConfig(), filters=[Spy(SchedulerConfig())], vectorised=vectorised).select_destinations(
            spec, manager.host_states())
    assert calls == ["mask", "filter_all"]


# -- third-party plug-ins (per host only) alongside vectorised built-ins ---------------------------

class EvenVcpusFilter(HostFilter):
    """A third party's filter: host_passes only."""

    def host_passes(self, host, spec):
        return host.vcpus % 32 != 0 or host.num_instances < 2


class NameHashWeigher(HostWeigher):
    """A third party's weigher: weigh only."""

    def weigh(self, host, spec):
        return float(sum(map(ord, host.name)) % 7) + host.num_instances


def test_third_party_per_host_plugins_work_alongside(tmp_path, schedbench):
    workload = generate(schedbench, tmp_path, 120, 400, 9)
    rows, groups, requests = enrich(workload, 2)
    config = {"enabled_filters": ["ServerGroupAffinityFilter", "ComputeFilter", "ResourceFilter"],
              "weighers": ["RAMWeigher", "BuildFailureWeigher"]}

    def plugins():
        cfg = SchedulerConfig.from_dict(config)
        filters = load_filters(cfg)
        filters.insert(2, EvenVcpusFilter(cfg))
        weighers = load_weighers(cfg) + [NameHashWeigher(cfg, 0.5)]
        return filters, weighers

    filters, weighers = plugins()
    assert [has_vector_form(p) for p in filters] == [True, True, False, True]
    assert [has_vector_form(p) for p in weighers] == [True, True, False]
    runs = [Run(rows, groups, config, True, False, *plugins()), Run(rows, groups, config, True, True, *plugins()),
            Run(rows, groups, config, False, False, *plugins())]
    placed, _failed = run_side_by_side(runs, requests, explain_every=5)
    assert placed > 300
    # the third party's plug-ins had a say: the filter rejected hosts, the weigher moved choices
    explanation = runs[0].scheduler.explain(runs[0].spec(requests[-1]), runs[0].hosts).to_dict()
    assert "EvenVcpusFilter" in explanation["rejected"].values()
    assert any(w["weights"].get("NameHashWeigher") for w in explanation["weighed"])


def test_subclass_changing_the_per_host_rule_runs_per_host():
    """Inheriting a built-in's mask would disagree with an overridden host_passes: it is not used."""

    class BigOnlyResourceFilter(ResourceFilter):
        name = "BigOnlyResourceFilter"

        def host_passes(self, host, spec):
            return host.vcpus >= 16 and super().host_passes(host, spec)

        def filter_all(self, hosts, spec):
            return [h for h in hosts if self.host_passes(h, spec)]

    class Restated(BigOnlyResourceFilter):  # a subclass that brings its own mask is vectorised again
        name = "Restated"

        def mask(self, cols, spec):
            return super().mask(cols, spec) & np.array([h.vcpus >= 16 for h in cols.states])

    config = SchedulerConfig()
    assert not has_vector_form(BigOnlyResourceFilter(config)) and has_vector_form(Restated(config))
    manager = HostManager.from_rows([{"name": f"h{v}", "vcpus": v, "memory_mb": 65536, "disk_gb": 100}
                                     for v in (8, 16, 4, 32)])
    for cls in (BigOnlyResourceFilter, Restated):
        explanation = Scheduler(config, filters=[cls(config)]).explain(RequestSpec(flavor=Flavor("f", 1, 512, 1)),
                                                                       manager.host_states())
        assert explanation.rejected == {"h4": cls.name, "h8": cls.name}


# -- the columnar mirror ------------------------------------------------------------------------

def assert_columns_match(manager):
    cols = manager.columns
    assert cols.live and cols.attached and cols.states == list(manager.host_states())
    fresh = HostColumns(manager.host_states())
    for name in NUMERIC + ("enabled", "up", "usable"):
        assert np.array_equal(getattr(cols, name), getattr(fresh, name)), name
    for name, codes in (("az", "az_codes"), ("arch", "arch_codes")):
        decode = {v: k for k, v in getattr(cols, codes).items()}
        assert [decode[c] for c in getattr(cols, name).tolist()] == [getattr(h, name) for h in cols.states], name
    assert [cols.agg_metadata[c] for c in cols.agg.tolist()] == [h.aggregate_metadata for h in cols.states]


def test_manager_columns_follow_every_change():
    rows = [{"name": f"h{i}", "vcpus": 8, "memory_mb": 16384, "disk_gb": 100} for i in range(4)]
    manager = HostManager(lambda: [dict(r) for r in rows])
    manager.refresh()
    listed = manager.host_states()
    spec = RequestSpec(flavor=Flavor("f", 2, 4096, 10), server_group=ServerGroup("g", "anti-affinity"))
    h0, h1, h2, _h3 = listed
    h2.update({"vcpus": 16, "memory_mb": 32768, "disk_gb": 50, "aggregates": [{"name": "a", "metadata": {"k": "v"}}],
               "memory_mb_used": 1000})
    h0.consume(spec)
    h0.consume(spec)
    h1.consume(spec)
    h0.release(spec)
    h2.enabled = False
    h1.up = False
    h2.az = "az9"
    h1.arch = "aarch64"
    h0.failed_builds = 3
    assert_columns_match(manager)
    assert manager.columns.free_memory_mb[0] == 16384 - 512 - 4096 and manager.columns.num_instances[0] == 1
    assert manager.columns.usable.tolist() == [True, False, False, True]
    with pytest.raises(InvalidRequest, match="cannot be renamed"):
        h0.name = "other"
    assert h0.name == "h0"

    rows[3] = {**rows[3], "vcpus_used": 5, "enabled": False}  # same hosts: updated in place
    manager.refresh()
    assert manager.host_states() is listed
    assert_columns_match(manager)

    rows.append({"name": "h9", "vcpus": 2, "memory_mb": 2048, "disk_gb": 10})  # membership: new list and columns
    manager.refresh()
    assert manager.host_states() is not listed and not listed.columns.live
    assert_columns_match(manager)
    # the old list still schedules right (columns built for the call), and the new one sees the change
    listed[0].consume(spec)
    listed[1].enabled = False
    listed[2].up = False
    assert_columns_match(manager)
    (selection,) = Scheduler().select_destinations(RequestSpec(flavor=Flavor("f", 1, 512, 1)), listed)
    assert selection.name == "h0"  # h1 disabled, h2 down, h3 disabled (refresh)
    assert_columns_match(manager)


def test_failed_multi_create_on_a_manager_gives_back_columns_too():
    manager = HostManager.from_rows([{"name": f"h{i}", "vcpus": 8, "memory_mb": 16384, "disk_gb": 100}
                                     for i in range(3)])
    before = {name: getattr(manager.columns, name).copy() for name in NUMERIC}
    spec = RequestSpec(flavor=Flavor("f", 1, 512, 1), server_group=ServerGroup("g", "anti-affinity"), num_instances=4)
    with pytest.raises(NoValidHost, match="instance 4 of 4"):
        Scheduler().select_destinations(spec, manager.host_states())
    for name, values in before.items():
        assert np.array_equal(getattr(manager.columns, name), values), name


def test_duplicate_names_in_a_plain_list_fall_back_to_per_host():
    states = [HostState(n, vcpus=4, memory_mb=8192, disk_gb=50, memory_mb_used=u)
              for n, u in (("a", 0), ("a", 4096), ("b", 1024))]
    explanation = Scheduler().explain(RequestSpec(flavor=Flavor("f", 1, 512, 1)), states)
    assert [(w.name, w.host is states[i]) for w, i in zip(explanation.weighed, (0, 2, 1))] == [
        ("a", True), ("b", True), ("a", True)]


def test_missing_benchmark_tools_are_an_error_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KVMFLEET_SCHEDBENCH_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/gen_workload.py, {tmp_path}/verify.py"):
        schedbench_dir()


def test_copies_of_a_managed_state_are_not_mirrored():
    import copy
    import pickle

    manager = HostManager.from_rows([{"name": "a", "vcpus": 4, "memory_mb": 8192, "disk_gb": 10, "failed_builds": 2}])
    original = manager["a"]
    for clone in (copy.copy(original), copy.deepcopy(original), pickle.loads(pickle.dumps(original))):
        assert (clone.name, clone.failed_builds, clone.free_memory_mb) == ("a", 2, 8192 - 512)
        clone.consume(RequestSpec(flavor=Flavor("f", 1, 1024, 1)))
        clone.enabled = False
        assert original.free_memory_mb == manager.columns.free_memory_mb[0] == 8192 - 512
        assert manager.columns.usable[0]
    assert_columns_match(manager)


@pytest.mark.parametrize("vectorised", [True, False])
def test_hosts_may_be_any_iterable(vectorised):
    def states():
        yield HostState("a", vcpus=4, memory_mb=8192, disk_gb=50)
        yield HostState("a", vcpus=4, memory_mb=16384, disk_gb=50)  # duplicate name: per-host path
        yield HostState("b", vcpus=4, memory_mb=4096, disk_gb=50)

    scheduler = Scheduler(vectorised=vectorised)
    explanation = scheduler.explain(RequestSpec(flavor=Flavor("f", 1, 512, 1)), states())
    assert [w.host.memory_mb for w in explanation.weighed] == [16384, 8192, 4096]
    (selection,) = scheduler.select_destinations(RequestSpec(flavor=Flavor("f", 1, 512, 1)), iter(list(states())[::2]))
    assert selection.host.memory_mb == 8192
