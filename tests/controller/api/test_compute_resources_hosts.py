"""The compute API's host resources on the lab: os-hypervisors, os-services, os-availability-zone and
os-aggregates, against a `kvmfleet serve` of their own (hosts here are disabled, fenced and moved between
zones, which must not disturb the other suites' servers) with the lab's hosts imported. Driven by the real
`openstack` client, by plain HTTP for each microversion's exact keys, and checked against what the
scheduler decides (`kvmfleet server create --dry-run`) and one real server on a lab host."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_IMAGE, Service
from conftest_resources import V, call, db, fault

pytestmark = pytest.mark.lab

SUFFIX = secrets.token_hex(3)
PROJECT, MEMBER = f"hst-p-{SUFFIX}", f"hst-member-{SUFFIX}"
HOSTS = ("lab-h1", "lab-h2", "lab-h3")
HYP_BASIC = {"id", "hypervisor_hostname", "state", "status"}
HYP_DETAIL = HYP_BASIC | {"hypervisor_type", "hypervisor_version", "host_ip", "service", "vcpus", "memory_mb",
                          "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "free_ram_mb", "free_disk_gb",
                          "current_workload", "running_vms", "disk_available_least", "cpu_info"}
SERVICE_21 = {"binary", "host", "id", "zone", "status", "state", "updated_at", "disabled_reason"}
AGGREGATE_21 = {"availability_zone", "created_at", "deleted", "deleted_at", "hosts", "id", "metadata", "name",
                "updated_at"}


@pytest.fixture(scope="module")
def lab(service_factory: Any, lab_inventory: Path) -> dict[str, Any]:
    svc = service_factory()
    svc.cli("host", "import", "--inventory", str(lab_inventory))
    svc.cli("image", "register", "tiny", "--file", str(TINY_IMAGE))
    svc.cli("flavor", "create", "hst.nano", "--vcpus", "1", "--ram", "128", "--disk", "1")
    svc.user(MEMBER, PROJECT, "member")
    return {"svc": svc, "admin": svc.token(), "member": svc.token(MEMBER, project=PROJECT)}


def dry_run(svc: Service, count: int = 1) -> dict[str, Any]:
    out = svc.cli("server", "create", f"hst-probe-{SUFFIX}", "--flavor", "hst.nano", "--image", "tiny", "--project",
                  PROJECT, "--count", str(count), "--dry-run", "-f", "json", check=False)
    return json.loads(out.stdout)


def service_ids(svc: Service, admin: str) -> dict[str, str]:
    return {s["host"]: s["id"] for s in call(svc, admin, "GET", f"{V}/os-services", "2.53").json()["services"]}


def test_hypervisors(lab: dict[str, Any]) -> None:
    svc, admin, member = lab["svc"], lab["admin"], lab["member"]
    listed = svc.openstack("hypervisor", "list", as_json=True)
    assert sorted(h["Hypervisor Hostname"] for h in listed) == list(HOSTS)
    assert {h["State"] for h in listed} == {"up"} and {h["Hypervisor Type"] for h in listed} == {"QEMU"}
    shown = svc.openstack("hypervisor", "show", "lab-h2", as_json=True)
    vcpus, memory_mb, local_gb = db(svc, "SELECT vcpus, memory_mb, local_gb FROM hosts WHERE name = 'lab-h2'")[0]
    assert (shown["vcpus"], shown["memory_mb"], shown["local_gb"]) == (vcpus, memory_mb, local_gb)
    assert shown["service_host"] == "lab-h2" and shown["running_vms"] == 0
    assert shown["uptime"] and shown["load_average"]  # the host's own `uptime` line, parsed by the client
    assert shown["memory_mb_used"] == 512 and shown["free_ram_mb"] == memory_mb - 512  # reserved host memory
    stats = svc.openstack("hypervisor", "stats", "show", as_json=True)
    assert stats["count"] == 3 and stats["vcpus"] == sum(r[0] for r in db(svc, "SELECT vcpus FROM hosts"))
    # raw views per microversion
    old = call(svc, admin, "GET", f"{V}/os-hypervisors", "2.1").json()
    assert set(old) == {"hypervisors"} and all(set(h) == HYP_BASIC and isinstance(h["id"], int)
                                               for h in old["hypervisors"])
    detail = call(svc, admin, "GET", f"{V}/os-hypervisors/detail", "2.1").json()["hypervisors"]
    assert all(set(h) == HYP_DETAIL for h in detail)
    assert isinstance(detail[0]["cpu_info"], str) and json.loads(detail[0]["cpu_info"])["arch"] == "x86_64"
    assert set(detail[0]["service"]) == {"id", "host", "disabled_reason"}
    newer = call(svc, admin, "GET", f"{V}/os-hypervisors/detail", "2.53").json()["hypervisors"]
    assert all(set(h) == HYP_DETAIL and uuid.UUID(h["id"]) and uuid.UUID(h["service"]["id"]) for h in newer)
    assert isinstance(newer[0]["cpu_info"], dict)
    assert isinstance(newer[0]["hypervisor_version"], int) and newer[0]["hypervisor_version"] > 1000000
    page = call(svc, admin, "GET", f"{V}/os-hypervisors", "2.33", params={"limit": 1}).json()
    assert len(page["hypervisors"]) == 1 and page["hypervisors_links"][0]["rel"] == "next"
    rest = call(svc, admin, "GET", f"{V}/os-hypervisors", "2.33",
                params={"marker": page["hypervisors"][0]["id"]}).json()["hypervisors"]
    assert len(rest) == 2 and "hypervisors_links" not in rest
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors", "2.33", params={"marker": "999999"}), 400, "badRequest")
    found = call(svc, admin, "GET", f"{V}/os-hypervisors", "2.75", params={
        "hypervisor_hostname_pattern": "h2", "with_servers": "true"}).json()["hypervisors"]
    assert [(h["hypervisor_hostname"], h["servers"]) for h in found] == [("lab-h2", [])]
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors", "2.53", params={"hypervisor_hostname_pattern": "zz"}),
          404, "itemNotFound")
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors", "2.53", params={"hypervisor_hostname_pattern": "h",
                                                                           "limit": 1}), 400, "badRequest")
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors", "2.53", params={"color": "red"}), 400, "badRequest")
    legacy = call(svc, admin, "GET", f"{V}/os-hypervisors/h3/search", "2.1").json()["hypervisors"]
    assert [h["hypervisor_hostname"] for h in legacy] == ["lab-h3"]
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors/h3/search", "2.53"), 404, "itemNotFound")
    one = call(svc, admin, "GET", f"{V}/os-hypervisors/{old['hypervisors'][0]['id']}", "2.1").json()["hypervisor"]
    assert set(one) == HYP_DETAIL
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors/abc", "2.1"), 404, "itemNotFound")
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors/abc", "2.53"), 400, "badRequest")
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors/{uuid.uuid4()}", "2.53"), 404, "itemNotFound")
    by_uuid = call(svc, admin, "GET", f"{V}/os-hypervisors/{newer[0]['id']}", "2.79").json()["hypervisor"]
    assert by_uuid["hypervisor_hostname"] == newer[0]["hypervisor_hostname"]
    up = call(svc, admin, "GET", f"{V}/os-hypervisors/{newer[0]['id']}/uptime", "2.79").json()["hypervisor"]
    assert set(up) == HYP_BASIC | {"uptime"} and " up " in up["uptime"] and "load average" in up["uptime"]
    fault(call(svc, admin, "GET", f"{V}/os-hypervisors/{uuid.uuid4()}/uptime", "2.79"), 404, "itemNotFound")
    stats = call(svc, admin, "GET", f"{V}/os-hypervisors/statistics").json()["hypervisor_statistics"]
    assert set(stats) == {"count", "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
                          "free_ram_mb", "free_disk_gb", "current_workload", "running_vms", "disk_available_least"}
    for path in ("/os-hypervisors", "/os-hypervisors/detail", "/os-hypervisors/statistics"):
        fault(call(svc, member, "GET", V + path), 403, "forbidden")
    assert svc.openstack("hypervisor", "list", cloud=MEMBER, check=False).returncode != 0


def test_services_steer_the_scheduler(lab: dict[str, Any]) -> None:
    svc, admin, member = lab["svc"], lab["admin"], lab["member"]
    listed = svc.openstack("compute", "service", "list", as_json=True)
    assert sorted(s["Host"] for s in listed) == list(HOSTS)
    assert {(s["Binary"], s["Status"], s["State"]) for s in listed} == {("nova-compute", "enabled", "up")}
    assert dry_run(svc)["rejected"] == {}
    try:
        svc.openstack("compute", "service", "set", "--disable", "--disable-reason", "disk swap", "lab-h1",
                      "nova-compute")
        svc.openstack("compute", "service", "set", "--disable", "lab-h2", "nova-compute")
        rows = {s["Host"]: s for s in svc.openstack("compute", "service", "list", "--long", as_json=True)}
        assert (rows["lab-h1"]["Status"], rows["lab-h1"]["Disabled Reason"]) == ("disabled", "disk swap")
        assert (rows["lab-h2"]["Status"], rows["lab-h2"]["Disabled Reason"]) == ("disabled", None)
        assert db(svc, "SELECT name, enabled FROM hosts ORDER BY name") == [("lab-h1", 0), ("lab-h2", 0), ("lab-h3", 1)]
        decision = dry_run(svc, count=2)
        assert decision["rejected"] == {"lab-h1": "ComputeFilter", "lab-h2": "ComputeFilter"}
        assert decision["chosen"] == "lab-h3"
        hyp = {h["hypervisor_hostname"]: h for h in call(svc, admin, "GET", f"{V}/os-hypervisors").json()["hypervisors"]}
        assert (hyp["lab-h1"]["status"], hyp["lab-h3"]["status"]) == ("disabled", "enabled")
        zones = call(svc, admin, "GET", f"{V}/os-availability-zone/detail").json()["availabilityZoneInfo"]
        assert list(zones[0]["hosts"]) == ["lab-h3"]  # disabled services are not listed
        svc.openstack("compute", "service", "set", "--disable", "lab-h3", "nova-compute")
        refused = dry_run(svc)
        assert refused["chosen"] is None and set(refused["rejected"]) == set(HOSTS)
        zones = call(svc, member, "GET", f"{V}/os-availability-zone").json()["availabilityZoneInfo"]
        assert zones == [{"zoneName": "nova", "zoneState": {"available": False}, "hosts": None}]
    finally:
        for host in HOSTS:
            svc.openstack("compute", "service", "set", "--enable", host, "nova-compute")
    assert dry_run(svc)["rejected"] == {}
    # forced down (2.11): the host counts as down for the scheduler until forced up
    try:
        svc.openstack("compute", "service", "set", "--down", "lab-h2", "nova-compute")
        rows = {s["Host"]: s for s in svc.openstack("compute", "service", "list", "--long", as_json=True)}
        assert (rows["lab-h2"]["State"], rows["lab-h2"]["Forced Down"]) == ("down", True)
        assert dry_run(svc)["rejected"] == {"lab-h2": "ComputeFilter"}
    finally:
        svc.openstack("compute", "service", "set", "--up", "lab-h2", "nova-compute")
    assert dry_run(svc)["rejected"] == {}
    fault(call(svc, member, "GET", f"{V}/os-services"), 403, "forbidden")
    assert svc.openstack("compute", "service", "list", cloud=MEMBER, check=False).returncode != 0


def test_service_api_per_microversion(lab: dict[str, Any]) -> None:
    svc, admin = lab["svc"], lab["admin"]
    old = call(svc, admin, "GET", f"{V}/os-services", "2.1").json()["services"]
    assert all(set(s) == SERVICE_21 and isinstance(s["id"], int) for s in old)
    assert all(set(s) == SERVICE_21 | {"forced_down"} for s in call(svc, admin, "GET", f"{V}/os-services", "2.11")
               .json()["services"])
    only = call(svc, admin, "GET", f"{V}/os-services", params={"host": "lab-h3", "binary": "nova-compute"}).json()
    assert [s["host"] for s in only["services"]] == ["lab-h3"]
    assert call(svc, admin, "GET", f"{V}/os-services", params={"binary": "nova-scheduler"}).json() == {"services": []}
    ids = service_ids(svc, admin)
    try:
        # before 2.53: actions in the path, host and binary in the body
        r = call(svc, admin, "PUT", f"{V}/os-services/disable-log-reason", "2.1", json={
            "host": "lab-h1", "binary": "nova-compute", "disabled_reason": "fans"})
        assert r.status_code == 200 and r.json() == {"service": {"host": "lab-h1", "binary": "nova-compute",
                                                                 "status": "disabled", "disabled_reason": "fans"}}
        r = call(svc, admin, "PUT", f"{V}/os-services/enable", "2.1", json={"host": "lab-h1", "binary": "nova-compute"})
        assert r.json() == {"service": {"host": "lab-h1", "binary": "nova-compute", "status": "enabled"}}
        fault(call(svc, admin, "PUT", f"{V}/os-services/disable-log-reason", "2.1", json={
            "host": "lab-h1", "binary": "nova-compute"}), 400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-services/reboot", "2.1", json={
            "host": "lab-h1", "binary": "nova-compute"}), 404, "itemNotFound")
        fault(call(svc, admin, "PUT", f"{V}/os-services/force-down", "2.10", json={
            "host": "lab-h1", "binary": "nova-compute", "forced_down": True}), 404, "itemNotFound")
        fault(call(svc, admin, "PUT", f"{V}/os-services/disable", "2.1", json={
            "host": "lab-h1", "binary": "nova-scheduler"}), 400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-services/disable", "2.1", json={
            "host": "lab-h9", "binary": "nova-compute"}), 404, "itemNotFound")
        r = call(svc, admin, "PUT", f"{V}/os-services/force-down", "2.11", json={
            "host": "lab-h1", "binary": "nova-compute", "forced_down": True})
        assert r.json() == {"service": {"host": "lab-h1", "binary": "nova-compute", "forced_down": True}}
        # from 2.53: the service's uuid in the path
        r = call(svc, admin, "PUT", f"{V}/os-services/{ids['lab-h1']}", "2.53", json={"forced_down": False,
                                                                                     "status": "disabled"})
        assert r.status_code == 200, r.text
        shown = r.json()["service"]
        assert set(shown) == SERVICE_21 | {"forced_down"} and shown["id"] == ids["lab-h1"]
        assert (shown["status"], shown["state"], shown["forced_down"], shown["disabled_reason"]) == (
            "disabled", "up", False, None)
        fault(call(svc, admin, "PUT", f"{V}/os-services/{ids['lab-h1']}", "2.53", json={
            "status": "enabled", "disabled_reason": "x"}), 400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-services/{ids['lab-h1']}", "2.53", json={}), 400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-services/{ids['lab-h1']}", "2.53", json={"status": "off"}),
              400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-services/lab-h1", "2.53", json={"status": "enabled"}), 400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-services/{uuid.uuid4()}", "2.53", json={"status": "enabled"}),
              404, "itemNotFound")
        fault(call(svc, lab["member"], "PUT", f"{V}/os-services/{ids['lab-h1']}", "2.53", json={
            "status": "enabled"}), 403, "forbidden")
    finally:
        call(svc, admin, "PUT", f"{V}/os-services/{ids['lab-h1']}", "2.53", json={"status": "enabled",
                                                                                 "forced_down": False})
    assert db(svc, "SELECT enabled, forced_down, disabled_reason FROM hosts WHERE name = 'lab-h1'") == [(1, 0, None)]
    fault(call(svc, admin, "DELETE", f"{V}/os-services/not-a-uuid", "2.53"), 400, "badRequest")
    fault(call(svc, admin, "DELETE", f"{V}/os-services/abc", "2.1"), 400, "badRequest")
    fault(call(svc, admin, "DELETE", f"{V}/os-services/{uuid.uuid4()}", "2.53"), 404, "itemNotFound")


def test_availability_zones_and_aggregates(lab: dict[str, Any]) -> None:
    svc, admin, member = lab["svc"], lab["admin"], lab["member"]
    zone, other_zone = f"hst-az-{SUFFIX}", f"hst-az2-{SUFFIX}"
    assert svc.openstack("availability", "zone", "list", "--compute", cloud=MEMBER, as_json=True) == [
        {"Zone Name": "nova", "Zone Status": "available"}]
    made = svc.openstack("aggregate", "create", "--zone", zone, "--property", "ssd=true", f"hst-agg-{SUFFIX}",
                         as_json=True)
    agg = made["id"]
    agg2 = None
    try:
        assert made["availability_zone"] == zone
        svc.openstack("aggregate", "add", "host", str(agg), "lab-h1")
        shown = svc.openstack("aggregate", "show", str(agg), as_json=True)
        assert shown["hosts"] == ["lab-h1"] and shown["availability_zone"] == zone
        assert shown["properties"] == {"ssd": "true"}  # the client shows the zone apart from the metadata
        services = {s["host"]: s for s in call(svc, admin, "GET", f"{V}/os-services").json()["services"]}
        assert (services["lab-h1"]["zone"], services["lab-h2"]["zone"]) == (zone, "nova")
        assert db(svc, "SELECT availability_zone FROM hosts WHERE name = 'lab-h1'") == [(zone,)]
        zones = {z["Zone Name"] for z in svc.openstack("availability", "zone", "list", "--compute", cloud=MEMBER,
                                                       as_json=True)}
        assert zones == {zone, "nova"}
        long = svc.openstack("availability", "zone", "list", "--compute", "--long", as_json=True)
        assert {(z["Zone Name"], z["Host Name"]) for z in long} == {(zone, "lab-h1"), ("nova", "lab-h2"),
                                                                   ("nova", "lab-h3")}
        probe = svc.cli("server", "create", f"hst-probe-{SUFFIX}", "--flavor", "hst.nano", "--image", "tiny",
                        "--project", PROJECT, "--az", zone, "--dry-run", "-f", "json")
        assert json.loads(probe.stdout)["chosen"] == "lab-h1"
        # views per microversion
        old = call(svc, admin, "GET", f"{V}/os-aggregates/{agg}", "2.1").json()["aggregate"]
        assert set(old) == AGGREGATE_21 and old["hosts"] == ["lab-h1"] and old["deleted"] is False
        new = call(svc, admin, "GET", f"{V}/os-aggregates/{agg}", "2.41").json()["aggregate"]
        assert set(new) == AGGREGATE_21 | {"uuid"} and uuid.UUID(new["uuid"])
        assert all(set(a) == AGGREGATE_21 | {"uuid"} for a in call(svc, admin, "GET", f"{V}/os-aggregates", "2.41")
                   .json()["aggregates"])
        r = call(svc, admin, "POST", f"{V}/os-aggregates", "2.41", json={"aggregate": {
            "name": f"hst-agg2-{SUFFIX}", "availability_zone": other_zone}})
        assert r.status_code == 200 and set(r.json()["aggregate"]) == AGGREGATE_21 - {"hosts", "metadata"} | {"uuid"}
        agg2 = r.json()["aggregate"]["id"]
        # membership and zone rules
        action = f"{V}/os-aggregates/{agg}/action"
        fault(call(svc, admin, "POST", action, json={"add_host": {"host": "lab-h1"}}), 409, "conflictingRequest")
        fault(call(svc, admin, "POST", action, json={"add_host": {"host": "lab-h9"}}), 404, "itemNotFound")
        fault(call(svc, admin, "POST", action, json={"remove_host": {"host": "lab-h2"}}), 404, "itemNotFound")
        fault(call(svc, admin, "POST", f"{V}/os-aggregates/{agg2}/action", json={"add_host": {"host": "lab-h1"}}),
              409, "conflictingRequest")
        assert "not empty" in fault(call(svc, admin, "DELETE", f"{V}/os-aggregates/{agg}"), 400, "badRequest")
        r = call(svc, admin, "POST", action, json={"set_metadata": {"metadata": {"ssd": None, "gpu": "none"}}})
        assert r.status_code == 200 and r.json()["aggregate"]["metadata"] == {"availability_zone": zone, "gpu": "none"}
        moved = f"hst-az3-{SUFFIX}"
        r = call(svc, admin, "PUT", f"{V}/os-aggregates/{agg}", json={"aggregate": {"availability_zone": moved,
                                                                                    "name": f"hst-aggr-{SUFFIX}"}})
        assert r.status_code == 200 and r.json()["aggregate"]["availability_zone"] == moved
        assert db(svc, "SELECT availability_zone FROM hosts WHERE name = 'lab-h1'") == [(moved,)]
        fault(call(svc, admin, "PUT", f"{V}/os-aggregates/{agg}", json={"aggregate": {"name": f"hst-agg2-{SUFFIX}"}}),
              409, "conflictingRequest")
        for bad in ({"aggregate": {}}, {"aggregate": {"availability_zone": None}}, {"aggregate": {"colour": "x"}}):
            fault(call(svc, admin, "PUT", f"{V}/os-aggregates/{agg}", json=bad), 400, "badRequest")
        for bad in ({"aggregate": {"name": "x", "availability_zone": "a:b"}}, {"aggregate": {"name": ""}},
                    {"aggregate": {"name": "x", "hosts": []}}, {"aggregates": {}}):
            fault(call(svc, admin, "POST", f"{V}/os-aggregates", json=bad), 400, "badRequest")
        for bad in ({"reboot": {}}, {"add_host": {"host": "a b"}}, {"set_metadata": {"metadata": {"a/b": "c"}}},
                    {"add_host": {"host": "lab-h2"}, "remove_host": {"host": "lab-h1"}}):
            fault(call(svc, admin, "POST", action, json=bad), 400, "badRequest")
        fault(call(svc, admin, "GET", f"{V}/os-aggregates/abc"), 400, "badRequest")
        fault(call(svc, admin, "GET", f"{V}/os-aggregates/999999"), 404, "itemNotFound")
        fault(call(svc, admin, "GET", f"{V}/os-aggregates/99999999999999"), 404, "itemNotFound")
        fault(call(svc, admin, "POST", f"{V}/os-aggregates", json={"aggregate": {"name": f"hst-agg2-{SUFFIX}"}}),
              409, "conflictingRequest")
        for method, path in (("GET", "/os-aggregates"), ("GET", f"/os-aggregates/{agg}"),
                             ("DELETE", f"/os-aggregates/{agg}")):
            fault(call(svc, member, method, V + path), 403, "forbidden")
        fault(call(svc, member, "POST", action, json={"add_host": {"host": "lab-h2"}}), 403, "forbidden")
        fault(call(svc, member, "GET", f"{V}/os-availability-zone/detail"), 403, "forbidden")
        svc.openstack("aggregate", "remove", "host", str(agg), "lab-h1")
        assert db(svc, "SELECT availability_zone FROM hosts WHERE name = 'lab-h1'") == [("nova",)]
    finally:
        for aggregate in (agg, agg2):
            if aggregate is not None:
                for host in call(svc, admin, "GET", f"{V}/os-aggregates/{aggregate}").json().get(
                        "aggregate", {}).get("hosts", []):
                    call(svc, admin, "POST", f"{V}/os-aggregates/{aggregate}/action", json={"remove_host": {"host": host}})
                call(svc, admin, "DELETE", f"{V}/os-aggregates/{aggregate}")
    assert svc.openstack("aggregate", "list", as_json=True) == []
    assert db(svc, "SELECT count(*) FROM hosts WHERE availability_zone != 'nova'") == [(0,)]


def test_a_host_with_a_server(lab: dict[str, Any]) -> None:
    """A real server on lab-h3: counted by its hypervisor; its host cannot change zone or be deleted."""
    svc, admin = lab["svc"], lab["admin"]
    name = f"hst-vm-{SUFFIX}"
    try:
        for host in ("lab-h1", "lab-h2"):
            svc.openstack("compute", "service", "set", "--disable", host, "nova-compute")
        svc.cli("server", "create", name, "--flavor", "hst.nano", "--image", "tiny", "--project", PROJECT, "--wait",
                timeout=900)
    finally:
        for host in ("lab-h1", "lab-h2"):
            svc.openstack("compute", "service", "set", "--enable", host, "nova-compute")
    (server, host, state), = db(svc, "SELECT uuid, host, vm_state FROM instances WHERE name = ?", name)
    assert (host, state) == ("lab-h3", "active")
    agg = None
    try:
        shown = svc.openstack("hypervisor", "show", "lab-h3", as_json=True)
        assert (shown["running_vms"], shown["vcpus_used"], shown["memory_mb_used"]) == (1, 1, 512 + 128)
        stats = call(svc, admin, "GET", f"{V}/os-hypervisors/statistics").json()["hypervisor_statistics"]
        assert stats["running_vms"] == 1 and stats["vcpus_used"] == 1
        hyp = call(svc, admin, "GET", f"{V}/os-hypervisors/detail", "2.75", params={"with_servers": "1"}).json()
        servers = {h["hypervisor_hostname"]: h["servers"] for h in hyp["hypervisors"]}
        assert servers == {"lab-h1": [], "lab-h2": [], "lab-h3": [{"name": name, "uuid": server}]}
        before = call(svc, admin, "GET", f"{V}/os-hypervisors", "2.53", params={"with_servers": "true"}).json()
        assert {h["hypervisor_hostname"]: "servers" in h for h in before["hypervisors"]} == {
            "lab-h1": False, "lab-h2": False, "lab-h3": True}
        zoned = call(svc, admin, "POST", f"{V}/os-aggregates", json={"aggregate": {
            "name": f"hst-zoned-{SUFFIX}", "availability_zone": f"hst-z-{SUFFIX}"}}).json()["aggregate"]["id"]
        try:
            moved = call(svc, admin, "POST", f"{V}/os-aggregates/{zoned}/action", json={"add_host": {"host": "lab-h3"}})
            assert "already has 1 instance(s)" in fault(moved, 409, "conflictingRequest")
        finally:
            call(svc, admin, "DELETE", f"{V}/os-aggregates/{zoned}")
        agg = call(svc, admin, "POST", f"{V}/os-aggregates", json={"aggregate": {
            "name": f"hst-plain-{SUFFIX}"}}).json()["aggregate"]["id"]
        r = call(svc, admin, "POST", f"{V}/os-aggregates/{agg}/action", json={"add_host": {"host": "lab-h3"}})
        assert r.status_code == 200 and r.json()["aggregate"]["hosts"] == ["lab-h3"]
        refused = call(svc, admin, "POST", f"{V}/os-aggregates/{agg}/action", json={"set_metadata": {
            "metadata": {"availability_zone": f"hst-z-{SUFFIX}"}}})
        assert "contain instances" in fault(refused, 400, "badRequest")
        fault(call(svc, admin, "PUT", f"{V}/os-aggregates/{agg}", json={"aggregate": {
            "availability_zone": f"hst-z-{SUFFIX}"}}), 400, "badRequest")
        assert db(svc, "SELECT availability_zone FROM hosts WHERE name = 'lab-h3'") == [("nova",)]
        sid = service_ids(svc, admin)["lab-h3"]
        assert "hosting instances" in fault(call(svc, admin, "DELETE", f"{V}/os-services/{sid}", "2.53"),
                                            409, "conflictingRequest")
    finally:
        svc.cli("server", "delete", name, "--project", PROJECT, timeout=900)
    assert db(svc, "SELECT count(*) FROM instances WHERE name = ? AND deleted_at IS NULL", name) == [(0,)]
    # with no server left the zone may change, and the service may go (it leaves its aggregates)
    r = call(svc, admin, "POST", f"{V}/os-aggregates/{agg}/action", json={"set_metadata": {
        "metadata": {"availability_zone": f"hst-z-{SUFFIX}"}}})
    assert r.status_code == 200
    assert db(svc, "SELECT availability_zone FROM hosts WHERE name = 'lab-h3'") == [(f"hst-z-{SUFFIX}",)]
    sid = service_ids(svc, admin)["lab-h3"]
    assert call(svc, admin, "DELETE", f"{V}/os-services/{sid}", "2.53").status_code == 204
    assert db(svc, "SELECT count(*) FROM hosts WHERE name = 'lab-h3'") == [(0,)]
    assert call(svc, admin, "GET", f"{V}/os-aggregates/{agg}").json()["aggregate"]["hosts"] == []
    assert call(svc, admin, "DELETE", f"{V}/os-aggregates/{agg}").status_code == 200
    assert sorted(h["hypervisor_hostname"] for h in call(svc, admin, "GET", f"{V}/os-hypervisors").json()[
        "hypervisors"]) == ["lab-h1", "lab-h2"]
