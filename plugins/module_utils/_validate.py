# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of names that end up in libvirt XML, file paths and command lines."""

from __future__ import annotations

import os
import re

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError

NAME_MAX_LEN = 64
_NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,63}\Z")
_MAC_RE = re.compile(r"\A[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_UUID_RE = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def validate_name(value, what):
    """Return ``value`` if it is a safe name: 1-64 chars of [A-Za-z0-9._-], not starting with '-' or '.'.

    Such a name can be used as a libvirt name, a file name and a command-line argument without
    quoting, and can never traverse a path ('.' and '..' start with a dot).
    """
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {value!r}", value=repr(value), what=what)
    if not value:
        raise ValidationError(f"{what} must not be empty", value=value, what=what)
    if len(value) > NAME_MAX_LEN:
        raise ValidationError(
            f"{what} {value!r} is {len(value)} characters long; at most {NAME_MAX_LEN} are allowed",
            value=value, what=what)
    if not _NAME_RE.match(value):
        raise ValidationError(
            f"{what} {value!r} is not a valid name: use 1-{NAME_MAX_LEN} characters of A-Z a-z 0-9 . _ - "
            "not starting with '-' or '.'",
            value=value, what=what)
    return value


def validate_mac(value, what="MAC address"):
    """Return the MAC address in lower case, or raise."""
    if not isinstance(value, str) or not _MAC_RE.match(value.lower()):
        raise ValidationError(f"{what} {value!r} is not a MAC address like 52:54:00:12:34:56",
                              value=repr(value), what=what)
    return value.lower()


def validate_uuid(value, what="uuid"):
    """Return the UUID in canonical lower-case form, or raise."""
    if not isinstance(value, str) or not _UUID_RE.match(value.lower()):
        raise ValidationError(f"{what} {value!r} is not a UUID like 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab",
                              value=repr(value), what=what)
    return value.lower()


def validate_abs_path(value, what):
    """Return a normalised absolute path without '..' components, or raise."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty absolute path", value=repr(value), what=what)
    if not value.startswith("/"):
        raise ValidationError(f"{what} {value!r} must be an absolute path", value=value, what=what)
    if "\x00" in value or any(part == ".." for part in value.split("/")):
        raise ValidationError(f"{what} {value!r} must not contain '..' or NUL", value=value, what=what)
    return os.path.normpath(value)


def path_inside(path, directory):
    """True if ``path`` (after resolving symlinks) lies inside ``directory``."""
    real_dir = os.path.realpath(directory)
    real = os.path.realpath(path)
    return real == real_dir or real.startswith(real_dir.rstrip("/") + "/")
