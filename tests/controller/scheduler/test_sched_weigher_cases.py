"""Every weigher case file: explain's ranking and weights, select's choice and alternates, on both
scheduler paths (vectorised on a HostManager's list and on a plain list, per host); the vectorised
form (weigh_columns) agrees with the one-host form."""

from __future__ import annotations

import pytest
from kvmfleet.scheduler import Scheduler, SchedulerConfig
from kvmfleet.scheduler.columns import HostColumns
from kvmfleet.scheduler.plugins import WEIGHER_GROUP, available
from kvmfleet.scheduler.scheduler import has_vector_form
from sched_cases import PATHS, build_spec, case_files, hosts_for, load_case

FILES = case_files("weighers")


@pytest.mark.parametrize("path_kind", PATHS)
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_weigher_case(path, path_kind):
    case = load_case(path)
    config = SchedulerConfig.from_dict({**(case.get("config") or {}), "enabled_filters": [],
                                        "weighers": case["weighers"], "multipliers": case.get("multipliers") or {}})
    scheduler = Scheduler(config, vectorised=path_kind != "per-host")
    hosts = hosts_for(path_kind, case)
    spec = build_spec(case)

    for weigher in scheduler.weighers:  # the batch form agrees with the one-host form
        raw = weigher.weigh_all(hosts, spec)
        one_by_one = [weigher.weigh(h, spec) for h in hosts]
        if raw is None:
            assert len(set(one_by_one)) <= 1, f"{weigher.name} said 'no opinion' but weighs hosts differently"
        else:
            assert raw == one_by_one
        assert has_vector_form(weigher), f"built-in {weigher.name} has no vectorised form"
        columns = weigher.weigh_columns(HostColumns(hosts), spec)
        if columns is None:
            assert len(set(one_by_one)) <= 1, f"{weigher.name} said 'no opinion' but weighs hosts differently"
        else:
            assert columns.tolist() == one_by_one

    explanation = scheduler.explain(spec, hosts)
    assert [w.name for w in explanation.weighed] == case["order"], case["description"]
    weights = {w.name: w.weight for w in explanation.weighed}
    for name, expected in (case.get("weights") or {}).items():
        assert weights[name] == pytest.approx(expected, abs=1e-5), name
    for w in explanation.weighed:
        assert w.weight == pytest.approx(sum(w.weights.values()))

    (alone,) = scheduler.select_destinations(build_spec(case), hosts_for(path_kind, case), alternates=0)
    assert alone.name == case["order"][0] and alone.alternates == []

    (selection,) = scheduler.select_destinations(spec, hosts, alternates=2)
    assert selection.name == case["order"][0]
    assert [a.name for a in selection.alternates] == case["order"][1:3]
    if case.get("weights"):
        assert selection.weight == pytest.approx(case["weights"][case["order"][0]], abs=1e-5)


def test_every_weigher_has_cases():
    covered = {name for p in FILES for name in load_case(p)["weighers"]}
    assert set(available(WEIGHER_GROUP)) <= covered, f"weighers without a case file: {sorted(set(available(WEIGHER_GROUP)) - covered)}"
