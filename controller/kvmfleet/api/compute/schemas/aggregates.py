"""Request schemas of os-aggregates (nova/api/openstack/compute/schemas/aggregates.py), Draft 4."""

from __future__ import annotations

from kvmfleet.api.compute.schemas import types as t

# Nova's az_name: printable, no ':', not starting or ending with whitespace
AZ_NAME = {"type": "string", "format": "name", "pattern": "^[^:]*$", "minLength": 1, "maxLength": 255}
_AZ = {"oneOf": [AZ_NAME, {"type": "null"}]}
_NAME_SPACES = {"type": "string", "format": "description", "minLength": 1, "maxLength": 255, "pattern": r"^.*\S.*$"}

CREATE = {
    "type": "object",
    "properties": {"aggregate": {"type": "object", "properties": {"name": t.NAME, "availability_zone": _AZ},
                                 "required": ["name"], "additionalProperties": False}},
    "required": ["aggregate"],
    "additionalProperties": False,
}
UPDATE = {
    "type": "object",
    "properties": {"aggregate": {"type": "object", "properties": {"name": _NAME_SPACES, "availability_zone": _AZ},
                                 "additionalProperties": False,
                                 "anyOf": [{"required": ["name"]}, {"required": ["availability_zone"]}]}},
    "required": ["aggregate"],
    "additionalProperties": False,
}


def _host_action(name: str) -> dict:
    return {"type": "object",
            "properties": {name: {"type": "object", "properties": {"host": t.FQDN}, "required": ["host"],
                                  "additionalProperties": False}},
            "required": [name], "additionalProperties": False}


ADD_HOST = _host_action("add_host")
REMOVE_HOST = _host_action("remove_host")
_METADATA_WITH_NULL = {"type": "object",
                       "patternProperties": {t.METADATA_KEY: {"type": ["string", "null"], "maxLength": 255}},
                       "additionalProperties": False}
SET_METADATA = {
    "type": "object",
    "properties": {"set_metadata": {"type": "object", "properties": {"metadata": _METADATA_WITH_NULL},
                                    "required": ["metadata"], "additionalProperties": False}},
    "required": ["set_metadata"],
    "additionalProperties": False,
}
ACTIONS = {"add_host": ADD_HOST, "remove_host": REMOVE_HOST, "set_metadata": SET_METADATA}
ACTION_DOC = {"type": "object", "minProperties": 1, "maxProperties": 1,
              "properties": {name: schema["properties"][name] for name, schema in ACTIONS.items()},
              "additionalProperties": False}
