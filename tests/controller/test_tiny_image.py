"""The tiny guest image: built from Debian packages, cached by inputs, booted for real under QEMU TCG.

Boots use plain qemu-system-x86_64 with `-netdev user,restrict=on` (QEMU answers DHCP itself and
nothing leaves the QEMU process) or no NIC. Boot times are printed (run with -s to see them); the
benchmark (bench/tiny_boot.py) reports figures, these tests only bound them generously.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path

import pytest
from kvmfleet.images import tiny
from kvmfleet.images.tiny_boot import READY_RE, QemuGuest, make_config_drive, make_nocloud_seed

BOOT_TIMEOUT = 120  # seconds to the ready line; generous because the 2 cores are shared with other work
POWEROFF_TIMEOUT = 30


@pytest.fixture(scope="module")
def image() -> tiny.TinyImage:
    return tiny.build_tiny()


def _ready(guest: QemuGuest, what: str) -> tuple[re.Match, float]:
    match, seconds = guest.wait_for(READY_RE, BOOT_TIMEOUT)
    print(f"\ntiny image boot to ready line ({what}): {seconds:.2f} s wall, {guest.cpu_seconds():.2f} s QEMU CPU")
    return match, seconds


# ---------------------------------------------------------------------------------------------- build


def test_build_writes_image_checksum_and_manifest(image):
    assert image.path == tiny.output_dir() / tiny.IMAGE_NAME
    assert image.path.is_file()
    assert 4 << 20 < image.size < 40 << 20, image.size
    assert image.sha256 == tiny._sha256_file(image.path)
    assert (image.path.parent / f"{tiny.IMAGE_NAME}.sha256").read_text().split() == [image.sha256, tiny.IMAGE_NAME]
    manifest = json.loads((image.path.parent / tiny.MANIFEST_NAME).read_text())
    assert manifest == image.manifest
    assert manifest["packages"]["kernel_meta"]["package"] == "linux-image-cloud-amd64"
    assert manifest["packages"]["kernel"]["package"].startswith("linux-image-")
    assert manifest["packages"]["kernel"]["package"].endswith("-cloud-amd64")
    assert manifest["packages"]["busybox"]["package"] == "busybox-static"
    for deb in manifest["packages"].values():
        assert (tiny.debs_dir() / deb["file"]).is_file()


def test_image_is_qcow2_without_backing_file(image):
    import subprocess

    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", str(image.path)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    assert "backing-filename" not in info


def test_second_build_is_served_from_cache(image):
    again = tiny.build_tiny()
    assert again.cached is True
    assert again.sha256 == image.sha256
    assert again.path == image.path


def test_changed_init_script_changes_manifest_and_rebuilds(image, tmp_path):
    init = tmp_path / "init.sh"
    init.write_text(tiny.DEFAULT_INIT.read_text() + "# a changed input\n")
    out = tmp_path / "out"

    changed = tiny.build_tiny(init_script=init, out_dir=out)
    assert changed.cached is False
    assert changed.manifest["scripts"]["init"] != image.manifest["scripts"]["init"]
    assert {k: v for k, v in changed.manifest.items() if k != "scripts"} == \
        {k: v for k, v in image.manifest.items() if k != "scripts"}
    assert json.loads((out / tiny.MANIFEST_NAME).read_text()) == changed.manifest
    assert changed.sha256 != image.sha256

    assert tiny.build_tiny(init_script=init, out_dir=out).cached is True
    forced = tiny.build_tiny(init_script=init, out_dir=out, force=True)
    assert forced.cached is False


def test_missing_init_script_is_refused_and_nothing_written(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(tiny.TinyImageError, match="does-not-exist.sh does not exist"):
        tiny.build_tiny(init_script=tmp_path / "does-not-exist.sh", out_dir=out)
    assert not (out / tiny.IMAGE_NAME).exists()
    assert not (out / tiny.MANIFEST_NAME).exists()


def test_without_apt_lists_the_last_resolution_serves(image, tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    lists.mkdir()
    conf = tmp_path / "apt.conf"
    conf.write_text(f'Dir::State::Lists "{lists}";\n')
    monkeypatch.setenv("APT_CONFIG", str(conf))
    monkeypatch.setattr(tiny, "APT_LISTS", lists)
    with pytest.raises(tiny.TinyImageError, match="busybox-static"):
        tiny._apt_show(["busybox-static"])  # apt really knows no packages now
    again = tiny.build_tiny()
    assert (again.cached, again.sha256) == (True, image.sha256)


def test_cli_build_tiny_json(image):
    from kvmfleet.cli import _register, app
    from typer.testing import CliRunner

    _register()
    result = CliRunner().invoke(app, ["image", "build-tiny", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == {"path": str(image.path), "sha256": image.sha256, "size": image.size, "cached": True}


# -------------------------------------------------------------------------------------- module order

MODULES_DEP = """\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko
kernel/drivers/ata/libata.ko:
"""


def test_module_order_puts_dependencies_first_and_skips_builtins():
    config = {"CONFIG_VIRTIO_PCI": "m", "CONFIG_VIRTIO_BLK": "m", "CONFIG_ACPI_BUTTON": "y", "CONFIG_ATA_PIIX": "m"}
    wanted = [tiny.KernelModule("virtio_pci", "CONFIG_VIRTIO_PCI"),
              tiny.KernelModule("virtio_blk", "CONFIG_VIRTIO_BLK"),
              tiny.KernelModule("button", "CONFIG_ACPI_BUTTON"),
              tiny.KernelModule("ata_piix", "CONFIG_ATA_PIIX", required=False, group="seed-fallback")]
    assert tiny.module_load_order(config, MODULES_DEP, wanted) == [
        ("boot", "kernel/drivers/virtio/virtio_ring.ko"),
        ("boot", "kernel/drivers/virtio/virtio.ko"),
        ("boot", "kernel/drivers/virtio/virtio_pci.ko"),
        ("boot", "kernel/drivers/block/virtio_blk.ko"),
        ("seed-fallback", "kernel/drivers/ata/libata.ko"),
        ("seed-fallback", "kernel/drivers/ata/ata_piix.ko"),
    ]


def test_module_order_refuses_a_required_module_the_kernel_lacks():
    with pytest.raises(tiny.TinyImageError, match="lacks virtio_blk: CONFIG_VIRTIO_BLK is not set"):
        tiny.module_load_order({}, MODULES_DEP, [tiny.KernelModule("virtio_blk", "CONFIG_VIRTIO_BLK")])
    assert tiny.module_load_order({}, MODULES_DEP, [tiny.KernelModule("x", "CONFIG_X", required=False)]) == []


# --------------------------------------------------------------------------------------------- boots


def test_boot_nocloud_seed_user_data_dhcp_and_power_button(image, tmp_path):
    iid = f"iid-{uuid.uuid4().hex[:12]}"
    seed = make_nocloud_seed(tmp_path / "seed.iso", "tiny-test-1", iid,
                             "#!/bin/sh\necho \"user-data-marker-$(hostname)\"\n")
    with QemuGuest(image.path, seed=seed, network="user") as guest:
        match, _ = _ready(guest, "NoCloud iso9660 seed on virtio, user-mode DHCP")
        assert match["hostname"] == "tiny-test-1"
        assert match["instance_id"] == iid
        assert match["ip"] == "10.0.2.15"  # QEMU user-mode DHCP's first address
        serial = guest.serial()
        assert "user-data-marker-tiny-test-1" in serial
        assert serial.index("user-data-marker-tiny-test-1") < serial.index("kvmfleet-guest: ready")

        guest.qmp("system_powerdown")
        rc = guest.wait_exit(POWEROFF_TIMEOUT)
        assert rc == 0, f"QEMU still running {POWEROFF_TIMEOUT}s after system_powerdown\n{guest.serial()[-2000:]}"
        assert "power button pressed, powering off" in guest.serial()


def test_boot_config_drive_on_ide_cdrom_without_network(image, tmp_path):
    instance_uuid = str(uuid.uuid4())
    seed = make_config_drive(tmp_path / "config.iso", instance_uuid, "cfgdrive-host",
                             "#!/bin/sh\necho config-drive-user-data-ran\n")
    with QemuGuest(image.path, seed=seed, seed_bus="ide-cd", network="none") as guest:
        match, _ = _ready(guest, "config drive on IDE cdrom, no NIC")
        assert (match["hostname"], match["ip"], match["instance_id"]) == ("cfgdrive-host", "none", instance_uuid)
        assert "config-drive-user-data-ran" in guest.serial()


@pytest.mark.parametrize("label", ["cidata", "CIDATA"])
def test_boot_vfat_seed_without_script_user_data(image, tmp_path, label):
    seed = make_nocloud_seed(tmp_path / "seed.img", "vfat-host", "iid-vfat",
                             "#cloud-config\nruncmd:\n  - echo should-not-run\n", fs="vfat", label=label)
    with QemuGuest(image.path, seed=seed, network="user") as guest:
        match, _ = _ready(guest, f"NoCloud vfat seed (label {label}) on virtio")
        assert (match["hostname"], match["instance_id"]) == ("vfat-host", "iid-vfat")
        assert "user-data exit" not in guest.serial()


def test_boot_without_seed_uses_defaults(image):
    with QemuGuest(image.path, seed=None, network="none") as guest:
        match, _ = _ready(guest, "no seed, no NIC")
        assert (match["hostname"], match["ip"], match["instance_id"]) == ("kvmfleet-guest", "none", "none")


def test_elf_needed_reads_interpreter_and_libraries():
    interp, needed = tiny.elf_needed(Path(sys.executable).resolve().read_bytes())
    assert interp == "/lib64/ld-linux-x86-64.so.2"
    assert "libc.so.6" in needed
    with pytest.raises(tiny.TinyImageError, match="not a little-endian 64-bit ELF"):
        tiny.elf_needed(b"#!/bin/sh\n")


def test_image_carries_dropbear_and_its_libraries(image):
    assert image.manifest["packages"]["dropbear"]["package"] == "dropbear-bin"
    assert "lib:libc6" in image.manifest["packages"]
    assert set(image.manifest["scripts"]) >= {"init", "udhcpc", "poweroff", "json", "meta"}
