"""kvmfleet.compute.volume, volume_attachment and domain_migrate's shared_disks: what the modules accept and
what they would ask libvirt for. The libvirt work runs on the lab (tests/integration/targets/volume)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

libvirt = pytest.importorskip("libvirt")

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.modules import domain_migrate as dm
from ansible_collections.kvmfleet.compute.plugins.modules import volume as vm
from ansible_collections.kvmfleet.compute.plugins.modules import volume_attachment as va


def volume_params(**over):
    base = {key: spec.get("default") for key, spec in vm.ARGUMENT_SPEC.items()}
    base.update({"pool": "vols", "name": "vol-1", "size_gb": 1})
    base.update(over)
    return vm.VolumeParams(base)


def attachment_params(**over):
    base = {key: spec.get("default") for key, spec in va.ARGUMENT_SPEC.items()}
    base.update({"domain": "web1", "pool": "vols", "volume": "vol-1"})
    base.update(over)
    return va.AttachmentParams(base)


def test_volume_defaults():
    p = volume_params()
    assert p.pool == {"name": "vols", "type": "dir", "path": "/var/lib/kvmfleet/volumes", "vg": None}
    assert p.format is None and p.new_format == "qcow2" and p.state == "present"
    assert volume_params(pool_type="logical", pool_vg="vg0").new_format == "raw"
    assert volume_params(state="absent", size_gb=None).size_gb is None
    # present without a size: an existing volume keeps its size (a missing one is refused by the plan)
    assert volume_params(size_gb=None).size_gb is None


@pytest.mark.parametrize("over, says", [
    ({"name": "vol<1>"}, "volume name 'vol<1>' is not a valid name"),
    ({"name": "a/b"}, "is not a valid name"),
    ({"name": "$(reboot)"}, "is not a valid name"),
    ({"pool": "../x"}, "pool name"),
    ({"size_gb": 0}, "size_gb must be at least 1"),
    ({"pool_type": "logical"}, "pool_vg"),
    ({"pool_type": "logical", "pool_vg": "vg0", "format": "qcow2"}, "not possible on a logical pool"),
    ({"source_image": "/srv/img.qcow2"}, "source_format is required"),
    ({"source_image": "img.qcow2", "source_format": "qcow2"}, "must be an absolute path"),
])
def test_bad_volume_parameters(over, says):
    with pytest.raises(ValidationError) as info:
        volume_params(**over)
    assert says in info.value.msg


def test_attachment_parameters():
    p = attachment_params(serial="6f1c7a4e-0b5f-4a8e-9")
    assert (p.pool, p.volume, p.path, p.format, p.target, p.timeout) == ("vols", "vol-1", None, None, None, 30)
    q = attachment_params(pool=None, volume=None, path="/srv/vols//v1", format="raw", target="vdc")
    assert q.path == "/srv/vols/v1" and q.target == "vdc"
    assert attachment_params(pool=None, volume=None, path="/srv/v", state="absent").format is None


@pytest.mark.parametrize("over, says", [
    ({"pool": None, "volume": None}, "give path, or pool and volume"),
    ({"volume": None}, "give path, or pool and volume"),
    ({"path": "/srv/v"}, "mutually exclusive"),
    ({"pool": None, "volume": None, "path": "/srv/v"}, "format is required"),
    ({"pool": None, "volume": None, "path": "srv/v", "format": "raw"}, "absolute path"),
    ({"serial": "x" * 21}, "serial"),
    ({"serial": "a b"}, "serial"),
    ({"target": "sdb"}, "target"),
    ({"domain": "web1;reboot"}, "domain name"),
    ({"timeout": 0}, "timeout must be at least 1"),
])
def test_bad_attachment_parameters(over, says):
    with pytest.raises(ValidationError) as info:
        attachment_params(**over)
    assert says in info.value.msg


def migrate_params(**over):
    base = {key: spec.get("default") for key, spec in dm.ARGUMENT_SPEC.items()}
    base.update({"name": "web1", "dest_uri": "qemu+ssh://root@kvm2/system"})
    base.update(over)
    return dm.MigrateParams(base)


DOMAIN = """<domain type='qemu'><name>web1</name><devices>
<disk type='file' device='disk'><source file='/i/web1/disk'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><source file='/i/web1/disk.config'/><target dev='vdb' bus='virtio'/><readonly/></disk>
<disk type='file' device='disk'><source file='/srv/nfs/v1'/><target dev='vdc' bus='virtio'/></disk>
<disk type='block' device='disk'><source dev='/dev/vg0/v2'/><target dev='vdd' bus='virtio'/></disk>
<disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
</devices></domain>"""


def test_shared_disks_are_left_out_of_migrate_disks():
    assert dm.migrate_disks(DOMAIN, ["/srv/nfs/v1"]) == ["vda", "vdd"]
    assert dm.migrate_disks(DOMAIN, ["/srv/nfs/v1", "/dev/vg0/v2", "/i/web1/disk"]) == []
    with pytest.raises(ValidationError, match="shared_disks /srv/nfs/typo: not a writable disk"):
        dm.migrate_disks(DOMAIN, ["/srv/nfs/typo"])
    with pytest.raises(ValidationError, match="not a writable disk"):
        dm.migrate_disks(DOMAIN, ["/i/web1/disk.config"])  # read-only: never copied anyway


def test_shared_disks_parameters_and_flags():
    assert migrate_params().shared_disks == []
    assert migrate_params(shared_disks=["/srv/nfs//v1"]).shared_disks == ["/srv/nfs/v1"]
    with pytest.raises(ValidationError, match="shared_disks entry"):
        migrate_params(shared_disks=["v1"])
    with pytest.raises(ValidationError, match="with copy_storage none no disk is copied"):
        migrate_params(shared_disks=["/srv/nfs/v1"], copy_storage="none")
    manager = dm.MigrateManager(migrate_params(shared_disks=["/srv/nfs/v1"]))
    assert manager._flags(["vda"]) & libvirt.VIR_MIGRATE_NON_SHARED_INC
    assert not manager._flags([]) & (libvirt.VIR_MIGRATE_NON_SHARED_INC | libvirt.VIR_MIGRATE_NON_SHARED_DISK)
    assert not manager._flags() & libvirt.VIR_MIGRATE_UNSAFE
    assert dm.MigrateManager(migrate_params(unsafe=True))._flags() & libvirt.VIR_MIGRATE_UNSAFE
