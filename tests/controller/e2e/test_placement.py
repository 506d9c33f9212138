"""Placement end to end: server groups, requests nothing can take, quotas, capacity given back."""

from __future__ import annotations

import pytest

from .conftest import PROJECT

pytestmark = pytest.mark.lab


def test_anti_affinity_group_of_three_lands_on_three_hosts(fleet):
    fleet.run("server-group", "create", "spread", "--policy", "anti-affinity", "--project", PROJECT)
    rows = fleet.create("aa", "--flavor", "e2e.nano", "--image", "tiny", "--group", "spread", "--count", "3")
    hosts = [r["host"] for r in rows]
    assert len(rows) == 3 and len(set(hosts)) == 3, hosts
    # A fourth member has no host left: refused by the anti-affinity filter, nothing held.
    before = fleet.host_usage()
    error = fleet.fails("server", "create", "aa-4", "--flavor", "e2e.nano", "--image", "tiny", "--group", "spread",
                        "--project", PROJECT, "--wait")
    assert "No valid host" in error and "ServerGroupAntiAffinityFilter removed the last 3 host(s)" in error, error
    assert "server group spread (anti-affinity)" in error, error
    assert not [s for s in fleet.servers() if s["name"] == "aa-4"], "a refused request stored a server"
    assert fleet.host_usage() == before
    fleet.delete(*[r["id"] for r in rows])
    fleet.run("server-group", "delete", "spread", "--project", PROJECT)


def test_affinity_group_lands_on_one_host(fleet):
    fleet.run("server-group", "create", "together", "--policy", "affinity", "--project", PROJECT)
    rows = fleet.create("af", "--flavor", "e2e.nano", "--image", "tiny", "--group", "together", "--count", "2")
    assert len({r["host"] for r in rows}) == 1, rows
    fleet.delete(*[r["id"] for r in rows])
    fleet.run("server-group", "delete", "together", "--project", PROJECT)


def test_request_too_large_for_any_host_fails_cleanly(fleet):
    explanation = fleet.json("server", "create", "big", "--flavor", "e2e.huge", "--image", "tiny", "--project",
                             PROJECT, "--dry-run")
    assert explanation["chosen"] is None
    assert set(explanation["rejected"]) == {h.name for h in fleet.hosts}, explanation["rejected"]
    assert all("Resource" in why or "RAM" in why or "memory" in why for why in explanation["rejected"].values())
    assert not [s for s in fleet.servers() if s["name"] == "big"], "dry run stored a server"
    before = fleet.host_usage()
    quota_before = fleet.json("quota", "show", PROJECT)["usage"]
    error = fleet.fails("server", "create", "big", "--flavor", "e2e.huge", "--image", "tiny", "--project", PROJECT,
                        "--wait")
    assert "No valid host" in error and "ResourceFilter removed the last 3 host(s)" in error, error
    assert error.count("No valid host") == 1, error
    assert not [s for s in fleet.servers() if s["name"] == "big"], "a refused request stored a server"
    assert fleet.host_usage() == before
    # Without --wait the request is refused the same way, before anything is stored.
    error = fleet.fails("server", "create", "big", "--flavor", "e2e.huge", "--image", "tiny", "--project", PROJECT)
    assert "No valid host" in error, error
    assert not [s for s in fleet.servers() if s["name"] == "big"], "a refused request stored a server"
    assert fleet.json("quota", "show", PROJECT)["usage"] == quota_before
    assert fleet.host_usage() == before


def test_quota_exceeded_is_refused_and_nothing_is_stored(fleet):
    fleet.run("project", "create", "tight")
    fleet.run("quota", "set", "tight", "--instances", "1", "--ram", "200")
    error = fleet.fails("server", "create", "q", "--flavor", "e2e.nano", "--image", "tiny", "--project", "tight",
                        "--count", "2", "--wait")
    assert "Quota exceeded" in error and "instances" in error and "ram" in error, error
    assert not fleet.json("server", "list", "--project", "tight")


def test_delete_frees_the_capacity_the_next_request_uses(fleet):
    # e2e.disk200 fits once per lab host (disk allocation ratio 1.0): three fill the lab.
    rows = fleet.create("cap", "--flavor", "e2e.disk200", "--image", "tiny", "--count", "3")
    assert len({r["host"] for r in rows}) == 3
    error = fleet.fails("server", "create", "cap-more", "--flavor", "e2e.disk200", "--image", "tiny",
                        "--project", PROJECT, "--wait")
    assert "No valid host" in error and "ResourceFilter" in error, error
    assert not [s for s in fleet.servers() if s["name"] == "cap-more"], "a refused request stored a server"
    freed = rows[1]
    fleet.delete(freed["id"])
    assert fleet.host_usage()[freed["host"]]["local_gb_used"] == 0
    again = fleet.create("cap-again", "--flavor", "e2e.disk200", "--image", "tiny")
    assert again[0]["host"] == freed["host"]
    fleet.delete(again[0]["id"], rows[0]["id"], rows[2]["id"])
    assert all(h["local_gb_used"] == 0 for h in fleet.host_usage().values())
