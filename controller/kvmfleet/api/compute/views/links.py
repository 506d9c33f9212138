"""Links in compute responses (nova/api/openstack/common.py ViewBuilder): self and bookmark links of a
resource, and the ``next`` link of a page, built from ``api.public_url`` or the request's own URL.

    resource_links(request, "flavors", "42")
      -> [{"rel": "self", "href": "http://h/compute/v2.1/flavors/42"},
          {"rel": "bookmark", "href": "http://h/compute/flavors/42"}]
    collection_links(request, "flavors/detail", items, "id")   # [] or [{"rel": "next", "href": ...}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

MAX_LIMIT = 1000  # Nova's [api] max_limit: the longest page a list returns


def base_url(request: Request) -> str:
    from kvmfleet.config import get_settings

    public = get_settings().api.public_url
    return (public or str(request.base_url)).rstrip("/")


def compute_url(request: Request) -> str:
    """The compute API's versioned root, e.g. http://h/compute/v2.1."""
    return f"{base_url(request)}/compute/v2.1"


def resource_links(request: Request, collection: str, ident: Any) -> list[dict[str, str]]:
    base = base_url(request)
    return [{"rel": "self", "href": f"{base}/compute/v2.1/{collection}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/compute/{collection}/{ident}"}]


def collection_links(request: Request, collection: str, items: Sequence[Any], id_key: str,
                     limit: int | None) -> list[dict[str, str]]:
    """Nova's _get_collection_links: a next link when the page is as long as the limit asked (or as
    MAX_LIMIT); its marker is the last item's ``id_key`` (a key of a dict or an attribute)."""
    max_items = min(limit, MAX_LIMIT) if limit is not None else MAX_LIMIT
    if not items or not max_items or len(items) != max_items:
        return []
    last = items[-1]
    marker = last[id_key] if isinstance(last, dict) else getattr(last, id_key)
    params = dict(sorted((k, v) for k, v in request.query_params.multi_items() if k != "marker"))
    query = urlencode([*params.items(), ("marker", str(marker))])
    return [{"rel": "next", "href": f"{compute_url(request)}/{collection}?{query}"}]
