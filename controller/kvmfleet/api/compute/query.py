"""Query strings of the compute resources other than servers, checked as Nova's query schemas do:
unknown parameters are ignored until a microversion that forbids them (2.75 for most), then 400;
``limit`` is a non-negative integer capped at MAX_LIMIT; booleans are oslo's strict ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request

from kvmfleet.api.compute.views.links import MAX_LIMIT
from kvmfleet.api.faults import BadRequest

TRUE = {"1", "t", "true", "on", "y", "yes"}
FALSE = {"0", "f", "false", "off", "n", "no"}


def check(request: Request, allowed: Iterable[str], strict: bool) -> None:
    """With ``strict`` (the microversion forbids extra parameters) a parameter not in ``allowed`` is 400."""
    if not strict:
        return
    known = set(allowed)
    for key, value in request.query_params.multi_items():
        if key not in known:
            raise BadRequest(f"Invalid input for query parameters {key}. Value: {value[:200]}. Additional "
                             f"properties are not allowed ('{key}' was unexpected)")


def single(request: Request, name: str) -> str | None:
    """The parameter's value (the last one when it is repeated), or None."""
    values = request.query_params.getlist(name)
    return values[-1] if values else None


def integer(request: Request, name: str, minimum: int = 0) -> int | None:
    text = single(request, name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {text[:200]}. "
                         f"'{text[:200]}' is not an integer") from None
    if value < minimum:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {text}. "
                         f"{value} is less than the minimum of {minimum}")
    return value


def limit_and_marker(request: Request) -> tuple[int, str | None]:
    """Nova's get_limit_and_marker: limit defaults to (and is capped at) MAX_LIMIT."""
    limit = integer(request, "limit")
    return (MAX_LIMIT if limit is None else min(limit, MAX_LIMIT)), single(request, "marker")


def boolean(value: str | None, name: str, default: bool = False) -> bool:
    """oslo's bool_from_string(strict=True)."""
    if value is None:
        return default
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise BadRequest(f"Invalid input for query parameters {name}. Value: {value[:200]}. "
                     f"'{value[:200]}' is not a boolean")


def doc(*names: str) -> dict[str, list[dict[str, object]]]:
    """``openapi_extra`` documenting query parameters read from the request (FastAPI merges the lists)."""
    return {"parameters": [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                           for n in names]}
