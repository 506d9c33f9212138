"""Listing images as Glance v2 does: what a viewer sees, filters, sorting and marker paging.

``list_images(session, viewer, query)`` takes Glance's query parameters (a list of (key, value) pairs,
repeated keys allowed) and returns (images, next_marker or None):

- visibility (public, private, shared, community, all; default: public + the viewer's own + nothing
  shared, since kvmfleet has no image members; community images only when asked for; admins see all),
  os_hidden (default false: hidden images are left out), member_status (validated: pending, accepted,
  rejected, all; no members exist, so it filters nothing), owner, name, status, id, disk_format,
  container_format (each also as ``in:a,b,"c,d"``), tag (repeatable, all must match), protected,
  size_min/size_max, created_at/updated_at (``gt:|gte:|lt:|lte:|eq:|neq:<ISO 8601>``), and any other
  key: an extra property that must equal the value (Glance's property filter);
- sort_key/sort_dir (repeatable) or sort=key:dir,...; default created_at desc; id breaks ties;
- limit (default 25, at most 1000) and marker (an image id in the result; unknown -> 400).

Filtering happens in SQL for visibility and status, the rest over the rows (an image registry holds
hundreds of images, not millions).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from kvmfleet.images.registry import STATUSES, VISIBILITIES, Viewer
from kvmfleet.store.errors import InvalidInput
from kvmfleet.store.models import Image

DEFAULT_LIMIT = 25  # Glance's limit_param_default
MAX_LIMIT = 1000  # Glance's api_limit_max
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at")
IN_KEYS = ("id", "name", "status", "disk_format", "container_format")
TIME_OPS = ("gt", "gte", "lt", "lte", "eq", "neq")
PAGING_KEYS = {"limit", "marker", "sort_key", "sort_dir", "sort"}


def _bool(key: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise InvalidInput(f"Invalid value '{value}' for '{key}' filter. Valid values are 'true' or 'false'.")
    return value.lower() == "true"


def _values(value: str) -> list[str]:
    """``in:a,"b,c"`` -> [a, "b,c"]; a plain value -> [value]."""
    if not value.startswith("in:"):
        return [value]
    try:
        return next(csv.reader([value[3:]], skipinitialspace=True))
    except (csv.Error, StopIteration):
        raise InvalidInput(f"Invalid 'in:' filter value: {value}") from None


def _time_filter(key: str, value: str) -> tuple[str, dt.datetime]:
    op, sep, text = value.partition(":")
    if not sep or op not in TIME_OPS:
        raise InvalidInput(f"Unable to filter on a range with a nonnumeric value: {key}={value}; use "
                           f"<op>:<ISO 8601 time> with op one of {', '.join(TIME_OPS)}")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"Invalid time format for {key}: {text}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return op, when


def _compare(op: str, a: Any, b: Any) -> bool:
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b, "eq": a == b, "neq": a != b}[op]


def _int(key: str, value: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{key} param must be an integer") from None
    if number < minimum:
        raise InvalidInput(f"{key} param must be positive")
    return number


def sorting(query: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = list(query)
    keys = [v.strip() for k, v in pairs if k == "sort_key"]
    dirs = [v.strip() for k, v in pairs if k == "sort_dir"]
    new = [v for k, v in pairs if k == "sort"]
    out: list[tuple[str, str]] = []
    if new:
        if keys or dirs:
            raise InvalidInput("Old and new sorting syntax cannot be combined")
        for part in ",".join(new).split(","):
            key, _, direction = part.strip().partition(":")
            out.append((key.strip(), (direction or "desc").strip()))
    else:
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise InvalidInput("Number of sort dirs does not match the number of sort keys")
        keys = keys or ["created_at"]
        out = [(k, dirs[i] if len(dirs) > 1 else (dirs[0] if dirs else "desc")) for i, k in enumerate(keys)]
    for key, direction in out:
        if key not in SORT_KEYS:
            raise InvalidInput(f"Invalid sort key: {key}. It must be one of the following: {', '.join(SORT_KEYS)}.")
        if direction not in ("asc", "desc"):
            raise InvalidInput(f"Invalid sort direction: {direction}")
    return out


def _visible(viewer: Viewer, visibility: str | None) -> Any:
    own = and_(Image.project_id.is_not(None), Image.project_id == viewer.project_id)
    if visibility == "all" or visibility is None:
        if viewer.is_admin:
            return None
        base = [Image.visibility == "public", own]
        if visibility == "all":
            base.append(Image.visibility == "community")
        return or_(*base)
    cond = Image.visibility == visibility
    if visibility in ("private", "shared") and not viewer.is_admin:
        cond = and_(cond, own)
    return cond


def _sort_value(image: Image, key: str) -> tuple[int, Any]:
    value = getattr(image, key)
    if key == "size" and not image.file_path:
        value = None
    return (0, "") if value is None else (1, value)


def _sorted(images: list[Image], order: list[tuple[str, str]]) -> list[Image]:
    order = order + [("created_at", "desc")] * (not any(k == "created_at" for k, _ in order)) + [("id", "desc")]
    for key, direction in reversed(order):  # stable sorts, last key first
        images.sort(key=lambda i, k=key: _sort_value(i, k), reverse=direction == "desc")
    return images


def _matches(image: Image, filters: list[tuple[str, str]]) -> bool:
    props = image.properties or {}
    for key, value in filters:
        if key in IN_KEYS:
            actual = getattr(image, key)
            if (actual if actual != "" else None) not in _values(value):
                return False
        elif key == "owner":
            if (image.project_id or "") != value:
                return False
        elif key == "tag":
            if value not in (image.tags or []):
                return False
        elif key == "protected":
            if image.protected != _bool(key, value):
                return False
        elif key in ("size_min", "size_max"):
            limit = _int(key, value)
            size = image.size if image.file_path else None
            if size is None or (size < limit if key == "size_min" else size > limit):
                return False
        elif key in ("created_at", "updated_at"):
            op, when = _time_filter(key, value)
            actual = getattr(image, key)
            if actual is None or not _compare(op, actual, when):
                return False
        elif props.get(key) != value:
            return False
    return True


def list_images(session: Session, viewer: Viewer, query: Iterable[tuple[str, str]]) -> tuple[list[Image], str | None]:
    pairs = [(k, v) for k, v in query]
    single = {k: v for k, v in pairs}
    order = sorting(pairs)
    limit = min(_int("limit", single["limit"]), MAX_LIMIT) if "limit" in single else DEFAULT_LIMIT
    visibility = single.get("visibility")
    if visibility is not None and visibility not in (*VISIBILITIES, "all"):
        raise InvalidInput(f"Invalid visibility value: {visibility}")
    member_status = single.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise InvalidInput(f"Invalid status: {member_status}")
    if "changes-since" in single:
        raise InvalidInput('The "changes-since" filter is no longer available on v2.')
    hidden = _bool("os_hidden", single.get("os_hidden", "false"))
    status = single.get("status")
    if status is not None and not status.startswith("in:") and status not in STATUSES:
        raise InvalidInput(f"Invalid status value: {status}")
    stmt = select(Image).where(Image.status != "deleted", Image.os_hidden.is_(hidden))
    cond = _visible(viewer, visibility)
    if cond is not None:
        stmt = stmt.where(cond)
    filters = [(k, v) for k, v in pairs
               if k not in PAGING_KEYS and k not in ("visibility", "member_status", "os_hidden")]
    rows = [i for i in session.scalars(stmt).all() if _matches(i, filters)]
    rows = _sorted(rows, order)
    marker = single.get("marker")
    if marker is not None:
        ids = [i.id for i in rows]
        if marker not in ids:
            raise InvalidInput(f"marker {marker} could not be found.")
        rows = rows[ids.index(marker) + 1:]
    page = rows[:limit]
    next_marker = page[-1].id if page and len(page) == limit and len(rows) > limit else None
    return page, next_marker
