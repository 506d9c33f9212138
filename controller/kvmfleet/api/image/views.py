"""Images as Glance v2 renders them (glance/api/v2/images.py ResponseSerializer._format_image): the extra
properties at the top level, then exactly Glance's attributes; ``self``/``file``/``schema`` are the
paths Glance gives (relative to the image endpoint)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from kvmfleet.store.models import Image


def isotime(when: dt.datetime | None) -> str | None:
    """oslo's isotime: 2016-03-08T20:19:41Z."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.replace(microsecond=0).isoformat() + "Z"


def image(img: Image) -> dict[str, Any]:
    has_data = bool(img.file_path)
    view: dict[str, Any] = {k: ("" if v is None else v) for k, v in (img.properties or {}).items()}
    view.update({
        "name": img.name,
        "disk_format": img.disk_format or None,
        "container_format": img.container_format or None,
        "visibility": img.visibility,
        "size": img.size if has_data else None,
        "virtual_size": img.virtual_size if has_data else None,
        "status": img.status,
        "checksum": img.checksum if has_data else None,
        "protected": bool(img.protected),
        "min_ram": img.min_ram,
        "min_disk": img.min_disk,
        "owner": img.project_id,
        "os_hidden": bool(img.os_hidden),
        "os_hash_algo": img.os_hash_algo if has_data else None,
        "os_hash_value": img.os_hash_value if has_data else None,
        "id": img.id,
        "created_at": isotime(img.created_at),
        "updated_at": isotime(img.updated_at or img.created_at),
        "tags": list(img.tags or []),
        "self": f"/v2/images/{img.id}",
        "file": f"/v2/images/{img.id}/file",
        "schema": "/v2/schemas/image",
    })
    return view


def images(items: list[Image], query: list[tuple[str, str]], next_marker: str | None) -> dict[str, Any]:
    """The list body: ``first`` keeps the query without its marker, ``next`` carries the next marker."""
    params = [(k, v) for k, v in query if k != "marker"]
    body: dict[str, Any] = {"images": [image(i) for i in items], "first": "/v2/images",
                            "schema": "/v2/schemas/images"}
    if params:
        body["first"] = f"/v2/images?{urlencode(params)}"
    if next_marker is not None:
        body["next"] = f"/v2/images?{urlencode([*params, ('marker', next_marker)])}"
    return body
