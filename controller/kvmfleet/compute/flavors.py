"""Flavors as the compute API serves them (nova/compute/flavors.py, objects/flavor.py): lookups by
flavorid, filtered and sorted pages, create with Nova's id rules, description updates and extra specs.
Creation and deletion themselves are kvmfleet.store.resources' (the CLI calls the same functions).
All run inside the caller's transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.store import resources
from kvmfleet.store.errors import AlreadyExists, InvalidInput, NotFound
from kvmfleet.store.models import Flavor

# Nova's flavorid: letters, digits, '.', ' ', '_', '-', not starting or ending with a space.
_FLAVOR_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]{1,255}(?<! )$")
# Nova's VALID_SORT_KEYS, mapped onto our columns (rxtx_factor and vcpu_weight are constants here; Nova's
# integer id and updated_at follow creation order).
SORT_KEYS: dict[str, Any] = {
    "flavorid": lambda f: f.id, "name": lambda f: f.name, "memory_mb": lambda f: f.memory_mb,
    "vcpus": lambda f: f.vcpus, "root_gb": lambda f: f.root_gb, "ephemeral_gb": lambda f: f.ephemeral_gb,
    "swap": lambda f: f.swap, "is_public": lambda f: f.is_public, "disabled": lambda f: f.disabled,
    "description": lambda f: f.description or "", "created_at": lambda f: f.created_at,
    "id": lambda f: f.created_at, "updated_at": lambda f: f.created_at, "rxtx_factor": lambda f: 1.0,
    "vcpu_weight": lambda f: 0,
}


@dataclass
class FlavorFilters:
    is_public: bool | None = True  # None: public and private
    include_disabled: bool = True
    min_memory_mb: int | None = None
    min_root_gb: int | None = None
    name: str | None = None


def get(session: Session, flavor_id: str) -> Flavor:
    """A flavor by its flavorid only (the API never looks flavors up by name)."""
    flavor = session.get(Flavor, flavor_id)
    if flavor is None:
        raise NotFound(f"Flavor {flavor_id} could not be found.", flavor=flavor_id)
    return flavor


def page(session: Session, filters: FlavorFilters, sort_key: str = "flavorid", sort_dir: str = "asc",
         limit: int | None = None, marker: str | None = None) -> list[Flavor]:
    """The flavors matching ``filters``, sorted, after ``marker`` (a flavorid; unknown -> InvalidInput)."""
    if sort_key not in SORT_KEYS or sort_dir not in ("asc", "desc"):
        raise InvalidInput(f"invalid sort key {sort_key!r} or direction {sort_dir!r}")
    query = select(Flavor)
    if filters.is_public is not None:
        query = query.where(Flavor.is_public.is_(filters.is_public))
    if not filters.include_disabled:
        query = query.where(Flavor.disabled.is_(False))
    if filters.min_memory_mb is not None:
        query = query.where(Flavor.memory_mb >= filters.min_memory_mb)
    if filters.min_root_gb is not None:
        query = query.where(Flavor.root_gb >= filters.min_root_gb)
    if filters.name is not None:
        query = query.where(Flavor.name == filters.name)
    key = SORT_KEYS[sort_key]
    # the flavorid breaks ties, as Nova's paginate_query adds the primary key
    rows = sorted(session.scalars(query).all(), key=lambda f: (key(f), f.id), reverse=sort_dir == "desc")
    if marker is not None:
        ids = [f.id for f in rows]
        if marker not in ids:
            if session.get(Flavor, marker) is None:
                raise InvalidInput(f"marker [{marker}] not found", marker=marker)
            return []  # the marker exists but is filtered out: Nova pages from its sort position
        rows = rows[ids.index(marker) + 1:]
    return rows if limit is None else rows[:limit]


def normalize_id(value: Any) -> str | None:
    """Nova's flavorid from a create request: a string or a number, or None for a generated UUID."""
    if value is None:
        return None
    text = str(value) if not isinstance(value, bool) else ""
    if not _FLAVOR_ID.match(text):
        raise InvalidInput(f"Invalid flavor id {value!r}: 1-255 characters of a-z A-Z 0-9 . _ - and space, "
                           "not starting or ending with a space")
    return text


def create(session: Session, name: str, *, ram: int, vcpus: int, disk: int, ephemeral: int = 0, swap: int = 0,
           flavor_id: Any = None, is_public: bool = True, description: str | None = None) -> Flavor:
    """Create a flavor as Nova's POST /flavors does (409 on a taken name or id)."""
    fid = normalize_id(flavor_id)
    if session.scalars(select(Flavor).where(Flavor.name == name)).first() is not None:
        raise AlreadyExists(f"Flavor with name {name} already exists.", flavor=name)
    if fid is not None and session.get(Flavor, fid) is not None:
        raise AlreadyExists(f"Flavor with ID {fid} already exists.", flavor=fid)
    flavor = resources.create_flavor(session, name, vcpus=vcpus, memory_mb=ram, root_gb=disk,
                                     ephemeral_gb=ephemeral, swap=swap, description=description,
                                     is_public=is_public)
    if fid is not None:
        flavor.id = fid  # resources' id rule is the collection's; the API's is Nova's (checked above)
        session.flush()
    return flavor


def delete(session: Session, flavor_id: str) -> Flavor:
    flavor = get(session, flavor_id)
    session.delete(flavor)
    session.flush()
    return flavor


def set_description(session: Session, flavor_id: str, description: str | None) -> Flavor:
    flavor = get(session, flavor_id)
    flavor.description = description
    session.flush()
    return flavor


def set_extra_specs(session: Session, flavor_id: str, specs: Mapping[str, Any]) -> dict[str, str]:
    """Merge ``specs`` into the flavor's extra specs (numbers are kept as strings, as Nova returns them)."""
    flavor = get(session, flavor_id)
    merged = dict(flavor.extra_specs or {})
    for key, value in specs.items():
        text = str(value)
        if len(text) > 255:
            raise InvalidInput(f"extra_specs value has more than 255 characters: {key}")
        merged[str(key)] = text
    flavor.extra_specs = merged
    session.flush()
    return {str(k): str(specs[k]) for k in specs}


def delete_extra_spec(session: Session, flavor_id: str, key: str) -> None:
    flavor = get(session, flavor_id)
    specs = dict(flavor.extra_specs or {})
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.", flavor=flavor_id, key=key)
    del specs[key]
    flavor.extra_specs = specs
    session.flush()


def extra_spec(session: Session, flavor_id: str, key: str) -> str:
    specs = get(session, flavor_id).extra_specs or {}
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.", flavor=flavor_id, key=key)
    return str(specs[key])
