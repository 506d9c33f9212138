"""Errors of the compute layer. ``msg`` is the one line the CLI shows."""

from __future__ import annotations


class ComputeError(Exception):
    def __init__(self, msg: str, **details: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return self.msg


class InvalidRequest(ComputeError):
    """Bad input: a name, a flavor that cannot be used, a missing file. Nothing was stored."""


class InvalidInstanceState(ComputeError):
    """The instance's vm_state/task_state does not allow the operation (Nova's InstanceInvalidState)."""


class NoValidHostFound(ComputeError):
    """The scheduler found no host for the request when it was made; nothing was stored."""


class BuildFailed(ComputeError):
    """Scheduling or building failed; the instance is in ERROR with the fault."""


class OperationFailed(ComputeError):
    """An operation on an existing instance failed on its host; the fault is recorded."""
