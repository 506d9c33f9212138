"""Request bodies: read as JSON (400 when malformed, 413 when too large) and checked against a JSON
schema (Draft 4, as nova/api/validation), with Nova's messages: unknown keys are 400.

    body: dict = Depends(json_body)         # in the route signature
    validate(schemas.create, body)          # in the handler

``openapi_body(schema)`` gives the ``openapi_extra`` that documents the body in the served OpenAPI
document (so schemathesis and readers see it).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from fastapi import Request

from kvmfleet.api.faults import ApiError, BadRequest, TooLarge

MAX_BODY = 114688  # oslo.middleware's default max_request_body_size (bytes)
SECRET_FIELDS = frozenset({"user_data", "adminPass", "password", "private_key"})


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise TooLarge("Request is too large.")
    if not raw.strip():
        raise BadRequest("The request body is empty: a JSON document is required.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Malformed request body: it is not valid JSON.") from None


async def optional_json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise TooLarge("Request is too large.")
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("Malformed request body: it is not valid JSON.") from None


def _field(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "the request body"


def validate(schema: dict[str, Any], body: Any, format_checker: jsonschema.FormatChecker | None = None) -> Any:
    """Raise BadRequest naming the first invalid field (Nova's 'Invalid input for field/attribute ...').
    ``format_checker``: the service's own formats (a check raising an ApiError gives its message)."""
    validator = jsonschema.Draft4Validator(schema, format_checker=format_checker or jsonschema.FormatChecker())
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    if error is None:
        return body
    if isinstance(error.cause, ApiError):
        raise error.cause
    if SECRET_FIELDS.intersection(str(p) for p in error.absolute_path):
        # never echo a secret (user data, a password) back: name the field and the rule only
        raise BadRequest(f"Invalid input for field/attribute {_field(error)}. The value failed the "
                         f"'{error.validator}' check.")
    value = error.instance
    shown = json.dumps(value)[:200] if not isinstance(value, str) else value[:200]
    if error.validator == "additionalProperties":
        raise BadRequest(f"Additional properties are not allowed ({error.message.split('(')[-1].rstrip(')')})"
                         if "(" in error.message else error.message)
    if error.validator == "required":
        raise BadRequest(f"Invalid input for field/attribute {_field(error)}. Value: {shown}. {error.message}")
    raise BadRequest(f"Invalid input for field/attribute {_field(error)}. Value: {shown}. {error.message}")


def openapi_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}
