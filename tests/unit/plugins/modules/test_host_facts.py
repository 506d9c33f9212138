"""host_facts: assembly from data-file cases, and the collector against libvirt's test driver."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if (_COLLECTIONS / "ansible_collections").is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.kvmfleet.compute.plugins.module_utils import _host
from ansible_collections.kvmfleet.compute.plugins.modules import host_facts

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "host_facts"
CASES = sorted((FIXTURES / "cases").glob("*.json"))


def _text(kind, name):
    return (FIXTURES / kind / name).read_text() if name else ""


def observation(case):
    return _host.HostObservation(
        hostname=case["hostname"],
        capabilities_xml=_text("capabilities", case["capabilities"]),
        node_info=case["node_info"],
        hypervisor_type=case["hypervisor_type"],
        hypervisor_version=case["hypervisor_version"],
        libvirt_version=case["libvirt_version"],
        cpuinfo=_text("proc", case["cpuinfo"]),
        meminfo=_text("proc", case["meminfo"]),
        free_memory_bytes=case["free_memory_bytes"],
        kvm_device=case["kvm_device"],
        kvm_domain_capabilities=case["kvm_domain_capabilities"],
        emulators=case["emulators"],
        domains=[{"xml": _text("domains", d["xml"]), "power_state": d["power_state"]} for d in case["domains"]],
        images_storage=case["storage"]["images"],
        instances_storage=case["storage"]["instances"],
        networks=[{**n, "xml": _text("networks", n["xml"])} for n in case.get("networks", [])],
    )


def test_cases_exist():
    assert len(CASES) >= 5


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_build_host_facts(path):
    case = json.loads(path.read_text())
    facts = _host.build_host_facts(observation(case))
    for key, expected in case["expected"].items():
        assert facts[key] == expected, key
    for flag in case.get("expected_cpu_flags_include", []):
        assert flag in facts["cpu_flags"]
    assert facts["cpu_flags"] == sorted(set(facts["cpu_flags"]))
    # the facts are what goes over the wire: plain JSON
    assert json.loads(json.dumps(facts)) == facts


@pytest.mark.parametrize("number, text", [(7002022, "7.2.22"), (9000000, "9.0.0"), (10010001, "10.10.1"), (0, None)])
def test_version_string(number, text):
    assert _host.version_string(number) == text


@pytest.mark.parametrize("value, unit, mib", [
    ("2097152", "KiB", 2048), ("2097152", None, 2048), ("8", "GiB", 8192), ("1024", "MiB", 1024),
    ("1073741824", "b", 1024), ("1000000", "KB", 953), ("2", "G", 2048),
])
def test_to_mib(value, unit, mib):
    assert _host.to_mib(value, unit) == mib


def test_parse_domain_keeps_only_kvmfleet_metadata():
    dom = _host.parse_domain(_text("domains", "kvmfleet-db1-shutoff.xml"))
    assert dom["metadata"]["project"] == "billing"
    assert "note" not in dom["metadata"]
    assert _host.parse_domain(_text("domains", "foreign-other-metadata.xml"))["metadata"] is None
    legacy = _host.parse_domain(_text("domains", "foreign-legacy-vm.xml"))
    assert legacy["metadata"] is None and legacy["disks"] == ["/dev/vg0/legacy"]


def test_measure_storage_uses_nearest_existing_ancestor(tmp_path):
    missing = tmp_path / "kvmfleet" / "instances"
    measured = _host.measure_storage(str(missing))
    assert measured["measured_path"] == str(tmp_path)
    assert measured["exists"] is False
    st = os.statvfs(tmp_path)
    assert measured["total_bytes"] == st.f_blocks * st.f_frsize
    assert 0 < measured["free_bytes"] <= measured["total_bytes"]
    missing.mkdir(parents=True)
    again = _host.measure_storage(str(missing))
    assert again["exists"] is True and again["measured_path"] == str(missing)


def test_kvm_device_problem(tmp_path):
    assert host_facts.kvm_device_problem(str(tmp_path / "kvm")) == "%s does not exist" % (tmp_path / "kvm")
    problem = host_facts.kvm_device_problem(str(tmp_path))  # a directory cannot be opened read-write
    assert problem.startswith(f"{tmp_path} cannot be opened: ")
    null = host_facts.kvm_device_problem("/dev/null")
    assert null is None


def test_collector_against_libvirt_test_driver(tmp_path):
    """The real libvirt API through its in-process test driver (one built-in domain, 'test')."""
    pytest.importorskip("libvirt")
    params = host_facts.HostFactsParameters(uri="test:///default", images_dir=str(tmp_path / "images"),
                                            instances_dir=str(tmp_path / "instances"))
    result = host_facts.HostFactsManager(params).run()
    facts = result["host_facts"]
    assert result["changed"] is False
    assert facts["hypervisor_type"] == "TEST"
    assert facts["libvirt_version"].count(".") == 2
    assert facts["arch"] == "i686"
    # the test driver cannot report domain capabilities, so kvm is never usable through it
    assert facts["kvm_usable"] is False and "kvm" not in facts["virt_types"]
    assert facts["kvm_unusable_reason"]
    assert facts["foreign_domains"] == 1 and facts["instances"] == []
    # its built-in NAT network; the test driver cannot report leases, which is no failure
    assert [n["name"] for n in facts["networks"]] == ["default"]
    assert facts["networks"][0]["subnets"][0]["cidr"] == "192.168.122.0/24"
    assert facts["networks"][0]["dhcp_leases"] == [] and facts["networks"][0]["dhcp_leases_error"]
    assert facts["storage"]["images"]["measured_path"] == str(tmp_path)
    assert facts["vcpus"] == 16


def test_collector_reports_disk_capacities_of_kvmfleet_domains(tmp_path):
    """Each kvmfleet domain's disks get their virtual size by path (what a store rebuild sizes a flavor
    from); the keys the facts had before stay as they were."""
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")  # the same in-process driver state the module connects to
    dom = conn.defineXML(_text("domains", "kvmfleet-db1-shutoff.xml"))
    try:
        params = host_facts.HostFactsParameters(uri="test:///default", images_dir=str(tmp_path / "images"),
                                                instances_dir=str(tmp_path / "instances"))
        facts = host_facts.HostFactsManager(params).run()["host_facts"]
    finally:
        dom.undefine()
        conn.close()
    [inst] = facts["instances"]
    assert sorted(inst) == ["disk_capacities", "disks", "domain", "memory_mb", "metadata", "nics", "power_state",
                            "uuid", "vcpus", "virt_type"]
    assert sorted(inst["disk_capacities"]) == sorted(inst["disks"])
    assert all(isinstance(size, int) and size > 0 for size in inst["disk_capacities"].values())
    assert facts["foreign_domains"] == 1  # the driver's own 'test' domain: counted, not measured
