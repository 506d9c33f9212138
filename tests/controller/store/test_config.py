"""Settings: defaults, YAML file, environment; bad keys are errors naming them."""

from __future__ import annotations

import pytest
from kvmfleet.config import ConfigError, load_settings


def test_defaults(tmp_path):
    s = load_settings(environ={"KVMFLEET_STATE_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path}/kvmfleet.db"
    assert (s.cpu_allocation_ratio, s.ram_allocation_ratio, s.disk_allocation_ratio) == (4.0, 1.0, 1.0)
    assert s.reserved_host_memory_mb == 512
    assert s.quota.as_dict() == {"instances": 10, "cores": 20, "ram": 51200, "key_pairs": 100, "server_groups": 10,
                                 "server_group_members": 10, "metadata_items": 128}
    assert s.scheduler.enabled_filters is None
    assert s.scheduler.multiplier("BuildFailureWeigher") == 1000000.0
    assert s.resize_transfer == "direct"
    assert s.config_file is None


def test_file_in_state_dir_and_environment_wins(tmp_path):
    (tmp_path / "kvmfleet.yml").write_text(
        "database: {url: 'postgresql+psycopg://u@h/db'}\n"
        "allocation_ratios: {cpu: 8}\n"
        "quota: {instances: 50}\n"
        "scheduler: {enabled_filters: [ComputeFilter], multipliers: {RAMWeigher: -1.0}, max_attempts: 5,\n"
        "            max_instances_per_host: 7}\n"
        "compute: {resize_transfer: controller}\n")
    s = load_settings(environ={"KVMFLEET_STATE_DIR": str(tmp_path)})
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.cpu_allocation_ratio == 8.0
    assert s.quota.instances == 50 and s.quota.cores == 20
    assert s.scheduler.enabled_filters == ("ComputeFilter",)
    assert s.scheduler.multiplier("RAMWeigher") == -1.0 and s.scheduler.max_attempts == 5
    assert (s.scheduler.max_instances_per_host, s.scheduler.host_subset_size) == (7, 1)
    assert s.resize_transfer == "controller"
    assert s.config_file == tmp_path / "kvmfleet.yml"
    s = load_settings(environ={"KVMFLEET_STATE_DIR": str(tmp_path), "KVMFLEET_DATABASE_URL": "sqlite:///x.db"})
    assert s.database_url == "sqlite:///x.db"


@pytest.mark.parametrize(("text", "message"), [
    ("bogus: 1\n", "unknown key(s) bogus"),
    ("allocation_ratios: {cpu: fast}\n", "allocation_ratios.cpu: expected a number, got 'fast'"),
    ("allocation_ratios: {gpu: 1}\n", "allocation_ratios: unknown key(s) gpu"),
    ("quota: {cores: -5}\n", "quota.cores: must be >= -1"),
    ("scheduler: {weighers: RAMWeigher}\n", "scheduler.weighers: expected a list of names"),
    ("compute: {resize_transfer: sideways}\n", "compute.resize_transfer: expected one of direct, controller"),
    ("compute: {transfer: direct}\n", "compute: unknown key(s) transfer"),
    ("- a\n", "expected a mapping"),
    ("a: [\n", "is not valid YAML"),
])
def test_bad_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"KVMFLEET_CONFIG": str(path), "KVMFLEET_STATE_DIR": str(tmp_path)})
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(environ={"KVMFLEET_CONFIG": str(tmp_path / "none.yml")})
