"""kvmfleet.compute.domain_migrate: what it accepts and what it asks libvirt for. The migration itself needs two
hosts and runs on the lab (tests/integration/targets/domain_migrate)."""

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


def params(**over):
    base = {"uri": "qemu:///system", "name": "web1", "uuid": None, "dest_uri": "qemu+ssh://root@kvm2/system",
            "migrate_uri": None, "live": True, "copy_storage": "inc", "bandwidth": None, "timeout": 600, "abort": False,
            "images_dir": "/var/lib/libvirt/kvmfleet/images", "instances_dir": "/var/lib/libvirt/kvmfleet/instances"}
    base.update(over)
    return dm.MigrateParams(base)


def test_a_destination_is_required_unless_aborting():
    with pytest.raises(ValidationError, match="dest_uri is required"):
        params(dest_uri=None)
    assert params(dest_uri=None, abort=True).dest_uri is None


def test_an_ssh_destination_gets_no_tty_and_keeps_its_query():
    assert params().dest_uri == "qemu+ssh://root@kvm2/system?no_tty=1"
    assert params(dest_uri="qemu+ssh://root@kvm2/system?keyfile=/root/.ssh/k").dest_uri == (
        "qemu+ssh://root@kvm2/system?keyfile=%2Froot%2F.ssh%2Fk&no_tty=1")
    assert params(dest_uri="qemu+ssh://root@kvm2/system?no_tty=1").dest_uri.count("no_tty") == 1
    assert params(dest_uri="qemu+tls://kvm2/system").dest_uri == "qemu+tls://kvm2/system"


@pytest.mark.parametrize("uri, says", [
    ("qemu+ssh://root@kvm2/system?no_verify=1", "no_verify is refused"),
    ("qemu+tls://kvm2/system?no_verify=1", "no_verify is refused"),
    ("qemu:///system", "must be qemu+ssh://HOST/system or qemu+tls://HOST/system"),
    ("qemu+tcp://kvm2/system", "must be qemu+ssh"),
    ("qemu+ssh:///system", "must be qemu+ssh"),
    ("qemu+ssh://root@kvm2/system; reboot", "is not a libvirt URI"),
    ("qemu+ssh://kvm2/system\nx", "is not a libvirt URI"),
])
def test_bad_destinations_are_refused_by_name(uri, says):
    with pytest.raises(ValidationError, match="dest_uri") as err:
        params(dest_uri=uri)
    assert says in str(err.value)


@pytest.mark.parametrize("uri", ["10.0.0.2", "tcp://", "unix:///tmp/s", "tcp://10.0.0.2/x", "tcp://h?x=1"])
def test_bad_migrate_uris_are_refused(uri):
    with pytest.raises(ValidationError, match=r"migrate_uri .* must be tcp://ADDRESS"):
        params(migrate_uri=uri)


def test_names_sizes_and_timeouts_are_checked():
    with pytest.raises(ValidationError, match="not a valid name"):
        params(name="web1;reboot")
    with pytest.raises(ValidationError, match="not a UUID"):
        params(uuid="nope")
    with pytest.raises(ValidationError, match="bandwidth must be at least 1"):
        params(bandwidth=0)
    with pytest.raises(ValidationError, match="timeout must be at least 1"):
        params(timeout=0)
    assert params(migrate_uri="tcp://10.0.0.2:49152").migrate_uri == "tcp://10.0.0.2:49152"


@pytest.mark.parametrize("copy, live, has, lacks", [
    ("inc", True, ["VIR_MIGRATE_LIVE", "VIR_MIGRATE_NON_SHARED_INC"], ["VIR_MIGRATE_NON_SHARED_DISK"]),
    ("all", True, ["VIR_MIGRATE_NON_SHARED_DISK"], ["VIR_MIGRATE_NON_SHARED_INC"]),
    ("none", False, [], ["VIR_MIGRATE_LIVE", "VIR_MIGRATE_NON_SHARED_INC", "VIR_MIGRATE_NON_SHARED_DISK"]),
])
def test_flags(copy, live, has, lacks):
    flags = dm.MigrateManager(params(copy_storage=copy, live=live))._flags()
    always = ["VIR_MIGRATE_PEER2PEER", "VIR_MIGRATE_PERSIST_DEST", "VIR_MIGRATE_UNDEFINE_SOURCE",
              "VIR_MIGRATE_ABORT_ON_ERROR"]
    for name in always + has:
        assert flags & getattr(libvirt, name), name
    for name in lacks:
        assert not flags & getattr(libvirt, name), name


def test_samples_are_thinned_keeping_the_first_and_the_latest():
    class Job:
        def __init__(self):
            self.t = 0

        def jobStats(self, _flags):
            self.t += 500
            return {"type": 2, "time_elapsed": self.t, "data_processed": self.t, "data_remaining": 1}

    manager, job = dm.MigrateManager(params()), Job()
    for _step in range(200):
        manager._sample(job)
    assert len(manager.progress) <= dm.MAX_SAMPLES
    assert manager.progress[0]["time_elapsed_ms"] == 500 and manager.progress[-1]["time_elapsed_ms"] == 100000
    assert manager.migration["time_elapsed_ms"] == 100000
    manager._sample(type("NoJob", (), {"jobStats": lambda self, _f: {"type": 0}})())
    assert manager.migration["time_elapsed_ms"] == 100000  # an ended job does not wipe the last figures
