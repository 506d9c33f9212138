"""Errors raised by the scheduler.

They have the same shape as the collection's ``KvmfleetError`` (``msg`` plus ``details``) so the
CLI and the API can show them the same way.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base error. ``msg`` is the one line shown to users; ``details`` carry the data behind it."""

    def __init__(self, msg: str, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return self.msg


class UnknownPlugin(SchedulerError):
    """The configuration names a filter, weigher or multiplier that no entry point provides."""


class InvalidRequest(SchedulerError):
    """A request spec, host row or scheduler setting is malformed."""


class NoValidHost(SchedulerError):
    """No host passed the filters.

    ``filter_name`` is the filter that removed the last hosts (None when there were no hosts to
    begin with); ``counts`` is ``[(filter name, hosts before, hosts after), ...]`` in run order.
    """

    def __init__(self, msg: str, filter_name: str | None = None, counts=(), **details):
        super().__init__(msg, filter_name=filter_name, counts=list(counts), **details)
        self.filter_name = filter_name
        self.counts = list(counts)
