"""Key pair views per microversion (nova/api/openstack/compute/views/keypairs.py): ``type`` from 2.2,
``keypairs_links`` from 2.35. The private key appears only in the answer to the create that made it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from kvmfleet.api.compute.views.links import collection_links
from kvmfleet.api.microversion import APIVersion
from kvmfleet.store.models import KeyPair


def _naive(value: Any) -> str | None:
    # Nova shows the keypair's timestamps as naive UTC with microseconds (its DB's datetime, isoformat)
    return value.replace(tzinfo=None).isoformat() if value is not None else None


def _base(keypair: KeyPair) -> dict[str, Any]:
    return {"name": keypair.name, "public_key": keypair.public_key, "fingerprint": keypair.fingerprint}


def create(version: APIVersion, keypair: KeyPair, private_key: str | None) -> dict[str, Any]:
    out = {**_base(keypair), "user_id": keypair.user_id}
    if private_key is not None:
        out["private_key"] = private_key
    if version.matches("2.2"):
        out["type"] = keypair.type
    return {"keypair": out}


def show(version: APIVersion, keypair: KeyPair) -> dict[str, Any]:
    out = {**_base(keypair), "user_id": keypair.user_id, "created_at": _naive(keypair.created_at),
           "deleted": False, "deleted_at": None, "id": keypair.id, "updated_at": None}
    if version.matches("2.2"):
        out["type"] = keypair.type
    return {"keypair": out}


def index(request: Request, version: APIVersion, keypairs: list[KeyPair], limit: int | None) -> dict[str, Any]:
    items = []
    for kp in keypairs:
        item = _base(kp)
        if version.matches("2.2"):
            item["type"] = kp.type
        items.append({"keypair": item})
    out: dict[str, Any] = {"keypairs": items}
    if version.matches("2.35"):
        links = collection_links(request, "os-keypairs", keypairs, "name", limit)
        if links:
            out["keypairs_links"] = links
    return out
