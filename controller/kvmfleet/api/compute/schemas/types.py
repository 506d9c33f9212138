"""Parameter types and formats shared by the compute request schemas (nova/api/validation/parameter_types.py
and validators.py): the same shapes, patterns and messages, written for jsonschema Draft 4.

``FORMATS`` is the format checker every compute schema is validated with: uuid, name (printable, no
leading or trailing whitespace), description (printable), base64, regex, date-time, ipv4/ipv6.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import unicodedata
import uuid as uuidlib
from typing import Any

import jsonschema

from kvmfleet.api.faults import BadRequest

NAME_REASON = "printable characters. Can not start or end with whitespace."
FORMATS = jsonschema.FormatChecker()


class InvalidName(BadRequest):
    def __init__(self, reason: str = NAME_REASON) -> None:
        super().__init__(f"An invalid 'name' value was provided. The name must be: {reason}")


def _printable(char: str) -> bool:
    """Nova's _is_printable: not a control/format/unassigned char, and no space but plain spaces (Zs)."""
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


def _edge_ok(char: str) -> bool:
    return _printable(char) and unicodedata.category(char) != "Zs"


def is_valid_name(value: str) -> bool:
    return all(_printable(c) for c in value) and (not value or (_edge_ok(value[0]) and _edge_ok(value[-1])))


@FORMATS.checks("name", raises=InvalidName)
def _check_name(value: Any) -> bool:
    if not isinstance(value, str) or not is_valid_name(value):
        raise InvalidName()
    return True


@FORMATS.checks("description")
def _check_description(value: Any) -> bool:
    return not isinstance(value, str) or all(_printable(c) for c in value)


@FORMATS.checks("base64")
def _check_base64(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value.encode("utf-8"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


@FORMATS.checks("uuid")
def _check_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return str(uuidlib.UUID(value)).replace("-", "") == value.replace("-", "").lower()
    except ValueError:
        return False


@FORMATS.checks("regex")
def _check_regex(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    if not value:
        return False
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def parse_isotime(value: str) -> dt.datetime:
    """ISO 8601 as oslo's parse_isotime takes it; naive means UTC. ValueError when it is not one."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


@FORMATS.checks("date-time")
def _check_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parse_isotime(value)
    except ValueError:
        return False
    return True


@FORMATS.checks("ipv4")
def _check_ipv4(value: Any) -> bool:
    import ipaddress

    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@FORMATS.checks("ipv6")
def _check_ipv6(value: Any) -> bool:
    import ipaddress

    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


BOOLEAN = {"type": ["boolean", "string"],
           "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                    False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
TRUE_STRINGS = {"true", "1", "on", "yes"}


def as_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in TRUE_STRINGS)


NAME = {"type": "string", "format": "name", "minLength": 1, "maxLength": 255}
NAME_OR_NONE = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255}, {"type": "null"}]}
DESCRIPTION = {"type": ["string", "null"], "format": "description", "minLength": 0, "maxLength": 255}
POSITIVE_INTEGER = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}
NON_NEGATIVE_INTEGER = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "minLength": 1}
UUID = {"type": "string", "format": "uuid"}
IMAGE_ID_OR_EMPTY = {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]}
FLAVOR_REF = {"type": ["string", "integer"], "minLength": 1}
ADMIN_PASSWORD = {"type": "string"}
# Nova's pattern as written: inside the class "9-_" is a range ('9'..'_'), which Nova accepts too.
METADATA_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
METADATA = {"type": "object", "patternProperties": {METADATA_KEY: {"type": "string", "maxLength": 255}},
            "additionalProperties": False}
DISK_CONFIG = {"type": "string", "enum": ["AUTO", "MANUAL"]}
IP_ADDRESS = {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
ACCESS_IPV4 = {"type": "string", "format": "ipv4"}
ACCESS_IPV6 = {"type": "string", "format": "ipv6"}
TAG = {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60}
FQDN = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}
PERSONALITY = {"type": "array", "items": {"type": "object", "properties": {
    "path": {"type": "string"}, "contents": {"type": "string", "format": "base64"}},
    "additionalProperties": False}}
TRUSTED_CERTS = {"type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
                 "items": {"type": "string", "minLength": 1}}
USER_DATA = {"type": "string", "format": "base64", "maxLength": 65535}


def int_param(value: Any, name: str, minimum: int | None = None) -> int:
    """A string-or-integer body value as an int (Nova's validate_integer), 400 naming the field."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer.") from None
    if minimum is not None and number < minimum:
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                         f"{value} is less than the minimum of {minimum}")
    return number


def validate_query(schema: dict[str, Any], params: dict[str, list[str]]) -> dict[str, list[str]]:
    """Query parameters ({name: [values]}) against a query schema, with Nova's query message."""
    validator = jsonschema.Draft4Validator(schema, format_checker=FORMATS)
    error = jsonschema.exceptions.best_match(validator.iter_errors(params))
    if error is None:
        return params
    if isinstance(error.cause, BadRequest):
        raise error.cause
    path = list(error.absolute_path)
    if path:
        value = error.instance
        raise BadRequest(f"Invalid input for query parameters {path[0]}. Value: {value}. {error.message}")
    raise BadRequest(error.message)
