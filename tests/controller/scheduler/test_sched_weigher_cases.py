"""Every weigher case file: explain's ranking and weights, select's choice and alternates."""

from __future__ import annotations

import pytest
from kvmfleet.scheduler import Scheduler, SchedulerConfig
from kvmfleet.scheduler.plugins import WEIGHER_GROUP, available
from sched_cases import build_hosts, build_spec, case_files, load_case

FILES = case_files("weighers")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_weigher_case(path):
    case = load_case(path)
    config = SchedulerConfig.from_dict({**(case.get("config") or {}), "enabled_filters": [],
                                        "weighers": case["weighers"], "multipliers": case.get("multipliers") or {}})
    scheduler = Scheduler(config)
    hosts = build_hosts(case)
    spec = build_spec(case)

    for weigher in scheduler.weighers:  # the batch form agrees with the one-host form
        raw = weigher.weigh_all(hosts, spec)
        one_by_one = [weigher.weigh(h, spec) for h in hosts]
        if raw is None:
            assert len(set(one_by_one)) <= 1, f"{weigher.name} said 'no opinion' but weighs hosts differently"
        else:
            assert raw == one_by_one

    explanation = scheduler.explain(spec, hosts)
    assert [w.name for w in explanation.weighed] == case["order"], case["description"]
    weights = {w.name: w.weight for w in explanation.weighed}
    for name, expected in (case.get("weights") or {}).items():
        assert weights[name] == pytest.approx(expected, abs=1e-5), name
    for w in explanation.weighed:
        assert w.weight == pytest.approx(sum(w.weights.values()))

    (alone,) = scheduler.select_destinations(build_spec(case), build_hosts(case), alternates=0)
    assert alone.name == case["order"][0] and alone.alternates == []

    (selection,) = scheduler.select_destinations(spec, hosts, alternates=2)
    assert selection.name == case["order"][0]
    assert [a.name for a in selection.alternates] == case["order"][1:3]
    if case.get("weights"):
        assert selection.weight == pytest.approx(case["weights"][case["order"][0]], abs=1e-5)


def test_every_weigher_has_cases():
    covered = {name for p in FILES for name in load_case(p)["weighers"]}
    assert set(available(WEIGHER_GROUP)) <= covered, f"weighers without a case file: {sorted(set(available(WEIGHER_GROUP)) - covered)}"
