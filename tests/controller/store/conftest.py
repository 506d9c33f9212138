"""Store fixtures: every store test runs on SQLite (a temporary file) and on the real PostgreSQL that
tests/postgres.sh starts (make test does). PostgreSQL unreachable is a failure, not a skip."""

from __future__ import annotations

import pytest
from db_fixtures import BACKENDS, fresh_database, isolated_settings
from kvmfleet.store import open_store


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    yield from isolated_settings(tmp_path, monkeypatch)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A URL to a fresh, empty database of each backend."""
    yield from fresh_database(request.param, tmp_path, "kvmfleet_t")


@pytest.fixture
def store(db_url):
    s = open_store(db_url)
    yield s
    s.dispose()


class Factory:
    """Builds rows for tests: each call commits its own transaction and returns plain ids/values."""

    def __init__(self, store) -> None:
        self.store = store

    def project(self, name: str = "demo", **quota) -> str:
        from kvmfleet import quota as quota_mod
        from kvmfleet.store import Project

        with self.store.transaction() as s:
            p = Project(name=name)
            s.add(p)
            s.flush()
            if quota:
                quota_mod.set_limits(s, p, **quota)
            return p.id

    def flavor(self, name: str = "m1.small", vcpus: int = 1, memory_mb: int = 256, root_gb: int = 1, **kw) -> str:
        from kvmfleet.store import Flavor

        with self.store.transaction() as s:
            f = Flavor(name=name, vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb, **kw)
            s.add(f)
            s.flush()
            return f.id

    def host(self, name: str = "h1", vcpus: int = 2, memory_mb: int = 4608, local_gb: int = 100, **kw) -> str:
        from kvmfleet.store import Host

        kw.setdefault("cpu_allocation_ratio", 1.0)
        with self.store.transaction() as s:
            s.add(Host(name=name, vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb, **kw))
        return name

    def instance(self, project_id: str, name: str = "vm", vcpus: int = 1, memory_mb: int = 256, root_gb: int = 1,
                 **kw) -> str:
        from kvmfleet.store import Instance

        with self.store.transaction() as s:
            i = Instance(name=name, project_id=project_id, flavor_name="test", vcpus=vcpus, memory_mb=memory_mb,
                         root_gb=root_gb, **kw)
            s.add(i)
            s.flush()
            return i.uuid


@pytest.fixture
def make(store) -> Factory:
    return Factory(store)
