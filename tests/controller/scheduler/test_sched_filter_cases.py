"""Every filter case file: the batch form, the one-host form, the vectorised form (mask) and explain on
both scheduler paths (vectorised on a HostManager's list, vectorised on a plain list, per host) agree
with the expected hosts."""

from __future__ import annotations

import pytest
from kvmfleet.scheduler import Scheduler, SchedulerConfig
from kvmfleet.scheduler.columns import HostColumns
from kvmfleet.scheduler.plugins import FILTER_GROUP, available
from kvmfleet.scheduler.scheduler import has_vector_form
from sched_cases import PATHS, build_spec, case_files, hosts_for, load_case

FILES = case_files("filters")


@pytest.mark.parametrize("path_kind", PATHS)
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_filter_case(path, path_kind):
    case = load_case(path)
    config = SchedulerConfig.from_dict({**(case.get("config") or {}), "enabled_filters": [case["filter"]],
                                        "weighers": []})
    scheduler = Scheduler(config, vectorised=path_kind != "per-host")
    (host_filter,) = scheduler.filters
    hosts = hosts_for(path_kind, case)
    spec = build_spec(case)

    assert [h.name for h in host_filter.filter_all(hosts, spec)] == case["passes"], case["description"]
    assert [h.name for h in hosts if host_filter.host_passes(h, spec)] == case["passes"], case["description"]
    assert has_vector_form(host_filter), f"built-in {host_filter.name} has no vectorised form"
    mask = host_filter.mask(HostColumns(hosts), spec)
    passing = [h.name for h in hosts] if mask is None else [h.name for h, ok in zip(hosts, mask.tolist()) if ok]
    assert passing == case["passes"], case["description"]

    explanation = scheduler.explain(spec, hosts)
    expected_rejected = {h.name: case["filter"] for h in hosts if h.name not in case["passes"]}
    assert explanation.rejected == expected_rejected
    assert [w.name for w in explanation.weighed] == case["passes"]
    assert explanation.counts == [(case["filter"], len(hosts), len(case["passes"]))]


def test_every_filter_has_cases():
    covered = {load_case(p)["filter"] for p in FILES}
    assert set(available(FILTER_GROUP)) <= covered, f"filters without a case file: {sorted(set(available(FILTER_GROUP)) - covered)}"
