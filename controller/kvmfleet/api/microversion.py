"""Compute API microversions (nova/api/openstack/api_version_request.py).

The client names one with ``OpenStack-API-Version: compute 2.79`` or the legacy
``X-OpenStack-Nova-API-Version: 2.79`` ("latest" = MAX); none means MIN (2.1). Out of range is 406.
The middleware stores the parsed version on ``request.state.microversion`` and echoes it on the
response of every compute request, with ``Vary``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from functools import total_ordering

MIN_VERSION = "2.1"
# The newest microversion whose request and response formats every served compute resource honours.
MAX_VERSION = "2.79"

_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class InvalidVersion(ValueError):
    """The header names no valid version (400) or one outside MIN..MAX (406)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@total_ordering
@dataclass(frozen=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        return _parse(text)

    @classmethod
    def _parse_uncached(cls, text: str) -> APIVersion:
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise InvalidVersion(f"API Version String {text} is of invalid format. Must be of format "
                                 "MajorNum.MinorNum.", 400)
        return cls(int(m.group(1)), int(m.group(2)))

    def __lt__(self, other: object) -> bool:
        if isinstance(other, str):
            other = APIVersion.parse(other)
        if not isinstance(other, APIVersion):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = APIVersion.parse(other)
        if not isinstance(other, APIVersion):
            return NotImplemented
        return (self.major, self.minor) == (other.major, other.minor)

    def __hash__(self) -> int:
        return hash((self.major, self.minor))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def matches(self, lo: str | None = None, hi: str | None = None) -> bool:
        """lo <= self <= hi (either bound may be None)."""
        return (lo is None or self >= APIVersion.parse(lo)) and (hi is None or self <= APIVersion.parse(hi))


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> APIVersion:
    # Views compare against literal bounds thousands of times a page: parse each literal once.
    return APIVersion._parse_uncached(text)


MIN = APIVersion.parse(MIN_VERSION)
MAX = APIVersion.parse(MAX_VERSION)


def from_headers(headers: dict[str, str] | object, service: str = "compute") -> APIVersion:
    """The version a request asks for (``headers`` is case-insensitive, as Starlette's)."""
    get = headers.get  # type: ignore[attr-defined]
    text = None
    modern = get("openstack-api-version")
    if modern:
        for part in modern.split(","):
            words = part.strip().split()
            if len(words) == 2 and words[0].lower() == service:
                text = words[1]
                break
    if text is None:
        text = get("x-openstack-nova-api-version")
    if not text:
        return MIN
    if text.strip().lower() == "latest":
        return MAX
    version = APIVersion.parse(text)
    if not (MIN <= version <= MAX):
        raise InvalidVersion(f"Version {version} is not supported by the API. Minimum is {MIN} and maximum "
                             f"is {MAX}.", 406)
    return version


def response_headers(version: APIVersion) -> list[tuple[bytes, bytes]]:
    v = str(version).encode()
    return [(b"openstack-api-version", b"compute " + v), (b"x-openstack-nova-api-version", v),
            (b"vary", b"OpenStack-API-Version, X-OpenStack-Nova-API-Version")]
