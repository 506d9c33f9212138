from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils._domain_xml import (
    build_domain_xml,
    check_guest_support,
    disk_target,
    guest_capabilities,
    parse_domain_xml,
    update_config_xml,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from conftest import CASES, case_params


@pytest.mark.parametrize("case", case_params("domain_xml"))
def test_build_then_parse(case):
    if "error" in case:
        with pytest.raises(ValidationError) as info:
            build_domain_xml(case["spec"])
        assert case["error"] in info.value.msg
        return
    xml = build_domain_xml(case["spec"])
    parsed = parse_domain_xml(xml)
    for field, expected in case["expected"].items():
        assert parsed[field] == expected, field
    root = ET.fromstring(xml)
    for path, count in case.get("xpath", []):
        assert len(root.findall(path)) == count, path
    # things every kvmfleet domain needs, whatever the case
    assert root.find("features/acpi") is not None
    assert root.findtext("on_poweroff") == "destroy"
    assert parse_domain_xml(ET.tostring(root, encoding="unicode")) == parsed


def _parse_cases():
    for xml_file in sorted((CASES / "domain_xml_parse").glob("*.xml")):
        expected = json.loads(xml_file.with_suffix(".json").read_text())
        yield pytest.param(xml_file, expected, id=xml_file.stem)


@pytest.mark.parametrize("xml_file, expected", list(_parse_cases()))
def test_parse_real_and_foreign_xml(xml_file: Path, expected):
    parsed = parse_domain_xml(xml_file.read_text())
    for field, value in expected.items():
        assert parsed[field] == value, field


@pytest.mark.parametrize("bus, index, target", [
    ("virtio", 0, "vda"), ("virtio", 25, "vdz"), ("virtio", 26, "vdaa"), ("virtio", 27, "vdab"),
    ("sata", 1, "sdb"), ("scsi", 0, "sda"),
])
def test_disk_target_names(bus, index, target):
    assert disk_target(bus, index) == target


def test_update_config_changes_only_vcpus_and_memory():
    xml = (CASES / "domain_xml_parse" / "kvmfleet-running-libvirt9.xml").read_text()
    before = parse_domain_xml(xml)
    after = parse_domain_xml(update_config_xml(xml, vcpus=3, memory_mb=512))
    assert (after["vcpus"], after["memory_mb"], after["max_memory_mb"]) == (3, 512, 512)
    for field in ("name", "uuid", "disks", "nics", "metadata", "console_log", "machine"):
        assert after[field] == before[field], field


def test_update_config_drops_current_vcpus_and_keeps_untouched_fields():
    xml = (CASES / "domain_xml_parse" / "foreign-hand-made.xml").read_text()
    after = parse_domain_xml(update_config_xml(xml, vcpus=4))
    assert after["vcpus"] == 4
    assert after["memory_mb"] == 4096  # memory not requested, not touched
    with pytest.raises(ValidationError):
        update_config_xml(xml, memory_mb=0)


@pytest.mark.parametrize("case", case_params("guest_support"))
def test_guest_support(case):
    guests = guest_capabilities((CASES / "capabilities" / case["capabilities"]).read_text())
    args = (guests, case["virt_type"], case["arch"], case["machine"], case["vcpus"])
    if "error" in case:
        with pytest.raises(ValidationError) as info:
            check_guest_support(*args)
        assert case["error"] in info.value.msg
    else:
        check_guest_support(*args)


def test_guest_capabilities_of_a_host_without_kvm():
    caps = (CASES / "capabilities" / "debian12-qemu7.2.xml").read_text().replace("<domain type='kvm'/>", "")
    guests = guest_capabilities(caps)
    assert guests["x86_64"]["domain_types"] == ["qemu"]
    with pytest.raises(ValidationError, match=r"virt_type kvm is not available .*/dev/kvm"):
        check_guest_support(guests, "kvm", "x86_64", None, 1)
