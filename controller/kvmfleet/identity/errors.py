"""Errors of the identity layer. ``msg`` is what a client or CLI user sees: never a password or a token.

IdentityError subclasses the store's StoreError, so the CLI's ``store_errors()`` prints it as one line
and the API's fault mapper (kvmfleet.api.faults) answers AuthFailed with 401 and IdentityForbidden with
403 in Keystone's body. Lookups and validation raise the store's NotFound / AlreadyExists / InvalidInput.
"""

from __future__ import annotations

from kvmfleet.store.errors import StoreError

# Keystone answers every failed authentication with this one message, whatever failed (unknown user,
# wrong password, disabled user): a client learns nothing about which names exist.
AUTH_REQUIRED = "The request you have made requires authentication."


class IdentityError(StoreError):
    """Base error of kvmfleet.identity."""


class AuthFailed(IdentityError):
    """Authentication failed: no, unknown, expired or revoked token; wrong credentials; disabled user or
    project (401)."""

    def __init__(self, msg: str = AUTH_REQUIRED, **details: object) -> None:
        super().__init__(msg, **details)


class IdentityForbidden(IdentityError):
    """Authenticated, but not allowed (403): e.g. deleting the enabled Default domain."""
