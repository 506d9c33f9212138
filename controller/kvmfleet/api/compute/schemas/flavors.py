"""Request schemas of flavors and their extra specs (nova/api/openstack/compute/schemas/flavors.py,
flavors_extraspecs.py), Draft 4. Integers may come as strings: ``to_int`` turns a validated value into
an int within the database's range."""

from __future__ import annotations

import copy
from typing import Any

from kvmfleet.api.compute.schemas import types as t
from kvmfleet.api.faults import BadRequest
from kvmfleet.api.microversion import APIVersion

MAX_INT = 0x7FFFFFFF  # the database's integer columns
_POSITIVE = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1, "maximum": MAX_INT}
_NON_NEGATIVE = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 0, "maximum": MAX_INT}
DESCRIPTION = {"type": ["string", "null"], "format": "description", "minLength": 0, "maxLength": 65535}
VALID_SORT_KEYS = ("created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id", "is_public",
                   "memory_mb", "name", "root_gb", "rxtx_factor", "swap", "updated_at", "vcpu_weight", "vcpus")
QUERY_PARAMS = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir")

_CREATE = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {
                "name": t.NAME,
                "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
                       "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
                "ram": _POSITIVE,
                "vcpus": _POSITIVE,
                "disk": _NON_NEGATIVE,
                "OS-FLV-EXT-DATA:ephemeral": _NON_NEGATIVE,
                "swap": _NON_NEGATIVE,
                "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                                "minimum": 0, "exclusiveMinimum": True, "maximum": 3.40282e+38},
                "os-flavor-access:is_public": t.BOOLEAN,
            },
            "required": ["name", "ram", "vcpus", "disk"],
            "additionalProperties": False,
        },
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
_CREATE_V255 = copy.deepcopy(_CREATE)
_CREATE_V255["properties"]["flavor"]["properties"]["description"] = DESCRIPTION

UPDATE = {
    "type": "object",
    "properties": {"flavor": {"type": "object", "properties": {"description": DESCRIPTION},
                              "required": ["description"], "additionalProperties": False}},
    "required": ["flavor"],
    "additionalProperties": False,
}

EXTRA_SPEC_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
_SPECS = {"type": "object",
          "patternProperties": {EXTRA_SPEC_KEY: {"type": ["string", "number"], "maxLength": 255}},
          "additionalProperties": False}
EXTRA_SPECS_CREATE = {"type": "object", "properties": {"extra_specs": _SPECS}, "required": ["extra_specs"],
                      "additionalProperties": False}
EXTRA_SPEC_UPDATE = {**copy.deepcopy(_SPECS), "minProperties": 1, "maxProperties": 1}


def create_schema(version: APIVersion) -> dict[str, Any]:
    return _CREATE_V255 if version.matches("2.55") else _CREATE


def to_int(value: Any, name: str, minimum: int = 0) -> int:
    """A schema-checked integer (an int or a string of digits) as an int in [minimum, MAX_INT]."""
    number = int(value)
    if not minimum <= number <= MAX_INT:
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. {name} must be >= {minimum} "
                         f"and <= {MAX_INT}.")
    return number


def check_spec_values(specs: dict[str, Any]) -> None:
    """Numbers are accepted as values; as text they must fit 255 characters too (Nova's check)."""
    for key, value in specs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and len(str(value)) > 255:
            raise BadRequest(f"extra_specs value has more than 255 characters: {key}")
