"""Errors raised by the store, claims and quotas. ``msg`` is the one line a user sees."""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base error of the controller's store layer; ``details`` carry machine-readable context."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return self.msg


class NotFound(StoreError):
    """No row with that id or name."""


class AlreadyExists(StoreError):
    """A row with that name (or id) exists already."""


class InvalidInput(StoreError):
    """A value is not acceptable (bad name, negative size, unknown policy...)."""


class InUse(StoreError):
    """The row is still referenced (a project with instances, a flavor in use...)."""


class Conflict(StoreError):
    """A compare-and-set lost: the row is not in the state the caller expected. Nothing was written."""


class UnexpectedTaskState(Conflict):
    """The instance's task_state is not the one the operation expected."""


class UnexpectedVmState(Conflict):
    """The instance's vm_state is not the one the operation expected."""


class SchemaError(StoreError):
    """The database schema is missing or older than this code: run `kvmfleet db upgrade`."""
