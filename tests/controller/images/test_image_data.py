"""kvmfleet.images.data on a real store (SQLite and PostgreSQL) and real files: an upload that died (its service killed)
is put back to queued by the service's reaper, nothing of its data kept; a delete during an upload
removes the data the upload finishes with."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_fixtures import fresh_database
from kvmfleet import config
from kvmfleet.images import data, registry
from kvmfleet.images.errors import ImageGone
from kvmfleet.store import engine as store_engine
from kvmfleet.store import get_store
from kvmfleet.store.models import Image

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / ".cache" / "images" / "tiny" / "kvmfleet-tiny.qcow2"
OPERATOR = registry.Viewer.operator()


def pg_database() -> Iterator[str]:
    """A fresh database on the PostgreSQL that tests/postgres.sh starts (unreachable: a failure)."""
    yield from fresh_database("postgresql", None, "kvmfleet_img")


@pytest.fixture(autouse=True, params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request, tmp_path, monkeypatch):
    monkeypatch.setenv("KVMFLEET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KVMFLEET_CONFIG", raising=False)
    databases = pg_database() if request.param == "postgresql" else None
    if databases is not None:
        monkeypatch.setenv("KVMFLEET_DATABASE_URL", next(databases))
    else:
        monkeypatch.delenv("KVMFLEET_DATABASE_URL", raising=False)
    config.reset_settings()
    store_engine.reset_store()
    yield get_store()
    store_engine.reset_store()
    config.reset_settings()
    if databases is not None:
        databases.close()


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


def test_listing_and_visibility_on_this_backend(store) -> None:
    from kvmfleet.images import listing
    from kvmfleet.store.resources import create_project

    def setup(session) -> tuple[str, str]:
        a = create_project(session, "img-a").id
        b = create_project(session, "img-b").id
        for project, visibility in ((a, "private"), (a, "community"), (b, "shared"), (None, "public")):
            registry.create_image(session, OPERATOR, {"name": f"{visibility}-{project}", "owner": project,
                                                      "visibility": visibility, "os_hidden": False})
        registry.create_image(session, OPERATOR, {"name": "hidden", "owner": a, "os_hidden": True})
        return a, b

    a, b = store.run_in_transaction(setup)

    def names(project: str, **query: str) -> list[str]:
        viewer = registry.Viewer(project)
        return store.run_in_transaction(lambda s: sorted(
            i.name for i in listing.list_images(s, viewer, list(query.items()))[0]))

    assert names(a) == [f"community-{a}", f"private-{a}", "public-None"]
    assert names(b) == ["public-None", f"shared-{b}"]
    assert names(b, visibility="community") == [f"community-{a}"]
    assert names(a, os_hidden="true") == ["hidden"]
    page, marker = store.run_in_transaction(lambda s: listing.list_images(
        s, OPERATOR, [("limit", "2"), ("sort_key", "name"), ("sort_dir", "asc")]))
    assert [i.name for i in page] == [f"community-{a}", f"private-{a}"] and marker == page[-1].id
