from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._metadata import (
    NAMESPACE,
    PREFIX,
    build_metadata_element,
    metadata_xml,
    parse_metadata,
)
from conftest import case_params


def _domain_with(meta):
    dom = ET.Element("domain", type="qemu")
    ET.SubElement(dom, "name").text = "web1"
    ET.SubElement(dom, "metadata").append(build_metadata_element(meta))
    return ET.tostring(dom, encoding="unicode")


@pytest.mark.parametrize("case", case_params("metadata"))
def test_round_trip(case):
    if "error" in case:
        with pytest.raises(ValidationError) as info:
            build_metadata_element(case["meta"])
        assert case["error"] in info.value.msg
        return
    assert parse_metadata(_domain_with(case["meta"])) == case["expected"]


def test_interface_constants():
    assert NAMESPACE == "https://kvmfleet.dev/xmlns/instance/1"
    assert PREFIX == "kvmfleet"


def test_domain_without_our_metadata_is_not_ours():
    assert parse_metadata("<domain><name>x</name></domain>") is None
    foreign = ('<domain><name>x</name><metadata><o:app xmlns:o="http://example.org/o">'
               "<o:uuid>1</o:uuid></o:app></metadata></domain>")
    assert parse_metadata(foreign) is None


def test_standalone_element_declares_the_namespace_with_our_prefix():
    text = ET.tostring(build_metadata_element({"name": "web1"}), encoding="unicode")
    assert text.startswith(f"<kvmfleet:instance xmlns:kvmfleet=\"{NAMESPACE}\"")


def test_set_metadata_through_libvirt_round_trips():
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML("<domain type='qemu'><name>kf-unit-setmeta</name><memory>65536</memory>"
                             "<os><type>hvm</type></os></domain>")
        try:
            assert metadata_xml({"a": "1"}) == "<instance><a>1</a></instance>"
            dom.setMetadata(2, metadata_xml({"name": "w", "disks": ["/d"]}), PREFIX, NAMESPACE, 2)
            assert parse_metadata(dom.XMLDesc(2)) == {"name": "w", "disks": ["/d"]}
        finally:
            dom.undefine()
    finally:
        conn.close()


def test_round_trip_through_libvirt():
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(_domain_with({"name": "web1", "disks": ["/i/web1/disk"]})
                             .replace("<name>web1</name>", "<name>kf-unit-meta</name><memory>65536</memory>"
                                      "<os><type>hvm</type></os>"))
        try:
            assert parse_metadata(dom.XMLDesc(0)) == {"name": "web1", "disks": ["/i/web1/disk"]}
        finally:
            dom.undefine()
    finally:
        conn.close()
