"""_volume: pool and volume specs, the XML built and parsed back, the volume plan (cases/volume_plan) and the
attachment helpers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ansible_collections.kvmfleet.compute.plugins.module_utils import _volume as v
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError, WaitTimeout
from conftest import case_params


@pytest.mark.parametrize("case", case_params("volume_plan"))
def test_volume_plan(case):
    if "error" in case:
        with pytest.raises(ValidationError) as info:
            v.volume_plan(case["have"], case["want"])
        assert case["error"] in info.value.msg
    else:
        assert [list(step) for step in v.volume_plan(case["have"], case["want"])] == case["steps"]


def test_dir_pool_defaults_and_normalises_its_path():
    assert v.pool_spec("vols", "dir") == {"name": "vols", "type": "dir", "path": v.DEFAULT_POOL_PATH, "vg": None}
    assert v.pool_spec("vols", "dir", "/srv/nfs//volumes/")["path"] == "/srv/nfs/volumes"


def test_logical_pool_lives_in_dev_vg():
    want = {"name": "lvm", "type": "logical", "path": "/dev/vg0", "vg": "vg0"}
    assert v.pool_spec("lvm", "logical", pool_vg="vg0") == want


@pytest.mark.parametrize("args, says", [
    (("bad name", "dir"), "pool name"),
    (("p<x>", "dir"), "not a valid name"),
    (("p", "zfs"), "pool_type 'zfs' must be one of dir, logical"),
    (("p", "dir", "relative"), "must be an absolute path"),
    (("p", "dir", "/a/../etc"), "must not contain '..'"),
    (("p", "dir", "/"), "must not be /"),
    (("p", "dir", None, "vg0"), "pool_vg is only for pool_type logical"),
    (("p", "logical"), "pool_vg (an existing LVM volume group) is required"),
    (("p", "logical", "/srv", "vg0"), "pool_path is only for pool_type dir"),
    (("p", "logical", None, "vg;rm"), "pool_vg"),
])
def test_bad_pool_specs_are_refused(args, says):
    with pytest.raises(ValidationError) as info:
        v.pool_spec(*args)
    assert says in info.value.msg


def test_volume_format_defaults_and_logical_holds_raw_only():
    assert v.volume_format("dir", None) == "qcow2"
    assert v.volume_format("dir", "raw") == "raw"
    assert v.volume_format("logical", None) == "raw"
    with pytest.raises(ValidationError, match="not possible on a logical pool"):
        v.volume_format("logical", "qcow2")
    with pytest.raises(ValidationError, match="must be one of"):
        v.volume_format("dir", "vmdk")


def test_pool_xml_round_trips():
    for spec in (v.pool_spec("vols", "dir", "/srv/vols"), v.pool_spec("lvm", "logical", pool_vg="vg0")):
        assert v.parse_pool_xml(v.build_pool_xml(spec)) == spec
    root = ET.fromstring(v.build_pool_xml(v.pool_spec("lvm", "logical", pool_vg="vg0")))
    assert root.get("type") == "logical" and root.find("source/format").get("type") == "lvm2"


def test_pool_differences_name_the_field():
    have = v.pool_spec("p", "dir", "/srv/a")
    assert v.pool_differences(have, v.pool_spec("p", "dir", "/srv/a")) == []
    assert v.pool_differences(have, v.pool_spec("p", "dir", "/srv/b")) == ["path /srv/a, not /srv/b"]
    assert v.pool_differences(have, v.pool_spec("p", "logical", pool_vg="vg0")) == ["type dir, not logical"]
    lvm = v.pool_spec("p", "logical", pool_vg="vg0")
    assert v.pool_differences(lvm, v.pool_spec("p", "logical", pool_vg="vg1")) == ["volume group vg0, not vg1"]


def test_volume_xml_is_built_by_elements():
    root = ET.fromstring(v.build_volume_xml("vol-1", 2 * v.GIB, "qcow2", "dir"))
    assert root.findtext("name") == "vol-1"
    assert root.find("capacity").get("unit") == "bytes" and root.findtext("capacity") == str(2 * v.GIB)
    assert root.findtext("allocation") == "0" and root.find("target/format").get("type") == "qcow2"
    lv = ET.fromstring(v.build_volume_xml("vol-1", v.GIB, "raw", "logical"))
    assert lv.find("target") is None and lv.find("allocation") is None
    # even a name that slipped past validation could not inject elements
    odd = ET.fromstring(v.build_volume_xml("a</name><x/>", v.GIB, "raw", "dir"))
    assert odd.findtext("name") == "a</name><x/>" and odd.find("x") is None


def test_volume_xml_parses_path_and_format():
    xml = ("<volume type='file'><name>v</name><key>/srv/v</key><target><path>/srv/v</path>"
           "<format type='qcow2'/></target></volume>")
    assert v.parse_volume_xml(xml) == {"name": "v", "path": "/srv/v", "format": "qcow2"}
    lv = "<volume type='block'><name>v</name><key>abc</key><target><path>/dev/vg0/v</path></target></volume>"
    assert v.parse_volume_xml(lv)["format"] == "raw"


def test_disk_xml_for_files_and_block_devices():
    disk = ET.fromstring(v.build_disk_xml("/srv/v", "qcow2", "vdc", "6f1c7a4e-0b5f-4a8e-9"))
    assert disk.get("type") == "file" and disk.find("source").get("file") == "/srv/v"
    assert disk.find("target").attrib == {"dev": "vdc", "bus": "virtio"}
    assert disk.find("driver").attrib == {"name": "qemu", "type": "qcow2"}
    assert disk.findtext("serial") == "6f1c7a4e-0b5f-4a8e-9"
    block = ET.fromstring(v.build_disk_xml("/dev/vg0/v", "raw", "vdb", block=True))
    assert block.get("type") == "block" and block.find("source").get("dev") == "/dev/vg0/v"
    assert block.find("serial") is None


DOMAIN = """<domain type='qemu'><name>web1</name><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/i/web1/disk'/>
<target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/i/web1/disk.config'/>
<target dev='vdb' bus='virtio'/><readonly/></disk>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/srv/vols/v1'/>
<target dev='vdd' bus='virtio'/><serial>abc</serial></disk>
</devices></domain>"""


def test_domain_disks_and_the_first_free_target():
    disks = v.domain_disks(DOMAIN)
    assert [d["target"] for d in disks] == ["vda", "vdb", "vdd"]
    found = v.find_disk(disks, "/srv/vols//v1")
    assert found["serial"] == "abc" and found["format"] == "qcow2" and "<serial>abc</serial>" in found["element"]
    assert v.find_disk(disks, "/srv/vols/v2") is None
    assert v.first_free_target(disks) == "vdc"
    assert v.first_free_target([]) == "vda"
    many = [{"target": "vd" + chr(ord("a") + i)} for i in range(26)]
    assert v.first_free_target(many) == "vdaa"


@pytest.mark.parametrize("active, config, live, attach, detach", [
    (True, None, None, 1 | 2, 0),
    (True, {"t": 1}, None, 1, 2),
    (True, None, {"t": 1}, 2, 1),
    (True, {"t": 1}, {"t": 1}, 0, 1 | 2),
    (False, None, None, 2, 0),
    (False, {"t": 1}, None, 0, 2),
])
def test_attachment_plan_touches_only_the_sides_that_need_it(active, config, live, attach, detach):
    assert v.attachment_plan(active, config, live) == (attach, detach)


@pytest.mark.parametrize("serial", ["6f1c7a4e-0b5f-4a8e-9", "a", "ABC-123"])
def test_good_serials(serial):
    assert v.validate_serial(serial) == serial


@pytest.mark.parametrize("serial", ["", "6f1c7a4e-0b5f-4a8e-9a", "a b", "a<b>", "a;b", "a/b", 12])
def test_bad_serials(serial):
    with pytest.raises(ValidationError, match="serial"):
        v.validate_serial(serial)


@pytest.mark.parametrize("target, ok", [("vdb", True), ("vdaa", True), ("sda", False), ("vd", False),
                                        ("vdb;x", False), ("vdB", False)])
def test_targets(target, ok):
    if ok:
        assert v.validate_target(target) == target
    else:
        with pytest.raises(ValidationError, match="target"):
            v.validate_target(target)


def test_size_gb_of():
    assert v.size_gb_of(3 * v.GIB) == 3 and v.size_gb_of(int(1.5 * v.GIB)) == 1.5 and v.size_gb_of(None) is None


def test_poll_times_out_on_a_monotonic_clock():
    now = [0.0]
    calls = []

    def check():
        calls.append(now[0])
        return False

    with pytest.raises(WaitTimeout, match="timed out after 2s waiting for vdc to leave web1"):
        v.poll(check, 2, "vdc to leave web1", interval=0.5, clock=lambda: now[0],
               sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert calls[0] == 0.0 and calls[-1] == 2.0
    v.poll(lambda: True, 1, "nothing", clock=lambda: 0.0, sleep=lambda s: None)
