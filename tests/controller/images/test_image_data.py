"""kvmfleet.images.data on a real SQLite store and real files: an upload that died (its service killed)
is put back to queued by the service's reaper, nothing of its data kept; a delete during an upload
removes the data the upload finishes with."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from kvmfleet import config
from kvmfleet.images import data, registry
from kvmfleet.images.errors import ImageGone
from kvmfleet.store import engine as store_engine
from kvmfleet.store import get_store
from kvmfleet.store.models import Image

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
OPERATOR = registry.Viewer.operator()


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("KVMFLEET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KVMFLEET_CONFIG", raising=False)
    monkeypatch.delenv("KVMFLEET_DATABASE_URL", raising=False)
    config.reset_settings()
    store_engine.reset_store()
    yield get_store()
    store_engine.reset_store()
    config.reset_settings()


def queued(store, disk_format: str = "qcow2") -> str:
    return store.run_in_transaction(lambda s: registry.create_image(
        s, OPERATOR, {"name": "up", "disk_format": disk_format, "container_format": "bare"}).id)


def status(store, image_id: str) -> str | None:
    return store.run_in_transaction(lambda s: getattr(s.get(Image, image_id), "status", None))


def test_reaper_puts_a_dead_upload_back_to_queued(store) -> None:
    image_id = queued(store)
    upload = data.begin_upload(store, image_id, OPERATOR)
    sink = data.DataSink(upload.part, upload.limit)
    sink.write(TINY.read_bytes()[:65536])  # ... and then the service was killed
    assert status(store, image_id) == "saving" and upload.part.is_file()
    assert data.reap_stale_uploads(store) == []  # still fresh: a live upload is left alone
    old = time.time() - data.STALE_UPLOAD_S - 5
    os.utime(upload.part, (old, old))
    assert data.reap_stale_uploads(store) == [image_id]
    assert status(store, image_id) == "queued" and not upload.part.exists()
    # and the image takes a fresh upload
    done = data.upload_file(store, image_id, TINY, OPERATOR)
    assert done.status == "active" and Path(done.file_path).read_bytes() == TINY.read_bytes()


def test_reaper_requeues_an_upload_that_died_before_its_first_byte(store) -> None:
    image_id = queued(store)
    data.begin_upload(store, image_id, OPERATOR)  # killed before the data file was made
    assert data.reap_stale_uploads(store, idle_s=3600) == []
    assert data.reap_stale_uploads(store, idle_s=0) == [image_id]
    assert status(store, image_id) == "queued"


def test_delete_during_an_upload_removes_what_it_wrote(store) -> None:
    image_id = queued(store)
    upload = data.begin_upload(store, image_id, OPERATOR)
    sink = data.DataSink(upload.part, upload.limit)
    sink.write(TINY.read_bytes())
    removed = store.run_in_transaction(lambda s: registry.delete_image(s, image_id, OPERATOR))
    registry.remove_data(removed)
    with pytest.raises(ImageGone):
        data.complete_upload(store, upload, sink)
    assert status(store, image_id) is None
    assert list(registry.images_dir().iterdir()) == []


def test_a_second_upload_at_once_is_a_conflict(store) -> None:
    from kvmfleet.images.errors import InvalidImageStatus

    image_id = queued(store)
    data.begin_upload(store, image_id, OPERATOR)
    with pytest.raises(InvalidImageStatus):
        data.begin_upload(store, image_id, OPERATOR)
