"""Host aggregates (nova/compute/api.py AggregateAPI): named groups of hosts with metadata, read by the
scheduler (AggregateInstanceExtraSpecsFilter). An aggregate's ``availability_zone`` metadata puts its
hosts in that zone, as in Nova: a host is in at most one zone; joining or leaving an aggregate with a zone
(or changing the zone) moves its hosts, and is refused when that would move a host that has instances.
A host that leaves its last zoned aggregate returns to the default zone ``nova``. Every function runs
inside the caller's transaction.

Errors: NotFound (404), AlreadyExists (409, a taken name or a host already in), InUse (409, a zone
conflict when adding or removing a host), InvalidInput (400, a refused update or delete).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet.compute.services import DEFAULT_ZONE
from kvmfleet.store.api import UNSET
from kvmfleet.store.errors import AlreadyExists, InUse, InvalidInput, NotFound
from kvmfleet.store.models import Aggregate, Host, Instance, utcnow

AZ_KEY = "availability_zone"


def _check_zone_name(name: Any, aggregate: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"Aggregate {aggregate} does not support empty named availability zone")
    if ":" in name or name != name.strip() or len(name) > 255:
        raise InvalidInput(f"Invalid availability zone name {name!r}: printable characters except ':', not "
                           "starting or ending with whitespace")
    return name


def get(session: Session, aggregate_id: int) -> Aggregate:
    aggregate = session.get(Aggregate, aggregate_id)
    if aggregate is None:
        raise NotFound(f"Aggregate {aggregate_id} could not be found.", aggregate=aggregate_id)
    return aggregate


def list_all(session: Session) -> list[Aggregate]:
    return list(session.scalars(select(Aggregate).order_by(Aggregate.id)).all())


def _name_free(session: Session, name: str, but: int | None = None) -> None:
    taken = session.scalars(select(Aggregate).where(Aggregate.name == name)).first()
    if taken is not None and taken.id != but:
        raise AlreadyExists(f"Aggregate {name} already exists.", aggregate=name)


def create(session: Session, name: str, availability_zone: str | None = None) -> Aggregate:
    _name_free(session, name)
    metadata = {AZ_KEY: _check_zone_name(availability_zone, name)} if availability_zone else {}
    aggregate = Aggregate(name=name, metadata_=metadata)
    session.add(aggregate)
    session.flush()
    return aggregate


def _instances_on(session: Session, hosts: list[Host]) -> int:
    if not hosts:
        return 0
    return int(session.scalar(select(func.count()).select_from(Instance).where(
        Instance.host.in_([h.name for h in hosts]), Instance.deleted_at.is_(None))) or 0)


def _zone_of(host: Host, without: Aggregate | None = None, plus: Aggregate | None = None) -> str | None:
    """The zone a host's aggregates give it (None: no zoned aggregate), leaving out or adding one."""
    aggregates = [a for a in host.aggregates if a is not without]
    if plus is not None and plus not in aggregates:
        aggregates.append(plus)
    zones = {a.availability_zone for a in aggregates if a.availability_zone}
    return next(iter(zones)) if zones else None


def _sync_zones(hosts: list[Host]) -> None:
    for host in hosts:
        host.availability_zone = _zone_of(host) or DEFAULT_ZONE


def _safe_zone_change(session: Session, aggregate: Aggregate, zone: Any, hosts: list[Host], what: str,
                      check_instances: bool) -> None:
    """Nova's is_safe_to_update_az: no host of ``hosts`` is in another zone already; with
    ``check_instances``, a changed zone must not move hosts that have instances."""
    _check_zone_name(zone, aggregate.name)
    conflicting = sorted({a.availability_zone for h in hosts for a in h.aggregates
                          if a.availability_zone and a.availability_zone != zone and a.id != aggregate.id})
    if conflicting:
        raise InvalidInput(f"{what} {aggregate.id}. Reason: One or more hosts already in availability zone(s) "
                           f"{conflicting}")
    if check_instances and aggregate.availability_zone != zone and _instances_on(session, hosts):
        raise InvalidInput(f"{what} {aggregate.id}. Reason: One or more hosts contain instances in this zone")


def update(session: Session, aggregate_id: int, name: str | None = None, availability_zone: Any = UNSET
           ) -> Aggregate:
    aggregate = get(session, aggregate_id)
    if name is not None:
        _name_free(session, name, but=aggregate.id)
        aggregate.name = name
    if availability_zone is not UNSET:
        _safe_zone_change(session, aggregate, availability_zone, list(aggregate.hosts), "Cannot update aggregate",
                          check_instances=True)
        aggregate.metadata_ = {**(aggregate.metadata_ or {}), AZ_KEY: availability_zone}
        _sync_zones(list(aggregate.hosts))
    aggregate.updated_at = utcnow()
    session.flush()
    return aggregate


def set_metadata(session: Session, aggregate_id: int, metadata: Mapping[str, str | None]) -> Aggregate:
    """Merge ``metadata`` into the aggregate's; a key given None is removed (Nova's update_metadata)."""
    aggregate = get(session, aggregate_id)
    if AZ_KEY in metadata:
        zone = metadata[AZ_KEY]
        if zone is None:
            if aggregate.hosts and aggregate.availability_zone and _instances_on(session, list(aggregate.hosts)):
                raise InvalidInput(f"Cannot update metadata of aggregate {aggregate.id}. Reason: One or more hosts "
                                   "contain instances in this zone")
        else:
            _safe_zone_change(session, aggregate, zone, list(aggregate.hosts),
                              "Cannot update metadata of aggregate", check_instances=True)
    merged = dict(aggregate.metadata_ or {})
    for key, value in metadata.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    aggregate.metadata_ = merged
    if AZ_KEY in metadata:
        _sync_zones(list(aggregate.hosts))
    aggregate.updated_at = utcnow()
    session.flush()
    return aggregate


def _host(session: Session, name: str) -> Host:
    host = session.scalars(select(Host).where(Host.name == name)).first()
    if host is None:
        raise NotFound(f"Compute host {name} could not be found.", host=name)
    return host


def add_host(session: Session, aggregate_id: int, host_name: str) -> Aggregate:
    host = _host(session, host_name)
    aggregate = get(session, aggregate_id)
    if host in aggregate.hosts:
        raise AlreadyExists(f"Aggregate {aggregate.id} already has host {host_name}.", host=host_name)
    zone = aggregate.availability_zone
    if zone:
        others = sorted({a.availability_zone for a in host.aggregates if a.availability_zone and
                         a.availability_zone != zone})
        if others:
            raise InUse(f"Cannot add host to aggregate {aggregate.id}. Reason: One or more hosts already in "
                        f"availability zone(s) {others}")
        current = host.availability_zone or DEFAULT_ZONE
        count = _instances_on(session, [host])
        if current != zone and count:
            raise InUse(f"Cannot add host to aggregate {aggregate.id}. Reason: The host cannot be added to the "
                        f"aggregate as the availability zone of the host would change from '{current}' to "
                        f"'{zone}' but the host already has {count} instance(s). Changing the AZ of an existing "
                        "instance is not supported by this action. Move the instances away from this host then "
                        "try again.")
    aggregate.hosts.append(host)
    session.flush()
    if zone:
        _sync_zones([host])
    aggregate.updated_at = utcnow()
    session.flush()
    return aggregate


def remove_host(session: Session, aggregate_id: int, host_name: str) -> Aggregate:
    aggregate = get(session, aggregate_id)
    host = session.scalars(select(Host).where(Host.name == host_name)).first()
    if host is None or host not in aggregate.hosts:
        raise NotFound(f"Cannot remove host {host_name} in aggregate {aggregate_id}", host=host_name)
    zone = aggregate.availability_zone
    if zone:
        after = _zone_of(host, without=aggregate) or DEFAULT_ZONE
        count = _instances_on(session, [host])
        if after != (host.availability_zone or DEFAULT_ZONE) and count:
            raise InUse(f"Cannot remove host from aggregate {aggregate.id}. Reason: The host cannot be removed "
                        f"from the aggregate as the availability zone of the host would change from "
                        f"'{host.availability_zone}' to '{after}' but the host already has {count} instance(s). "
                        "Changing the AZ of an existing instance is not supported by this action. Move the "
                        "instances away from this host then try again.")
    aggregate.hosts.remove(host)
    session.flush()
    if zone:
        _sync_zones([host])
    aggregate.updated_at = utcnow()
    session.flush()
    return aggregate


def delete(session: Session, aggregate_id: int) -> None:
    aggregate = get(session, aggregate_id)
    if aggregate.hosts:
        raise InvalidInput(f"Cannot remove host from aggregate {aggregate.id}. Reason: Host aggregate is not empty.")
    session.delete(aggregate)
    session.flush()
