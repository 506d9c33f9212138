# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised inside kvmfleet modules; only a module's main() turns them into fail_json."""

from __future__ import annotations


class KvmfleetError(Exception):
    """Base error. ``msg`` is the one line shown to users; ``details`` go into the failure result."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg

    def to_result(self):
        """Keyword arguments for ``module.fail_json``: msg plus the details (never a 'msg' clash)."""
        result = {k: v for k, v in self.details.items() if k not in ("msg", "failed", "changed")}
        result["msg"] = self.msg
        return result


class DomainNotFound(KvmfleetError):
    """No libvirt domain with that name (or uuid)."""


class InvalidState(KvmfleetError):
    """The domain is in a state that does not allow the requested operation."""


class WaitTimeout(KvmfleetError):
    """A wait ran out of time. ``last_state`` is the last observed state, ``partial`` the result so far."""

    def __init__(self, msg, last_state=None, partial=None, **details):
        super().__init__(msg, last_state=last_state, **details)
        self.last_state = last_state
        self.partial = partial


class ValidationError(KvmfleetError):
    """A parameter value is not acceptable (bad name, path traversal, impossible size...)."""


class ImageError(KvmfleetError):
    """A base image is missing, unreadable, of the wrong format or otherwise unusable."""
