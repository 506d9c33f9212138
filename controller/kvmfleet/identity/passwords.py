"""Password hashing: bcrypt over the password's SHA-256 (as passlib's bcrypt_sha256), so a password longer
than bcrypt's 72-byte input is neither truncated nor refused. Passwords are never logged or kept."""

from __future__ import annotations

import base64
import functools
import hashlib

import bcrypt

from kvmfleet.store.errors import InvalidInput

ROUNDS = 12  # bcrypt's default cost, as Keystone's
MAX_LENGTH = 4096  # Keystone's max_password_length


def _prepared(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def check_acceptable(password: object) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidInput("a password must be a non-empty string")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"a password must be at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    check_acceptable(password)
    return bcrypt.hashpw(_prepared(password), bcrypt.gensalt(ROUNDS)).decode("ascii")


def verify(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches. A missing hash never matches (a dummy check keeps the timing alike)."""
    if not isinstance(password, str) or len(password) > MAX_LENGTH:
        return False
    if not password_hash:
        bcrypt.checkpw(b"x", _dummy_hash())
        return False
    try:
        return bcrypt.checkpw(_prepared(password), password_hash.encode("ascii"))
    except ValueError:  # not a bcrypt hash
        return False


@functools.cache
def _dummy_hash() -> bytes:
    return bcrypt.hashpw(b"x", bcrypt.gensalt(ROUNDS))
