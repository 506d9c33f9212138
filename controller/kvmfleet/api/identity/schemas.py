"""JSON schemas (Draft 4) of the identity request bodies, after keystone's (auth/schema.py,
resource/schema.py, identity/schema.py, assignment/schema.py). Keystone keeps unknown attributes of users
and projects as "extra" properties; kvmfleet has nowhere to keep them, so they are refused (400) rather
than silently dropped."""

from __future__ import annotations

from typing import Any

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_REF = {"type": "object", "properties": {"id": _ID, "name": {"type": "string", "minLength": 1, "maxLength": 255}},
        "additionalProperties": False, "minProperties": 1}
_NAME64 = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"[\S]+"}
_NAME255 = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"[\S]+"}
_DESCRIPTION = {"type": ["string", "null"], "maxLength": 65535}
_BOOL = {"type": "boolean"}
_PASSWORD = {"type": ["string", "null"], "minLength": 1, "maxLength": 4096}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out["type"] = [schema["type"], "null"] if isinstance(schema["type"], str) else [*schema["type"], "null"]
    return out


def _wrapped(key: str, properties: dict[str, Any], required: list[str] | None = None,
             min_properties: int = 0) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        inner["required"] = required
    if min_properties:
        inner["minProperties"] = min_properties
    return {"type": "object", "properties": {key: inner}, "required": [key], "additionalProperties": False}


token_issue: dict[str, Any] = {
    "type": "object",
    "properties": {"auth": {
        "type": "object",
        "properties": {
            "identity": {
                "type": "object",
                "properties": {
                    "methods": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "password": {
                        "type": "object",
                        "properties": {"user": {
                            "type": "object",
                            "properties": {"id": _ID, "name": {"type": "string", "minLength": 1, "maxLength": 255},
                                           "password": {"type": "string", "maxLength": 4096}, "domain": _REF},
                            "required": ["password"], "additionalProperties": False}},
                        "required": ["user"], "additionalProperties": False},
                    "token": {"type": "object", "properties": {"id": {"type": "string", "minLength": 1}},
                              "required": ["id"], "additionalProperties": False},
                },
                # other methods' data (totp, application_credential...): accepted here, refused with 401
                "required": ["methods"], "additionalProperties": {"type": "object"}},
            # "unscoped", or an object; old keystoneauth sent {"unscoped": {}}
            "scope": {
                "type": ["object", "string"],
                "properties": {
                    "project": {"type": "object",
                                "properties": {"id": _ID, "name": {"type": "string", "minLength": 1,
                                                                   "maxLength": 64}, "domain": _REF},
                                "additionalProperties": False, "minProperties": 1},
                    "domain": _REF,
                    "system": {"type": "object", "properties": {"all": _BOOL}},
                    "OS-TRUST:trust": {"type": "object", "properties": {"id": _ID}},
                    "unscoped": {"type": "object"},
                },
                "additionalProperties": False},
        },
        "required": ["identity"], "additionalProperties": False}},
    "required": ["auth"],
    "additionalProperties": False,
}

_OPTIONS = {"type": "object"}
_NO_OPTIONS = {"type": "object", "maxProperties": 0}  # resource options (immutable) are not kept

domain_create = _wrapped("domain", {"name": _NAME64, "description": _DESCRIPTION, "enabled": _BOOL,
                                    "tags": {"type": "array", "maxItems": 0}, "options": _NO_OPTIONS}, ["name"])
domain_update = _wrapped("domain", {"name": _NAME64, "description": _DESCRIPTION, "enabled": _BOOL,
                                    "options": _NO_OPTIONS}, min_properties=1)

# project names reach the hosts' domain metadata: the collection's rule (kvmfleet.store.resources)
_PROJECT_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$"}
_PROJECT = {"name": _PROJECT_NAME, "description": _DESCRIPTION, "domain_id": _nullable(_ID), "enabled": _BOOL,
            "is_domain": _BOOL, "parent_id": _nullable(_ID), "tags": {"type": "array", "maxItems": 0},
            "options": _NO_OPTIONS}
project_create = _wrapped("project", _PROJECT, ["name"])
project_update = _wrapped("project", _PROJECT, min_properties=1)

_USER = {"name": _NAME255, "password": _PASSWORD, "domain_id": _ID, "enabled": _BOOL,
         "default_project_id": _nullable(_ID), "email": {"type": ["string", "null"], "maxLength": 255},
         "description": _DESCRIPTION, "options": _OPTIONS}
user_create = _wrapped("user", _USER, ["name"])
user_update = _wrapped("user", _USER, min_properties=1)
user_password = _wrapped("user", {"password": {"type": "string", "minLength": 1, "maxLength": 4096},
                                  "original_password": {"type": "string", "maxLength": 4096}},
                         ["password", "original_password"])

_ROLE = {"name": _NAME255, "description": _DESCRIPTION, "domain_id": {"type": "null"}, "options": _OPTIONS}
role_create = _wrapped("role", _ROLE, ["name"])
role_update = _wrapped("role", _ROLE, min_properties=1)
