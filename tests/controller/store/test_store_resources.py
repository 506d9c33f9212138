"""Validated create/delete of projects, flavors and server groups; the server-group lock."""

from __future__ import annotations

import threading
import time

import pytest
from kvmfleet.store import (
    AlreadyExists,
    Flavor,
    Instance,
    InUse,
    InvalidInput,
    NotFound,
    ServerGroup,
    get_instance,
    get_server_group,
    lock_server_group,
    utcnow,
)
from kvmfleet.store import resources as res
from sqlalchemy import func, select


def test_default_flavors_are_created_once(store):
    with store.transaction() as s:
        created = res.create_default_flavors(s)
        assert [(f.name, f.vcpus, f.memory_mb, f.root_gb) for f in created[:4]] == [
            ("m1.nano", 1, 128, 1), ("m1.micro", 1, 256, 1), ("m1.tiny", 1, 512, 1), ("m1.small", 1, 2048, 20)]
    with store.transaction() as s:
        assert res.create_default_flavors(s) == []
        assert s.execute(select(func.count(Flavor.id))).scalar_one() == len(res.DEFAULT_FLAVORS)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"vcpus": 0, "memory_mb": 64}, "vcpus must be an integer >= 1"),
    ({"vcpus": 1, "memory_mb": 0}, "ram (MiB) must be an integer >= 1"),
    ({"vcpus": 1, "memory_mb": 64, "root_gb": -1}, "disk (GiB) must be an integer >= 0"),
    ({"vcpus": 1, "memory_mb": 64, "flavor_id": "../x"}, "invalid flavor id name '../x'"),
])
def test_bad_flavors_are_refused_and_nothing_is_stored(store, kwargs, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")), \
            store.transaction() as s:
        res.create_flavor(s, "f", **kwargs)
    with store.transaction() as s:
        assert s.execute(select(func.count(Flavor.id))).scalar_one() == 0


def test_duplicates_are_refused(store):
    with store.transaction() as s:
        res.create_project(s, "p")
        res.create_flavor(s, "f", vcpus=1, memory_mb=64, flavor_id="7")
    with pytest.raises(AlreadyExists), store.transaction() as s:
        res.create_project(s, "p")
    with pytest.raises(AlreadyExists, match="flavor id 7"), store.transaction() as s:
        res.create_flavor(s, "g", vcpus=1, memory_mb=64, flavor_id="7")


def test_server_group_rules(store):
    with store.transaction() as s:
        res.create_project(s, "p")
        g = res.create_server_group(s, "web", "anti-affinity", "p", max_server_per_host=2)
        assert g.policy.value == "anti-affinity"
    with pytest.raises(InvalidInput, match="only valid with the anti-affinity"), store.transaction() as s:
        res.create_server_group(s, "db", "affinity", "p", max_server_per_host=2)
    with pytest.raises(AlreadyExists), store.transaction() as s:
        res.create_server_group(s, "web", "affinity", "p")
    with pytest.raises(NotFound, match="project q not found"), store.transaction() as s:
        res.create_server_group(s, "x", "affinity", "q")


def test_deleting_a_group_keeps_its_members(store, make):
    project = make.project("p")
    with store.transaction() as s:
        gid = res.create_server_group(s, "web", "affinity", "p").id
    uuid = make.instance(project, server_group_id=gid)
    with store.transaction() as s:
        assert [m.uuid for m in get_server_group(s, "web").members] == [uuid]
        res.delete_server_group(s, "web")
    with store.transaction() as s:
        assert get_instance(s, uuid).server_group_id is None


def test_project_delete_purges_deleted_instances_and_refuses_live_ones(store, make):
    project = make.project("p")
    live = make.instance(project, "live")
    make.instance(project, "old", deleted_at=utcnow(), vm_state="deleted")
    with pytest.raises(InUse, match="still has 1 instance"), store.transaction() as s:
        res.delete_project(s, "p")
    with store.transaction() as s:
        get_instance(s, live).deleted_at = utcnow()
    with store.transaction() as s:
        res.delete_project(s, project)
    with store.transaction() as s:
        assert s.execute(select(func.count(Instance.uuid))).scalar_one() == 0


def test_group_lock_serialises_late_affinity_checks(store, make):
    """Members placed at once on one host of an anti-affinity group: with the lock, exactly one lands."""
    project = make.project("p")
    with store.transaction() as s:
        gid = res.create_server_group(s, "web", "anti-affinity", "p").id
    n = 6
    uuids = [make.instance(project, f"m{k}", server_group_id=gid) for k in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    placed, refused, errors = [], [], []

    def worker(uuid):
        try:
            barrier.wait()
            with store.transaction() as s:
                lock_server_group(s, gid)
                on_host = s.execute(select(func.count(Instance.uuid)).where(
                    Instance.server_group_id == gid, Instance.host == "h1")).scalar_one()
                if on_host:
                    refused.append(uuid)
                    return
                time.sleep(0.05)  # the claim would happen here: widen the window a missing lock would lose
                s.execute(Instance.__table__.update().where(Instance.uuid == uuid).values(host="h1"))
            placed.append(uuid)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(u,)) for u in uuids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert (len(placed), len(refused)) == (1, n - 1)
    with pytest.raises(NotFound), store.transaction() as s:
        lock_server_group(s, "nope")
    with store.transaction() as s:
        assert s.get(ServerGroup, gid) is not None
