"""IPAM against the real store, on SQLite and PostgreSQL: concurrent allocations on a nearly full pool
(each in its own transaction, as two API requests of different projects on a shared network are, so no
quota lock orders them) get distinct addresses, and the ones too many get Neutron's
IpAddressGenerationFailure with no port left behind; VNIs are unique under concurrent creates."""

from __future__ import annotations

import threading

import pytest
from kvmfleet.network import errors, tenant
from kvmfleet.store.network_models import IPAllocation, Network, Port
from sqlalchemy import func, select

WORKERS = 8


def _race(fn, n: int = WORKERS) -> list[object]:
    barrier = threading.Barrier(n)
    out: list[object] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            result: object = fn(i)
        except errors.StoreError as exc:
            result = exc
        with lock:
            out.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_concurrent_ports_on_a_nearly_full_pool(store, make) -> None:
    projects = [make.project(f"ipam-{i}") for i in range(WORKERS)]
    with store.transaction() as s:
        net = tenant.create_network(s, projects[0], name="shared", shared=True, admin=True)
        tenant.create_subnet(s, projects[0], net.id, cidr="10.9.0.0/29", admin=True)  # pool .2-.6
        tenant.create_port(s, projects[0], net.id)
        tenant.create_port(s, projects[0], net.id)
        net_id = net.id

    def create(i: int) -> str:
        with store.transaction() as s:
            port = tenant.create_port(s, projects[i], net_id, name=f"p{i}")
            return port.fixed_ips[0].ip_address

    results = _race(create)
    addresses = sorted(r for r in results if isinstance(r, str))
    failures = [r for r in results if not isinstance(r, str)]
    assert addresses == ["10.9.0.4", "10.9.0.5", "10.9.0.6"], results
    assert len(failures) == WORKERS - 3
    assert all(isinstance(f, errors.IpAddressGenerationFailure) and f.http_status == 409 for f in failures)
    assert str(failures[0]) == f"No more IP addresses available on network {net_id}."
    with store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Port).where(Port.network_id == net_id)) == 5
        assert s.scalar(select(func.count()).select_from(IPAllocation)) == 5


def test_concurrent_networks_get_distinct_vnis(store, make) -> None:
    projects = [make.project(f"vni-{i}") for i in range(WORKERS)]

    def create(i: int) -> int:
        with store.transaction() as s:
            return tenant.create_network(s, projects[i], name=f"n{i}").segmentation_id

    vnis = _race(create)
    assert sorted(vnis) == list(range(1000, 1000 + WORKERS)), vnis
    with store.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Network)) == WORKERS


def test_a_failed_port_create_leaves_nothing(store, make) -> None:
    project = make.project("left")
    with store.transaction() as s:
        net = tenant.create_network(s, project, name="n")
        tenant.create_subnet(s, project, net.id, cidr="10.8.0.0/30")  # one address: .2
        tenant.create_port(s, project, net.id)
        with pytest.raises(errors.IpAddressGenerationFailure):
            tenant.create_port(s, project, net.id)  # the caller's transaction goes on
        with pytest.raises(errors.NeutronConflict, match="is in use"):
            tenant.create_port(s, project, net.id, fixed_ips=[{"ip_address": "10.8.0.2"}], admin=True)
        assert s.scalar(select(func.count()).select_from(Port)) == 1
