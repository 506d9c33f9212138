"""Image data: uploads streamed into the registry, downloads streamed out of it.

An upload (the API's ``PUT /v2/images/{id}/file``, and `kvmfleet image register`):

1. ``begin_upload``: the image must be queued with its disk and container formats set; it becomes
   ``saving`` by compare-and-set (a second upload at once gets 409) and its data goes to
   ``<state dir>/images/<id>.part`` (mode 0600).
2. ``DataSink.write``: each chunk is hashed (sha256 names the host cache copy; md5 is Glance's
   ``checksum``; sha512 its ``os_hash_value``) and counted against the size cap (ImageTooLarge).
3. ``complete_upload``: the file is inspected with its declared format (kvmfleet.images.inspect) and
   only then renamed to ``<id>.<format>``; the image becomes ``active`` with size, virtual size and
   hashes. If the image was deleted meanwhile, the data is removed (ImageGone).

Any refusal or failure on the way (bad contents, too large, the client gone) removes the data and
puts the image back to ``queued``, as Glance does: the client may upload again or delete it. A crashed
upload leaves a ``saving`` image whose .part file stops changing: ``reap_stale_uploads`` (run
periodically by `kvmfleet serve`) puts it back to queued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kvmfleet.images import registry
from kvmfleet.images.errors import ImageDataRefused, ImageForbidden, ImageGone, ImageTooLarge, InvalidImageStatus
from kvmfleet.images.inspect import inspect
from kvmfleet.store.errors import InvalidInput
from kvmfleet.store.models import Image, utcnow

log = logging.getLogger("kvmfleet.images")
CHUNK = 1 << 20
STALE_UPLOAD_S = 600  # a .part file unchanged this long belongs to an upload that died


class DataSink:
    """Writes image data to a private file, hashing and counting it as it goes."""

    def __init__(self, path: Path, limit: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.path = path
        self.limit = limit
        self.fh: IO[bytes] = os.fdopen(fd, "wb")
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.sha512 = hashlib.sha512()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ImageTooLarge(f"The incoming image is too large: it exceeds the image size cap of "
                                f"{self.limit} bytes")
        self.md5.update(data)
        self.sha256.update(data)
        self.sha512.update(data)
        self.fh.write(data)

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Upload:
    image_id: str
    disk_format: str
    part: Path
    limit: int


def begin_upload(store: Any, image_id: str, viewer: registry.Viewer, size: int | None = None) -> Upload:
    """queued -> saving by compare-and-set; ``size`` (a Content-Length) is checked against the cap first."""
    limit = registry.size_cap()
    if size is not None and size > limit:
        raise ImageTooLarge(f"The incoming image is too large: {size} bytes exceeds the image size cap of "
                            f"{limit} bytes")

    def begin(session: Session) -> Upload:
        image = registry.get_image(session, image_id, viewer)
        registry.check_owner(image, viewer, "upload_image")
        if image.status != "queued":
            raise InvalidImageStatus(f"Image status transition from {image.status} to saving is not allowed")
        if not image.disk_format or not image.container_format:
            raise InvalidInput("Properties disk_format, container_format must be set prior to saving data.")
        done = session.execute(update(Image).where(Image.id == image.id, Image.status == "queued")
                               .values(status="saving", updated_at=utcnow()))
        if done.rowcount != 1:
            raise InvalidImageStatus("Image status transition from queued to saving is not allowed: another "
                                     "upload started first")
        return Upload(image.id, image.disk_format, registry.images_dir() / f"{image.id}.part", limit)

    return store.run_in_transaction(begin)


def _back_to_queued(store: Any, image_id: str) -> None:
    store.run_in_transaction(lambda s: s.execute(
        update(Image).where(Image.id == image_id, Image.status == "saving")
        .values(status="queued", updated_at=utcnow())))


def abort_upload(store: Any, upload: Upload, sink: DataSink | None) -> None:
    """Remove the data and put the image back to queued (nothing of a failed upload is kept)."""
    if sink is not None:
        sink.discard()
    upload.part.unlink(missing_ok=True)
    _back_to_queued(store, upload.image_id)


def complete_upload(store: Any, upload: Upload, sink: DataSink) -> Image:
    """Inspect the received data with its declared format and activate the image."""
    try:
        sink.close()
        if sink.size == 0:
            raise ImageDataRefused("the image data is empty")
        info = inspect(upload.part, upload.disk_format)
    except BaseException:
        abort_upload(store, upload, sink)
        raise
    final = registry.images_dir() / f"{upload.image_id}.{upload.disk_format}"
    upload.part.replace(final)
    values = {
        "status": "active", "file_path": str(final), "size": sink.size, "sha256": sink.sha256.hexdigest(),
        "checksum": sink.md5.hexdigest(), "os_hash_algo": "sha512", "os_hash_value": sink.sha512.hexdigest(),
        "virtual_size": int(info.get("virtual-size") or 0) or sink.size, "updated_at": utcnow(),
    }

    def activate(session: Session) -> Image | None:
        done = session.execute(update(Image).where(Image.id == upload.image_id, Image.status == "saving")
                               .values(**values))
        if done.rowcount != 1:
            return None
        image = session.get(Image, upload.image_id)
        session.flush()
        session.expunge(image)
        return image

    try:
        image = store.run_in_transaction(activate)
    except BaseException:
        final.unlink(missing_ok=True)
        _back_to_queued(store, upload.image_id)
        raise
    if image is None:
        final.unlink(missing_ok=True)
        raise ImageGone(f"Image {upload.image_id} could not be found after upload. The image may have been "
                        "deleted during the upload; its data was removed.", image=upload.image_id)
    log.info("image %s active: %d bytes, sha256 %s", image.id, image.size, image.sha256)
    return image


async def upload_stream(store: Any, image_id: str, viewer: registry.Viewer, chunks: AsyncIterator[bytes],
                        size: int | None = None) -> Image:
    """An upload fed by an async byte stream (the request body); the store and the file are touched in
    worker threads, so the event loop only moves bytes."""
    from starlette.concurrency import run_in_threadpool

    upload = await run_in_threadpool(begin_upload, store, image_id, viewer, size)
    sink: DataSink | None = None
    try:
        sink = await run_in_threadpool(DataSink, upload.part, upload.limit)
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= CHUNK:
                await run_in_threadpool(sink.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(sink.write, bytes(buffer))
    except BaseException:
        await run_in_threadpool(abort_upload, store, upload, sink)
        raise
    return await run_in_threadpool(complete_upload, store, upload, sink)


def upload_file(store: Any, image_id: str, path: Path, viewer: registry.Viewer) -> Image:
    """An upload from a file on the controller (`kvmfleet image register`)."""
    upload = begin_upload(store, image_id, viewer, path.stat().st_size)
    sink: DataSink | None = None
    try:
        sink = DataSink(upload.part, upload.limit)
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                sink.write(chunk)
    except BaseException:
        abort_upload(store, upload, sink)
        raise
    return complete_upload(store, upload, sink)


@dataclass
class Download:
    """An open image file (deleting the image meanwhile does not cut the stream short)."""

    fh: IO[bytes]
    size: int
    checksum: str | None

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from iter(lambda: self.fh.read(CHUNK), b"")
        finally:
            self.fh.close()


def open_download(store: Any, image_id: str, viewer: registry.Viewer) -> Download | None:
    """The data of an active image; None when it has none yet (Glance answers 204)."""

    def find(session: Session) -> tuple[str, str, str | None]:
        image = registry.get_image(session, image_id, viewer)
        if image.status == "deactivated" and not viewer.is_admin:
            raise ImageForbidden("The requested image has been deactivated. Image data download is forbidden.")
        return image.status, image.file_path, image.checksum

    status, file_path, checksum = store.run_in_transaction(find)
    if status != "active" or not file_path:
        return None
    try:
        fh = open(file_path, "rb")  # noqa: SIM115 - closed by Download.chunks
    except FileNotFoundError:
        raise ImageGone(f"The data of image {image_id} is missing on the controller", image=image_id) from None
    return Download(fh, os.fstat(fh.fileno()).st_size, checksum)


def reap_stale_uploads(store: Any, idle_s: float = STALE_UPLOAD_S) -> list[str]:
    """Uploads that died (their service was killed): .part files unchanged for ``idle_s`` are removed and
    their images put back to queued; .part files of images that are no longer saving are removed."""
    directory = registry.images_dir()
    now = time.time()
    reaped = []
    saving = set(store.run_in_transaction(
        lambda s: list(s.scalars(select(Image.id).where(Image.status == "saving")).all())))
    for part in directory.glob("*.part") if directory.is_dir() else []:
        image_id = part.stem
        try:
            idle = now - part.stat().st_mtime
        except FileNotFoundError:
            continue
        if image_id in saving and idle < idle_s:
            continue
        if image_id not in saving and idle < 60:
            continue  # an upload that is just starting: its begin may not be visible yet
        part.unlink(missing_ok=True)
        _back_to_queued(store, image_id)
        reaped.append(image_id)
    cutoff = utcnow() - dt.timedelta(seconds=idle_s)
    stuck = store.run_in_transaction(lambda s: list(s.scalars(
        select(Image.id).where(Image.status == "saving", Image.updated_at < cutoff)).all()))
    for image_id in stuck:  # died before its first byte was written
        if not (directory / f"{image_id}.part").exists():
            _back_to_queued(store, image_id)
            reaped.append(image_id)
    return reaped


def _register() -> None:
    from kvmfleet import service

    service.register_periodic("image-uploads", 60, reap_stale_uploads)


_register()
