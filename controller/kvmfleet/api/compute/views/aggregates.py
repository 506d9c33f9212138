"""Aggregate views per microversion (nova/api/openstack/compute/aggregates.py _marshall_aggregate): the
uuid from 2.41; the create answer has neither hosts nor metadata."""

from __future__ import annotations

from typing import Any

from kvmfleet.api.compute.views.services import nova_time
from kvmfleet.api.microversion import APIVersion
from kvmfleet.store.models import Aggregate


def aggregate(version: APIVersion, agg: Aggregate, created: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "availability_zone": agg.availability_zone,
        "created_at": nova_time(agg.created_at),
        "deleted": False,
        "deleted_at": None,
        "id": agg.id,
        "name": agg.name,
        "updated_at": nova_time(agg.updated_at),
    }
    if not created:
        out["hosts"] = sorted(h.name for h in agg.hosts)
        out["metadata"] = dict(agg.metadata_ or {})
    if version.matches("2.41"):
        out["uuid"] = agg.uuid
    return {"aggregate": out}
