"""Filters and weighers come from entry points; unknown names fail at start-up."""

from __future__ import annotations

import textwrap

import pytest
from kvmfleet.scheduler import Flavor, HostState, RequestSpec, Scheduler, SchedulerConfig, UnknownPlugin
from kvmfleet.scheduler.config import DEFAULT_FILTERS, DEFAULT_WEIGHERS
from kvmfleet.scheduler.filters import HostFilter
from kvmfleet.scheduler.plugins import FILTER_GROUP, WEIGHER_GROUP, available
from kvmfleet.scheduler.weighers import HostWeigher


def test_every_entry_point_loads_a_plugin_of_the_same_name():
    for group, base in ((FILTER_GROUP, HostFilter), (WEIGHER_GROUP, HostWeigher)):
        eps = available(group)
        assert eps, f"no entry points in {group}: is the package installed (pip install -e .)?"
        for name, ep in eps.items():
            cls = ep.load()
            assert issubclass(cls, base) and cls.name == name


def test_defaults_are_enabled_in_config_order():
    scheduler = Scheduler()
    assert [f.name for f in scheduler.filters] == list(DEFAULT_FILTERS)
    assert [w.name for w in scheduler.weighers] == list(DEFAULT_WEIGHERS)
    assert {w.name: w.multiplier for w in scheduler.weighers}["BuildFailureWeigher"] == 1000000.0


def test_order_comes_from_config():
    config = SchedulerConfig(enabled_filters=["ResourceFilter", "ComputeFilter"], weighers=["DiskWeigher"],
                             multipliers={"DiskWeigher": -2.5})
    scheduler = Scheduler(config)
    assert [f.name for f in scheduler.filters] == ["ResourceFilter", "ComputeFilter"]
    assert [(w.name, w.multiplier) for w in scheduler.weighers] == [("DiskWeigher", -2.5)]


def test_unknown_filter_fails_naming_it_and_the_available_ones():
    with pytest.raises(UnknownPlugin) as err:
        Scheduler(SchedulerConfig(enabled_filters=["ComputeFilter", "RamFilter"]))
    msg = err.value.msg
    assert msg.startswith("unknown scheduler filter RamFilter; available filters: ")
    for name in available(FILTER_GROUP):
        assert name in msg
    assert err.value.details["unknown"] == ["RamFilter"]


def test_unknown_weigher_fails():
    with pytest.raises(UnknownPlugin, match="unknown scheduler weigher IoOpsWeigher; available weighers: .*RAMWeigher"):
        Scheduler(SchedulerConfig(weighers=["RAMWeigher", "IoOpsWeigher"]))


def test_multiplier_for_unknown_weigher_fails():
    with pytest.raises(UnknownPlugin, match="multipliers name unknown weigher RamWeigher"):
        Scheduler(SchedulerConfig(multipliers={"RamWeigher": 2.0}))


def test_a_plugin_from_another_distribution_is_discovered(tmp_path, monkeypatch):
    """A real distribution (dist-info with entry_points.txt) on sys.path adds a filter by name."""
    (tmp_path / "kvmfleet_extra_filters.py").write_text(textwrap.dedent('''
        from kvmfleet.scheduler.filters import HostFilter

        class EvenVcpusFilter(HostFilter):
            def host_passes(self, host, spec):
                return host.vcpus % 2 == 0
    '''))
    info = tmp_path / "kvmfleet_extra_filters-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kvmfleet-extra-filters\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[kvmfleet.scheduler.filters]\nEvenVcpusFilter = kvmfleet_extra_filters:EvenVcpusFilter\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    scheduler = Scheduler(SchedulerConfig(enabled_filters=["ComputeFilter", "EvenVcpusFilter"]))
    hosts = [HostState(n, vcpus=v, memory_mb=8192, disk_gb=50) for n, v in (("odd", 3), ("even", 4))]
    explanation = scheduler.explain(RequestSpec(flavor=Flavor("f", 1, 512, 1)), hosts)
    assert explanation.rejected == {"odd": "EvenVcpusFilter"}
