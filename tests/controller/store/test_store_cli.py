"""The store's CLI commands against a real store on each backend: table/JSON output, one-line errors."""

from __future__ import annotations

import json

import pytest
from kvmfleet import config
from kvmfleet.cli import _register, app
from kvmfleet.store import engine as store_engine
from kvmfleet.store import head_revision
from typer.testing import CliRunner

_register()


@pytest.fixture
def kvmfleet(db_url, monkeypatch):
    monkeypatch.setenv("KVMFLEET_DATABASE_URL", db_url)
    config.reset_settings()
    store_engine.reset_store()
    runner = CliRunner()

    def run(*args, ok=True):
        store_engine.reset_store()  # each command is its own process in real use
        result = runner.invoke(app, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
        return result

    yield run
    store_engine.reset_store()


def _json(result):
    return json.loads(result.stdout)


def test_db_upgrade_then_version(kvmfleet):
    up = _json(kvmfleet("db", "upgrade", "-f", "json"))
    assert up["from"] is None and up["to"] == head_revision()
    assert _json(kvmfleet("db", "version", "-f", "json"))["up_to_date"] is True
    assert _json(kvmfleet("db", "upgrade", "-f", "json"))["from"] == head_revision()


def test_project_flavor_quota_server_group_round_trip(kvmfleet):
    p = _json(kvmfleet("project", "create", "demo", "--description", "d", "-f", "json"))  # store upgraded by itself
    assert p["name"] == "demo"
    assert "demo" in kvmfleet("project", "list").stdout
    dup = kvmfleet("project", "create", "demo", ok=False)
    assert dup.stderr.strip() == "error: project demo already exists"

    created = _json(kvmfleet("flavor", "create-defaults", "-f", "json"))
    assert [f["name"] for f in created][:3] == ["m1.nano", "m1.micro", "m1.tiny"]
    assert _json(kvmfleet("flavor", "create-defaults", "-f", "json")) == []  # idempotent
    f = _json(kvmfleet("flavor", "create", "gpu", "--vcpus", "2", "--ram", "1024", "--disk", "5",
                       "--property", "aggregate_instance_extra_specs:gpu=true", "-f", "json"))
    assert (f["vcpus"], f["ram"], f["disk"], f["properties"]) == (2, 1024, 5, {"aggregate_instance_extra_specs:gpu": "true"})
    assert _json(kvmfleet("flavor", "show", "m1.tiny", "-f", "json"))["id"] == "1"
    bad = kvmfleet("flavor", "create", "x", "--vcpus", "1", "--ram", "64", "--property", "novalue", ok=False)
    assert "invalid property 'novalue'" in bad.stderr
    assert "m1.small" in kvmfleet("flavor", "list").stdout
    kvmfleet("flavor", "delete", "gpu")
    assert kvmfleet("flavor", "show", "gpu", ok=False).stderr.strip() == "error: flavor gpu not found"

    q = _json(kvmfleet("quota", "show", "demo", "-f", "json"))
    assert q == {"limits": {"instances": 10, "cores": 20, "ram": 51200},
                 "usage": {"instances": 0, "cores": 0, "ram": 0}}
    q = _json(kvmfleet("quota", "set", "demo", "--cores", "4", "--ram", "-1", "-f", "json"))
    assert q["limits"] == {"instances": 10, "cores": 4, "ram": -1}
    assert "unlimited" in kvmfleet("quota", "show", "demo").stdout
    kvmfleet("quota", "set", "--default", "--instances", "3")
    assert _json(kvmfleet("quota", "show", "--default", "-f", "json"))["limits"]["instances"] == 3
    assert "--instances, --cores and/or --ram" in kvmfleet("quota", "set", "demo", ok=False).stderr

    g = _json(kvmfleet("server-group", "create", "web", "--policy", "anti-affinity", "--max-server-per-host", "2",
                       "--project", "demo", "-f", "json"))
    assert (g["policy"], g["max_server_per_host"], g["members"]) == ("anti-affinity", 2, [])
    err = kvmfleet("server-group", "create", "db", "--policy", "spread", "--project", "demo", ok=False).stderr
    assert err.startswith("error: invalid server group policy 'spread'") and err.count("\n") == 1
    assert "--project" in kvmfleet("server-group", "create", "db", "--policy", "affinity", ok=False).stderr
    assert [r["name"] for r in _json(kvmfleet("server-group", "list", "-f", "json"))] == ["web"]
    kvmfleet("server-group", "delete", "web", "--project", "demo")
    assert _json(kvmfleet("server-group", "list", "-f", "json")) == []

    kvmfleet("project", "delete", "demo")
    assert _json(kvmfleet("project", "list", "-f", "json")) == []


def test_project_with_instances_cannot_be_deleted(kvmfleet, db_url):
    from kvmfleet.store import Instance, open_store

    kvmfleet("project", "create", "busy")
    store = open_store(db_url)
    try:
        with store.transaction() as s:
            from kvmfleet.store import get_project

            s.add(Instance(name="vm", project_id=get_project(s, "busy").id, flavor_name="t", vcpus=1, memory_mb=64))
    finally:
        store.dispose()
    err = kvmfleet("project", "delete", "busy", ok=False).stderr
    assert err.strip() == "error: project busy still has 1 instance(s): delete them first"


def test_bad_names_are_refused(kvmfleet):
    assert "invalid project name '-x'" in kvmfleet("project", "create", "--", "-x", ok=False).stderr
    assert "invalid project name 'a/b'" in kvmfleet("project", "create", "a/b", ok=False).stderr
