"""The image registry: guest images the controller can place (Glance, reduced to files on the controller).

`register` checks the file with `qemu-img info -f <format>` (the format is explicit, never probed),
refuses images with a backing file or an external data file (a host could be made to read any of
its files through one), and records sha256, size and virtual size. The file stays where it is; hosts
get a copy in their image cache, named by sha256, the first time an instance needs it. The registry
copies the file into <state dir>/images/<id>.<format> so the registered bytes never change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.store import api as store_api
from kvmfleet.store.errors import AlreadyExists, InUse, InvalidInput
from kvmfleet.store.models import Image, Instance

FORMATS = ("qcow2", "raw")
ARCHES = ("x86_64", "aarch64", "i686", "ppc64le", "s390x")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def inspect(path: Path, disk_format: str) -> dict[str, Any]:
    """qemu-img's view of the file, refusing what must never reach a host."""
    try:
        proc = subprocess.run(["qemu-img", "info", "-f", disk_format, "--output", "json", str(path)],
                              capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise InvalidInput("qemu-img not found: install qemu-utils") from exc
    if proc.returncode != 0:
        raise InvalidInput(f"{path} is not a valid {disk_format} image: {proc.stderr.strip() or proc.stdout.strip()}")
    info = json.loads(proc.stdout)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InvalidInput(f"{path} has a backing file ({info.get('backing-filename')}): register a standalone image "
                           "(qemu-img convert -O qcow2 it first)")
    data_file = (info.get("format-specific") or {}).get("data", {}).get("data-file")
    if data_file:
        raise InvalidInput(f"{path} has an external data file ({data_file}): refused")
    return info


def register(session: Session, name: str, file: str, arch: str = "x86_64", disk_format: str = "qcow2",
             min_ram: int = 0, min_disk: int = 0) -> Image:
    from kvmfleet.compute.api import validate_name

    validate_name(name, "image name")
    if disk_format not in FORMATS:
        raise InvalidInput(f"invalid disk format {disk_format!r} (allowed: {', '.join(FORMATS)})")
    if arch not in ARCHES:
        raise InvalidInput(f"invalid architecture {arch!r} (allowed: {', '.join(ARCHES)})")
    path = Path(file).expanduser().resolve()
    if not path.is_file():
        raise InvalidInput(f"image file not found: {file}")
    if session.scalars(select(Image).where(Image.name == name)).first() is not None:
        raise AlreadyExists(f"image {name} already exists", image=name)
    info = inspect(path, disk_format)
    image = Image(name=name, file_path=str(path), sha256="", size=0,
                  virtual_size=int(info.get("virtual-size") or 0) or None, disk_format=disk_format, arch=arch,
                  min_ram=min_ram, min_disk=min_disk, status="active")
    session.add(image)
    session.flush()
    # The registry keeps its own copy, so rebuilding or editing the source never changes a registered image.
    stored = images_dir() / f"{image.id}.{disk_format}"
    stored.parent.mkdir(parents=True, exist_ok=True)
    tmp = stored.with_suffix(".part")
    try:
        shutil.copyfile(path, tmp)
        tmp.replace(stored)
    finally:
        tmp.unlink(missing_ok=True)
    image.file_path = str(stored)
    image.sha256 = sha256_of(stored)
    image.size = stored.stat().st_size
    return image


def images_dir() -> Path:
    from kvmfleet import paths

    return paths.state_dir() / "images"


def remove(session: Session, key: str) -> None:
    image = store_api.get_image(session, key)
    users = session.scalars(select(Instance.name).where(Instance.image_id == image.id,
                                                        Instance.deleted_at.is_(None))).all()
    if users:
        raise InUse(f"image {image.name} is used by server(s) {', '.join(sorted(users)[:5])}: rebuild or delete them")
    session.delete(image)
    if Path(image.file_path).parent == images_dir():
        Path(image.file_path).unlink(missing_ok=True)


def image_dict(image: Image) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "status": image.status, "disk_format": image.disk_format,
            "arch": image.arch, "size": image.size, "virtual_size": image.virtual_size, "sha256": image.sha256,
            "file": image.file_path, "min_ram": image.min_ram, "min_disk": image.min_disk,
            "created_at": image.created_at.isoformat() if image.created_at else None}


def list_images(session: Session) -> list[Image]:
    return list(session.scalars(select(Image).order_by(Image.name)).all())
