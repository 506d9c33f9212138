"""The tiny guest image (our CirrOS), built from Debian packages and cached.

The disk is a FAT filesystem without a partition table holding syslinux, the kernel of
`linux-image-cloud-amd64` and an initramfs (busybox-static, a few kernel modules, our /init, and the
SSH server dropbear from `dropbear-bin` with the shared libraries it links and the dynamic loader).
Everything runs from the initramfs; the disk is only read by the bootloader.

The build is cached in `<cache>/images/tiny/`: the qcow2, its `.sha256` and an inputs manifest
(package versions, .deb file names and hashes, our scripts' hashes, tool versions, builder version).
A build is reused while the manifest of the current inputs equals the stored one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from kvmfleet import paths

BUILDER_VERSION = "2"
IMAGE_NAME = "kvmfleet-tiny.qcow2"
MANIFEST_NAME = "kvmfleet-tiny.inputs.json"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
DROPBEAR_PACKAGE = "dropbear-bin"
# The binaries of dropbear-bin the guest runs; their libraries come from dropbear-bin's Depends.
DROPBEAR_BINARIES = ("usr/sbin/dropbear", "usr/bin/dropbearkey")
LIB_DIR = "lib/x86_64-linux-gnu"
# cryptomgr.notests: the crypto self-tests cost about half a second under TCG.
KERNEL_CMDLINE = "console=tty0 console=ttyS0 quiet cryptomgr.notests"
# Host tools whose versions can change the image; recorded in the manifest.
MKFS_VFAT_ARGS = ("--invariant", "-n", "KVMFLEET")
TOOL_PACKAGES = ("syslinux", "syslinux-common", "mtools", "dosfstools", "qemu-utils")

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_INIT = DATA_DIR / "tiny_init.sh"
UDHCPC_SCRIPT = DATA_DIR / "tiny_udhcpc.sh"
POWEROFF_SCRIPT = DATA_DIR / "tiny_poweroff.sh"
JSON_SCRIPT = DATA_DIR / "tiny_json.awk"
META_SCRIPT = DATA_DIR / "tiny_meta.awk"


@dataclasses.dataclass(frozen=True)
class KernelModule:
    name: str
    config: str  # the Kconfig symbol: =y built in (nothing to load), =m a module to load
    required: bool = True
    # "boot": always loaded; "seed-fallback": loaded only when no seed is found on the boot set
    # (each costs boot time under TCG, and the kvmfleet domain module puts the seed on virtio).
    group: str = "boot"


# What the guest needs: virtio devices, the ACPI power button (and evdev so acpid sees it), the
# filesystems of a seed disk, and as a fallback the other buses a seed may come on: virtio-scsi and
# IDE (Nova's default config drive bus). No AHCI/SATA and no LSI SCSI: the cloud kernel has neither.
MODULES = (
    KernelModule("virtio_pci", "CONFIG_VIRTIO_PCI"),
    KernelModule("virtio_blk", "CONFIG_VIRTIO_BLK"),
    KernelModule("virtio_net", "CONFIG_VIRTIO_NET"),
    KernelModule("button", "CONFIG_ACPI_BUTTON"),
    KernelModule("evdev", "CONFIG_INPUT_EVDEV"),
    KernelModule("isofs", "CONFIG_ISO9660_FS"),
    KernelModule("vfat", "CONFIG_VFAT_FS"),
    KernelModule("nls_cp437", "CONFIG_NLS_CODEPAGE_437"),
    KernelModule("nls_ascii", "CONFIG_NLS_ASCII", required=False),
    KernelModule("nls_utf8", "CONFIG_NLS_UTF8", required=False),
    KernelModule("virtio_scsi", "CONFIG_SCSI_VIRTIO", required=False, group="seed-fallback"),
    KernelModule("ata_piix", "CONFIG_ATA_PIIX", required=False, group="seed-fallback"),
    KernelModule("sr_mod", "CONFIG_BLK_DEV_SR", required=False, group="seed-fallback"),
    KernelModule("sd_mod", "CONFIG_BLK_DEV_SD", required=False, group="seed-fallback"),
)
MODULE_GROUPS = ("boot", "seed-fallback")


class TinyImageError(RuntimeError):
    """The tiny image could not be built; the message says which step and why."""


@dataclasses.dataclass(frozen=True)
class TinyImage:
    path: Path
    sha256: str
    size: int
    cached: bool
    manifest: dict

    def as_dict(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "size": self.size, "cached": self.cached}


@dataclasses.dataclass(frozen=True)
class Deb:
    package: str
    version: str
    sha256: str
    path: Path

    def manifest(self) -> dict:
        return {"package": self.package, "version": self.version, "file": self.path.name, "sha256": self.sha256}


def output_dir() -> Path:
    return paths.cache_dir() / "images" / "tiny"


def debs_dir() -> Path:
    return paths.cache_dir() / "debs"


# ---------------------------------------------------------------------------------------------
# commands


def _run(argv: list[str], doing: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise TinyImageError(f"{doing}: {argv[0]} is not installed ({exc})") from exc
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).strip()
        raise TinyImageError(f"{doing}: `{' '.join(argv)}` exited {proc.returncode}: {out}")
    return proc.stdout


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# packages


APT_LISTS = Path("/var/lib/apt/lists")
APT_CONFIG_DIRS = (Path("/etc/apt/preferences.d"), Path("/etc/apt/sources.list.d"))
APT_CONFIG_FILES = (Path("/etc/apt/preferences"), Path("/etc/apt/sources.list"))


def _apt_show(packages: list[str]) -> dict[str, dict[str, str]]:
    """Package -> its candidate version's record from the apt lists (offline once `apt-get update` ran)."""
    out = _run(["apt-cache", "show", "--no-all-versions", *packages],
               f"look up {', '.join(packages)} in the apt lists")
    records: dict[str, dict[str, str]] = {}
    record: dict[str, str] = {}
    key = None
    for line in out.splitlines() + [""]:
        if not line.strip():
            if record.get("Package"):
                records.setdefault(record["Package"], record)
            record, key = {}, None
            continue
        if line[0].isspace() and key:
            record[key] += "\n" + line.strip()
            continue
        key, _, value = line.partition(":")
        record[key] = value.strip()
    for package in packages:
        rec = records.get(package)
        if rec is None or "Version" not in rec or "SHA256" not in rec:
            raise TinyImageError(f"apt has no candidate for {package} (run apt-get update?)")
    return records


def _apt_fingerprint() -> str:
    """Changes whenever `apt-get update` or the apt configuration could change a candidate."""
    h = hashlib.sha256()
    files = [p for p in APT_LISTS.glob("*") if p.is_file()] + list(APT_CONFIG_FILES)
    for d in APT_CONFIG_DIRS:
        files += d.glob("*") if d.is_dir() else []
    for p in sorted(files):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _depends(record: dict[str, str]) -> list[str]:
    deps = ",".join(record.get(key, "") for key in ("Pre-Depends", "Depends"))
    return [dep.split("|")[0].strip().split(" ", 1)[0].split(":")[0] for dep in deps.split(",") if dep.strip()]


def _resolve_packages() -> dict[str, dict[str, str]]:
    """Role -> {package, version, sha256} for the kernel meta package, the kernel and busybox.

    `apt-cache` takes seconds per call here, so the answer is kept beside the .debs together with a
    fingerprint of the apt lists and configuration, and asked again only when that changes.
    """
    memo = debs_dir() / ".resolved.json"
    fingerprint = _apt_fingerprint()
    try:
        saved = json.loads(memo.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        saved = {}
    if saved.get("fingerprint") == fingerprint and saved.get("builder_version") == BUILDER_VERSION \
            and "packages" in saved:
        return saved["packages"]

    try:
        first = _apt_show([KERNEL_META_PACKAGE, BUSYBOX_PACKAGE, DROPBEAR_PACKAGE])
    except TinyImageError:
        # No usable apt lists (cleaned, or never updated): the last resolution still names exact
        # versions and hashes, and the .debs are checked against those hashes.
        if "packages" in saved and saved.get("builder_version") == BUILDER_VERSION:
            return saved["packages"]
        raise
    depends = first[KERNEL_META_PACKAGE].get("Depends", "")
    kernel = next((name for name in (alt.strip().split(" ", 1)[0] for alt in re.split(r"[,|]", depends))
                   if name.startswith("linux-image-")), None)
    if kernel is None:
        raise TinyImageError(f"{KERNEL_META_PACKAGE} depends on no linux-image-* package: {depends!r}")
    records = {**first, **_apt_show([kernel])}
    # dropbear's libraries: its (Pre-)Depends, transitively (first alternatives); the build copies only
    # the files the binaries link.
    libs: list[str] = []
    todo = _depends(first[DROPBEAR_PACKAGE])
    while todo:
        fresh = sorted({name for name in todo if name not in libs and name != DROPBEAR_PACKAGE})
        if not fresh:
            break
        libs += fresh
        found = _apt_show(fresh)
        records.update(found)
        todo = [dep for name in fresh for dep in _depends(found[name])]
    roles = {"kernel_meta": KERNEL_META_PACKAGE, "kernel": kernel, "busybox": BUSYBOX_PACKAGE,
             "dropbear": DROPBEAR_PACKAGE, **{f"lib:{name}": name for name in libs}}
    packages = {role: {"package": name, "version": records[name]["Version"], "sha256": records[name]["SHA256"]}
                for role, name in roles.items()}
    memo.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(memo, json.dumps({"fingerprint": fingerprint, "builder_version": BUILDER_VERSION,
                                    "packages": packages}, indent=2) + "\n")
    return packages


def _fetch(package: str, version: str, sha256: str, dest: Path) -> Deb:
    """The .deb of `package` `version` in `dest` (checked against the index's sha256), downloaded if missing."""

    def find() -> Path | None:
        for candidate in sorted(dest.glob(f"{package}_*.deb")):
            if _sha256_file(candidate) == sha256:
                return candidate
        return None

    found = find()
    if found is None:
        dest.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", "download", f"{package}={version}"], f"download {package} {version}", cwd=dest)
        found = find()
        if found is None:
            raise TinyImageError(f"apt-get download {package}={version} left no file with sha256 {sha256} in {dest}")
    return Deb(package, version, sha256, found)


def _tool_versions() -> dict[str, str]:
    out = _run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Status}\n", *TOOL_PACKAGES],
               "query the versions of the image build tools")
    versions = {}
    for line in out.splitlines():
        name, version, status = line.split("\t")
        if status.endswith(" installed"):
            versions[name] = version
    missing = [p for p in TOOL_PACKAGES if p not in versions]
    if missing:
        raise TinyImageError(f"image build tools not installed: {', '.join(missing)} (apt-get install them)")
    return versions


# ---------------------------------------------------------------------------------------------
# inputs


def current_inputs(init_script: Path | None = None) -> tuple[dict, dict[str, Deb]]:
    """The manifest of everything the image is made of, and the .debs it names (fetched if needed)."""
    init_script = Path(init_script) if init_script else DEFAULT_INIT
    if not init_script.is_file():
        raise TinyImageError(f"init script {init_script} does not exist")
    dest = debs_dir()
    debs = {role: _fetch(p["package"], p["version"], p["sha256"], dest) for role, p in _resolve_packages().items()}
    manifest = {
        "builder_version": BUILDER_VERSION,
        # Any change to this builder's code changes the image's inputs too.
        "builder_sha256": _sha256_file(Path(__file__)),
        "packages": {role: deb.manifest() for role, deb in debs.items()},
        "scripts": {
            "init": _sha256_file(init_script),
            "udhcpc": _sha256_file(UDHCPC_SCRIPT),
            "poweroff": _sha256_file(POWEROFF_SCRIPT),
            "json": _sha256_file(JSON_SCRIPT),
            "meta": _sha256_file(META_SCRIPT),
        },
        "modules": [dataclasses.asdict(m) for m in MODULES],
        "cmdline": KERNEL_CMDLINE,
        "tools": _tool_versions(),
    }
    return manifest, debs


# ---------------------------------------------------------------------------------------------
# kernel modules


def _kernel_config(path: Path) -> dict[str, str]:
    config = {}
    for line in path.read_text().splitlines():
        if line.startswith("CONFIG_"):
            key, _, value = line.partition("=")
            config[key] = value
    return config


def module_load_order(config: dict[str, str], modules_dep: str,
                      wanted: Iterable[KernelModule]) -> list[tuple[str, str]]:
    """(group, module path relative to /lib/modules/<version>) to insmod, each after what it depends on.

    Groups come in MODULE_GROUPS order and a path appears once, in the first group that needs it.
    A module built into the kernel (=y) needs nothing; a required one that is neither built in nor
    a module is an error; an optional one is skipped.
    """
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        if ":" not in line:
            continue
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path

    order: list[tuple[str, str]] = []
    seen: set[str] = set()

    def visit(group: str, path: str, trail: tuple[str, ...]) -> None:
        if path in seen:
            return
        if path in trail:
            raise TinyImageError(f"module dependency cycle: {' -> '.join(trail + (path,))}")
        for dep in deps.get(path, []):
            visit(group, dep, trail + (path,))
        seen.add(path)
        order.append((group, path))

    wanted = list(wanted)
    for module in wanted:
        if module.group not in MODULE_GROUPS:
            raise TinyImageError(f"module {module.name} has unknown group {module.group!r}")
    for group in MODULE_GROUPS:
        for module in (m for m in wanted if m.group == group):
            value = config.get(module.config)
            if value == "y":
                continue
            if value == "m":
                path = by_name.get(module.name)
                if path is None:
                    raise TinyImageError(f"{module.config}=m but {module.name}.ko is not in modules.dep")
                visit(group, path, ())
            elif module.required:
                raise TinyImageError(f"the kernel lacks {module.name}: {module.config} is {value or 'not set'}")
    return order


# ---------------------------------------------------------------------------------------------
# initramfs


class Cpio:
    """A newc ("070701") archive written in memory: device nodes and owners without needing root."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1
        self._names: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name in self._names:
            return
        self._names.add(name)
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._write(header + name.encode() + b"\0")
        self._write(data)

    def _write(self, data: bytes) -> None:
        self._buf.write(data)
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def dir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            self._entry("/".join(parts[:i]), stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        parent = str(Path(name.strip("/")).parent)
        if parent != ".":
            self.dir(parent)
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        parent = str(Path(name.strip("/")).parent)
        if parent != ".":
            self.dir(parent)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, mode: int, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self._buf.getvalue()


def elf_needed(data: bytes) -> tuple[str | None, list[str]]:
    """The interpreter (PT_INTERP) and DT_NEEDED names of a little-endian ELF64 file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise TinyImageError("not a little-endian 64-bit ELF file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    interp, dynamic, loads = None, None, []
    for i in range(phnum):
        ptype, _, offset, vaddr, _, filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if ptype == 1:
            loads.append((vaddr, offset, filesz))
        elif ptype == 2:
            dynamic = (offset, filesz)
        elif ptype == 3:
            interp = data[offset:offset + filesz].rstrip(b"\0").decode()
    if dynamic is None:
        return interp, []

    def file_offset(addr: int) -> int:
        for vaddr, offset, filesz in loads:
            if vaddr <= addr < vaddr + filesz:
                return offset + addr - vaddr
        raise TinyImageError(f"ELF address {addr:#x} is in no loaded segment")

    needed, strtab = [], None
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, pos)
        if tag == 0:
            break
        if tag == 1:
            needed.append(value)
        elif tag == 5:
            strtab = file_offset(value)
    if strtab is None:
        raise TinyImageError("ELF file has DT_NEEDED entries but no DT_STRTAB")
    return interp, [data[strtab + n:data.index(b"\0", strtab + n)].decode() for n in needed]


def _in_tree(root: Path, rel: str) -> Path | None:
    """`rel` inside the unpacked tree `root`, following symlinks inside the tree (never the host's)."""
    path = root / rel.lstrip("/")
    for _ in range(10):
        if path.is_symlink():
            target = os.readlink(path)
            path = root / target.lstrip("/") if target.startswith("/") else path.parent / target
        elif path.is_file():
            return path
        else:
            return None
    return None


def dropbear_files(root: Path) -> dict[str, bytes | str]:
    """Initramfs path -> content (bytes) or symlink target (str): dropbear's binaries, every library they
    need (transitively) and the loader."""
    files: dict[str, bytes] = {}
    todo = list(DROPBEAR_BINARIES)
    for binary in DROPBEAR_BINARIES:
        if _in_tree(root, binary) is None:
            raise TinyImageError(f"{binary} is missing from {DROPBEAR_PACKAGE}")
    seen: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        found = _in_tree(root, rel)
        if found is None:
            raise TinyImageError(f"dropbear needs {rel}, which none of its packages holds")
        data = found.read_bytes()
        files[rel] = data
        interp, needed = elf_needed(data)
        if interp:
            todo.append(interp.lstrip("/"))
        for name in needed:
            where = next((d for d in (LIB_DIR, f"usr/{LIB_DIR}") if _in_tree(root, f"{d}/{name}")), None)
            if where is None:
                raise TinyImageError(f"dropbear needs {name}, which none of its packages holds")
            todo.append(f"{where}/{name}")
    # One copy of each library, in /lib/x86_64-linux-gnu (a search directory of the loader); the
    # interpreter's path (/lib64/...) becomes a symlink to its copy there.
    out: dict[str, bytes | str] = {}
    for rel, data in files.items():
        name = f"{LIB_DIR}/{Path(rel).name}"
        if rel.startswith(f"usr/{LIB_DIR}/") or (rel.startswith("lib64/") and f"{LIB_DIR}/{Path(rel).name}" in files):
            out[name] = data
            if rel.startswith("lib64/"):
                out[rel] = f"/{name}"
        else:
            out[rel] = data
    return out


PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
GROUP = "root:x:0:\n"
SHELLS = "/bin/sh\n"


def build_initramfs(kernel_root: Path, kernel_version: str, busybox: Path, init_script: Path,
                    load_order: list[tuple[str, str]], extra: dict[str, bytes | str] | None = None) -> bytes:
    cpio = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "run", "tmp", "mnt/seed", "etc/kvmfleet",
              "var/log"):
        cpio.dir(d)
    # The kernel opens /dev/console for init before anything is mounted.
    cpio.chardev("dev/console", 0o600, 5, 1)
    cpio.chardev("dev/null", 0o666, 1, 3)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    cpio.file("init", init_script.read_bytes(), 0o755)
    cpio.file("usr/share/udhcpc/default.script", UDHCPC_SCRIPT.read_bytes(), 0o755)
    cpio.file("etc/acpi/PWRF/00000080", POWEROFF_SCRIPT.read_bytes(), 0o755)
    cpio.file("usr/share/kvmfleet/json.awk", JSON_SCRIPT.read_bytes())
    cpio.file("usr/share/kvmfleet/meta.awk", META_SCRIPT.read_bytes())
    cpio.file("etc/passwd", PASSWD.encode())
    cpio.file("etc/group", GROUP.encode())
    cpio.file("etc/shells", SHELLS.encode())
    for rel, data in sorted((extra or {}).items()):
        if isinstance(data, str):
            cpio.symlink(rel, data)
        else:
            cpio.file(rel, data, 0o755)
    cpio.file("etc/kvmfleet/modules", "".join(f"{group} {path}\n" for group, path in load_order).encode())
    moddir = kernel_root / "lib" / "modules" / kernel_version
    for _, rel in load_order:
        cpio.file(f"lib/modules/{kernel_version}/{rel}", (moddir / rel).read_bytes())
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(cpio.finish())
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# disk


def _syslinux_cfg() -> str:
    return "\n".join([
        "DEFAULT kvmfleet",
        "PROMPT 0",
        "TIMEOUT 0",
        "LABEL kvmfleet",
        "  KERNEL vmlinuz",
        "  INITRD initrd.gz",
        f"  APPEND {KERNEL_CMDLINE}",
        "",
    ])


def _build(work: Path, debs: dict[str, Deb], init_script: Path, target: Path) -> None:
    kroot, broot, droot = work / "kernel", work / "busybox", work / "dropbear"
    _run(["dpkg-deb", "-x", str(debs["kernel"].path), str(kroot)], "unpack the kernel package")
    _run(["dpkg-deb", "-x", str(debs["busybox"].path), str(broot)], "unpack busybox-static")
    for role, deb in sorted(debs.items()):
        if role == "dropbear" or role.startswith("lib:"):
            _run(["dpkg-deb", "-x", str(deb.path), str(droot)], f"unpack {deb.package}")

    versions = [p.name for p in (kroot / "lib" / "modules").iterdir() if p.is_dir()]
    if len(versions) != 1:
        raise TinyImageError(f"expected one kernel version in {debs['kernel'].path.name}, found {versions}")
    kver = versions[0]
    vmlinuz = kroot / "boot" / f"vmlinuz-{kver}"
    busybox = broot / "bin" / "busybox"
    for needed in (vmlinuz, busybox, kroot / "boot" / f"config-{kver}"):
        if not needed.is_file():
            raise TinyImageError(f"{needed.relative_to(work)} is missing from the unpacked packages")

    # The .deb has no modules.dep (postinst runs depmod); make it in the unpacked tree.
    _run(["depmod", "-b", str(kroot), kver], f"depmod for {kver}")
    moddir = kroot / "lib" / "modules" / kver
    order = module_load_order(_kernel_config(kroot / "boot" / f"config-{kver}"),
                              (moddir / "modules.dep").read_text(), MODULES)

    files = work / "files"
    files.mkdir()
    shutil.copyfile(vmlinuz, files / "vmlinuz")
    (files / "initrd.gz").write_bytes(build_initramfs(kroot, kver, busybox, init_script, order,
                                                              dropbear_files(droot)))
    (files / "syslinux.cfg").write_text(_syslinux_cfg())

    payload = sum(f.stat().st_size for f in files.iterdir())
    size_mib = (payload >> 20) + 3  # room for FAT tables, ldlinux.sys/.c32
    raw = work / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(size_mib << 20)
    _run(["mkfs.vfat", *MKFS_VFAT_ARGS, str(raw)], "make the FAT filesystem")
    _run(["syslinux", "--install", str(raw)], "install syslinux")
    _run(["mcopy", "-i", str(raw), "-m",
          str(files / "syslinux.cfg"), str(files / "vmlinuz"), str(files / "initrd.gz"), "::/"],
         "copy the kernel and initramfs onto the disk")
    _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(target)], "convert to qcow2")


# ---------------------------------------------------------------------------------------------
# cache


def _cached(out: Path, manifest: dict) -> TinyImage | None:
    image, sums, stored = out / IMAGE_NAME, out / f"{IMAGE_NAME}.sha256", out / MANIFEST_NAME
    if not (image.is_file() and sums.is_file() and stored.is_file()):
        return None
    try:
        if json.loads(stored.read_text()) != manifest:
            return None
    except json.JSONDecodeError:
        return None
    recorded = sums.read_text().split()[0] if sums.read_text().split() else ""
    actual = _sha256_file(image)
    if actual != recorded:
        return None
    return TinyImage(image, actual, image.stat().st_size, True, manifest)


def build_tiny(force: bool = False, init_script: Path | None = None, out_dir: Path | None = None) -> TinyImage:
    """Build the tiny image, or return the cached one if its inputs are unchanged.

    `init_script` replaces the guest's /init (tests use it to prove the manifest follows inputs);
    `out_dir` defaults to `<cache>/images/tiny`.
    """
    init_script = Path(init_script) if init_script else DEFAULT_INIT
    out = Path(out_dir) if out_dir else output_dir()
    out.mkdir(parents=True, exist_ok=True)
    # One builder at a time per output directory; a waiting one then finds the fresh cache.
    with (out / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest, debs = current_inputs(init_script)
        if not force:
            hit = _cached(out, manifest)
            if hit is not None:
                return hit
        with tempfile.TemporaryDirectory(prefix=".build-", dir=out) as tmp:
            work = Path(tmp)
            built = work / IMAGE_NAME
            _build(work, debs, init_script, built)
            digest = _sha256_file(built)
            # The manifest goes last: its presence with matching contents means a complete build.
            (out / MANIFEST_NAME).unlink(missing_ok=True)
            os.replace(built, out / IMAGE_NAME)
            _write_atomic(out / f"{IMAGE_NAME}.sha256", f"{digest}  {IMAGE_NAME}\n")
            _write_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        image = out / IMAGE_NAME
        return TinyImage(image, digest, image.stat().st_size, False, manifest)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
