"""Checks shared by the identity modules (Keystone's parameter rules)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from kvmfleet.store.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def new_id() -> str:
    return uuid.uuid4().hex


def check_name(value: Any, what: str, max_length: int = 255) -> str:
    """Keystone's names: 1..max_length characters, not only spaces; we also refuse control characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_length or _CONTROL.search(value):
        raise InvalidInput(f"invalid {what} name {value!r}: 1-{max_length} printable characters, not only spaces")
    return value


def check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} must be true or false, got {value!r}")
    return value


def check_text(value: Any, what: str, max_length: int = 65535) -> str | None:
    """Free text; NUL is refused (PostgreSQL cannot store it in text)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise InvalidInput(f"{what} must be a string of at most {max_length} characters, without NUL")
    return value
