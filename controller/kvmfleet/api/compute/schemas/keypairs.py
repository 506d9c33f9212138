"""Request schemas of os-keypairs (nova/api/openstack/compute/schemas/keypairs.py), Draft 4: ``type`` from
2.2, ``user_id`` (admins) from 2.10; the key name is Nova's keypair_name_special_chars."""

from __future__ import annotations

import copy
from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.microversion import APIVersion

NAME = {"allOf": [t.NAME, {"type": "string", "pattern": r"^[_\- a-zA-Z0-9]+$", "minLength": 1, "maxLength": 255}]}
TYPE = {"type": "string", "enum": ["ssh", "x509"]}

_CREATE = {
    "type": "object",
    "properties": {
        "keypair": {
            "type": "object",
            "properties": {"name": NAME, "public_key": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["keypair"],
    "additionalProperties": False,
}
_CREATE_V22 = copy.deepcopy(_CREATE)
_CREATE_V22["properties"]["keypair"]["properties"]["type"] = TYPE
CREATE_V210 = copy.deepcopy(_CREATE_V22)
CREATE_V210["properties"]["keypair"]["properties"]["user_id"] = {"type": "string"}


def create_schema(version: APIVersion) -> dict[str, Any]:
    if version.matches("2.10"):
        return CREATE_V210
    return _CREATE_V22 if version.matches("2.2") else _CREATE


def query_params(version: APIVersion, listing: bool) -> tuple[str, ...]:
    params: tuple[str, ...] = ("user_id",) if version.matches("2.10") else ()
    if listing and version.matches("2.35"):
        params += ("limit", "marker")
    return params
