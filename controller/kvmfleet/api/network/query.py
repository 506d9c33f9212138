"""Neutron's list query parameters over rendered bodies: filters, ``fields=``, sorting, paging.

- a filter is any attribute of the resource (``name=default&shared=true``); a key repeated is an OR
  (``id=a&id=b``); booleans and numbers compare by value; a list attribute matches when it holds the
  value; ``fixed_ips=ip_address=10.0.0.5`` / ``fixed_ips=subnet_id=<id>`` as Neutron's ports take them;
  an unknown attribute is a 400, as Neutron's filter validation answers;
- ``fields=a&fields=b`` keeps only those attributes;
- ``sort_key``/``sort_dir`` (repeatable; default: by id), ``limit`` and ``marker`` (an id on the list;
  unknown -> 400, ``page_reverse``), with ``<collection>_links`` next/previous links.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from kvmfleet.api.compute.views.links import base_url
from kvmfleet.api.faults import BadRequest

CONTROL = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}
TAG_FILTERS = {"tags", "tags-any", "not-tags", "not-tags-any"}  # nothing is tagged
MAX_LIMIT = 1000


def _truth(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    return None


def _matches_one(actual: Any, wanted: str, key: str) -> bool:
    if isinstance(actual, bool):
        return _truth(wanted) is actual
    if isinstance(actual, int):
        return wanted.strip().lstrip("-").isdigit() and int(wanted) == actual
    if key == "fixed_ips" and isinstance(actual, list):
        name, sep, value = wanted.partition("=")
        if not sep or name not in ("ip_address", "subnet_id", "ip_address_substr"):
            raise BadRequest(f"Invalid fixed_ips filter {wanted!r}: use ip_address=, ip_address_substr= or "
                             "subnet_id=")
        if name == "ip_address_substr":
            return any(value in (ip.get("ip_address") or "") for ip in actual)
        return any(ip.get(name) == value for ip in actual)
    if isinstance(actual, list):
        return wanted in [str(a) for a in actual]
    if actual is None:
        return wanted == ""
    return str(actual) == wanted


def _filtered(items: list[dict[str, Any]], request: Request, attributes: set[str]) -> list[dict[str, Any]]:
    wanted: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key in CONTROL:
            continue
        if key in TAG_FILTERS:
            wanted.setdefault(key, []).append(value)
            continue
        if key not in attributes:
            raise BadRequest(f"['{key}'] is invalid attribute for filtering", kind="HTTPBadRequest")
        wanted.setdefault(key, []).append(value)
    out = []
    for item in items:
        keep = True
        for key, values in wanted.items():
            if key in ("tags", "tags-any"):
                keep = False  # no resource has tags
            elif key in ("not-tags", "not-tags-any"):
                continue
            elif not any(_matches_one(item.get(key), v, key) for v in values):
                keep = False
            if not keep:
                break
        if keep:
            out.append(item)
    return out


def _sorted(items: list[dict[str, Any]], request: Request, attributes: set[str]) -> list[dict[str, Any]]:
    keys = request.query_params.getlist("sort_key")
    dirs = request.query_params.getlist("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    for key in keys:
        if key not in attributes:
            raise BadRequest(f"{key} is an invalid attribute for sort_keys")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise BadRequest(f"{direction} is invalid value for sort_dirs, valid value is 'asc' and 'desc'")
    order = list(zip(keys, dirs or ["asc"] * len(keys), strict=False)) + [("id", "asc")]
    for key, direction in reversed(order):
        items.sort(key=lambda i, k=key: (i.get(k) is not None, str(i.get(k)) if i.get(k) is not None else ""),
                   reverse=direction == "desc")
    return items


def _limit(request: Request) -> int | None:
    text = request.query_params.get("limit")
    if text is None:
        return None
    if not text.strip().isdigit():
        raise BadRequest(f"Invalid limit: '{text}' is not an integer")
    value = int(text)
    if value <= 0:
        return None  # Neutron: a limit of 0 (or less) means no limit
    return min(value, MAX_LIMIT)


def _link(request: Request, rel: str, marker: str, reverse: bool) -> dict[str, str]:
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("marker", "page_reverse")]
    params.append(("marker", marker))
    if reverse:
        params.append(("page_reverse", "True"))
    return {"rel": rel, "href": f"{base_url(request)}{request.url.path}?{urlencode(params)}"}


def collection(request: Request, name: str, items: list[dict[str, Any]], attributes: set[str] | None = None
               ) -> dict[str, Any]:
    """``{name: [...], name_links: [...]}`` after Neutron's filters, sorting, paging and ``fields``."""
    attributes = attributes or (set().union(*(i.keys() for i in items)) if items else set())
    rows = _sorted(_filtered(items, request, attributes), request, attributes)
    limit = _limit(request)
    marker = request.query_params.get("marker")
    reverse = (_truth(request.query_params.get("page_reverse", "false")) or False)
    links = []
    if reverse:
        rows = list(reversed(rows))
    if marker is not None:
        ids = [r["id"] for r in rows]
        if marker not in ids:
            raise BadRequest(f"Marker {marker} could not be found.")
        rows = rows[ids.index(marker) + 1:]
    page = rows[:limit] if limit is not None else rows
    if limit is not None and page:
        if len(rows) > limit:
            links.append(_link(request, "previous" if reverse else "next", page[-1]["id"], reverse))
        if marker is not None:
            links.append(_link(request, "next" if reverse else "previous", page[0]["id"], not reverse))
    if reverse:
        page = list(reversed(page))
    body: dict[str, Any] = {name: [select_fields(request, r) for r in page]}
    if links:
        body[f"{name}_links"] = links
    return body


def select_fields(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    fields = [f for f in request.query_params.getlist("fields") if f]
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}
