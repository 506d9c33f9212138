"""Boot a guest image under plain QEMU (no libvirt) to check it: seeds, serial log, QMP power button.

Used by the tiny image's tests and benchmark. Networking is QEMU user mode with `restrict=on`
(DHCP from QEMU itself, nothing leaves QEMU) or no NIC at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

READY_RE = re.compile(r"kvmfleet-guest: ready hostname=(?P<hostname>\S+) ip=(?P<ip>\S+) instance-id=(?P<instance_id>\S+)")


class BootError(RuntimeError):
    """The guest did not do what was expected in time; carries the serial log so far."""

    def __init__(self, msg: str, serial: str = "") -> None:
        super().__init__(f"{msg}\n--- serial log ---\n{serial[-4000:]}")
        self.serial = serial


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BootError(f"`{' '.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")


def make_nocloud_seed(path: Path, hostname: str | None, instance_id: str | None, user_data: str | None,
                      fs: str = "iso9660", label: str = "cidata") -> Path:
    """A NoCloud seed (label `label`) as iso9660 (genisoimage) or vfat (mkfs.vfat + mcopy)."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        meta = []
        if instance_id is not None:
            meta.append(f"instance-id: {instance_id}")
        if hostname is not None:
            meta.append(f"local-hostname: {hostname}")
        (d / "meta-data").write_text("\n".join(meta) + "\n")
        (d / "user-data").write_text(user_data or "")
        if fs == "iso9660":
            _run(["genisoimage", "-quiet", "-o", str(path), "-V", label, "-J", "-r",
                  str(d / "meta-data"), str(d / "user-data")])
        elif fs == "vfat":
            path.unlink(missing_ok=True)
            _run(["mkfs.vfat", "-n", label, "-C", str(path), "1024"])
            _run(["mcopy", "-i", str(path), str(d / "meta-data"), str(d / "user-data"), "::/"])
        else:
            raise ValueError(f"seed filesystem must be iso9660 or vfat, not {fs!r}")
    return path


def make_config_drive(path: Path, uuid: str, hostname: str, user_data: str | None) -> Path:
    """An OpenStack config drive (label config-2, iso9660) with openstack/latest/meta_data.json."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        latest = Path(tmp) / "openstack" / "latest"
        latest.mkdir(parents=True)
        (latest / "meta_data.json").write_text(json.dumps(
            {"uuid": uuid, "name": hostname, "hostname": hostname, "launch_index": 0,
             "availability_zone": "nova", "meta": {"role": "test"}}))
        if user_data is not None:
            (latest / "user_data").write_text(user_data)
        _run(["genisoimage", "-quiet", "-o", str(path), "-V", "config-2", "-J", "-r", tmp])
    return path


class QemuGuest:
    """One qemu-system-x86_64 process on a throw-away qcow2 overlay of `image`.

    `seed` is attached as a read-only raw disk on `seed_bus` ("virtio" or "ide-cd"); `network`
    is "user" (restricted user-mode net, DHCP answered by QEMU) or "none".
    """

    def __init__(self, image: Path, seed: Path | None = None, seed_bus: str = "virtio",
                 network: str = "user", memory_mb: int = 256, accel: str = "tcg") -> None:
        self.image, self.seed, self.seed_bus = Path(image), seed, seed_bus
        self.network, self.memory_mb, self.accel = network, memory_mb, accel
        self.dir = Path(tempfile.mkdtemp(prefix="kvmfleet-qemu-"))
        self.serial_path = self.dir / "serial.log"
        self.qmp_path = self.dir / "qmp.sock"
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def argv(self) -> list[str]:
        disk = self.dir / "disk.qcow2"
        argv = ["qemu-system-x86_64", "-accel", self.accel, "-m", str(self.memory_mb), "-smp", "1",
                "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
                "-serial", f"file:{self.serial_path}",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-drive", f"file={disk},if=virtio,format=qcow2"]
        if self.seed is not None:
            if self.seed_bus == "virtio":
                argv += ["-drive", f"file={self.seed},if=virtio,format=raw,readonly=on"]
            elif self.seed_bus == "ide-cd":
                argv += ["-drive", f"file={self.seed},if=ide,media=cdrom,format=raw,readonly=on"]
            else:
                raise ValueError(f"seed_bus must be virtio or ide-cd, not {self.seed_bus!r}")
        if self.network == "user":
            argv += ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"]
        elif self.network != "none":
            raise ValueError(f"network must be user or none, not {self.network!r}")
        return argv

    def start(self) -> Self:
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(self.image.resolve()),
              str(self.dir / "disk.qcow2")])
        self.serial_path.touch()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def serial(self) -> str:
        return self.serial_path.read_text(errors="replace")

    def wait_for(self, pattern: re.Pattern | str, timeout: float) -> tuple[re.Match, float]:
        """The first match of `pattern` in the serial log and seconds since start; BootError on timeout."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.serial())
            if m:
                return m, time.monotonic() - self.started_at
            if self.proc is not None and self.proc.poll() is not None:
                raise BootError(f"qemu exited with {self.proc.returncode} before {regex.pattern!r} appeared: "
                                f"{self.proc.stdout.read().decode(errors='replace').strip()}", self.serial())
            if time.monotonic() > deadline:
                raise BootError(f"{regex.pattern!r} did not appear within {timeout:.0f}s", self.serial())
            time.sleep(0.05)

    def qmp(self, command: str, **arguments) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.qmp_path))
            f = s.makefile("rw")
            json.loads(f.readline())  # greeting
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "event" not in reply:
                        break
                if "error" in reply:
                    raise BootError(f"QMP {cmd['execute']}: {reply['error']}", self.serial())
            return reply

    def cpu_seconds(self) -> float:
        """CPU time QEMU has used so far (all threads): under TCG a load-independent boot cost."""
        if self.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit code, or None if still running after `timeout` seconds."""
        if self.proc is None:
            raise BootError("wait_exit: the guest was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
