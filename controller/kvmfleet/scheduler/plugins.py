"""Discovery of filters and weighers through entry points, enabled and ordered by name from config.

Groups: ``kvmfleet.scheduler.filters`` and ``kvmfleet.scheduler.weighers`` (pyproject.toml). Another
package adds a plug-in by declaring an entry point in either group; the config then enables it by
its entry-point name. A name that no entry point provides fails at start-up.
"""

from __future__ import annotations

import functools
import sys
from importlib.metadata import EntryPoint, entry_points

from kvmfleet.scheduler.config import SchedulerConfig
from kvmfleet.scheduler.exceptions import UnknownPlugin
from kvmfleet.scheduler.filters import HostFilter
from kvmfleet.scheduler.weighers import HostWeigher

FILTER_GROUP = "kvmfleet.scheduler.filters"
WEIGHER_GROUP = "kvmfleet.scheduler.weighers"


def available(group: str) -> dict[str, EntryPoint]:
    """Entry-point name -> entry point, for one group. Scanning the installed distributions' metadata
    costs tens of milliseconds and every placement makes a scheduler: the scan is kept per sys.path
    (what decides which distributions are found)."""
    return dict(_scan(group, tuple(sys.path)))


@functools.lru_cache(maxsize=16)
def _scan(group: str, _path: tuple[str, ...]) -> tuple[tuple[str, EntryPoint], ...]:
    return tuple((ep.name, ep) for ep in entry_points(group=group))


def _load_classes(eps: dict[str, EntryPoint], names: list[str], base: type, kind: str) -> list[type]:
    unknown = [n for n in names if n not in eps]
    if unknown:
        raise UnknownPlugin(
            "unknown scheduler {} {}; available {}s: {}".format(kind, ", ".join(unknown), kind, ", ".join(sorted(eps)) or "(none installed)"),
            unknown=unknown, available=sorted(eps),
        )
    classes = []
    for name in names:
        cls = eps[name].load()
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise UnknownPlugin(f"scheduler {kind} {name} ({eps[name].value}) is not a {base.__name__}",
                                unknown=[name], available=sorted(eps))
        if cls.name != name:
            raise UnknownPlugin(f"scheduler {kind} entry point {name} loads {eps[name].value}, whose name is {cls.name}; they must match", unknown=[name], available=sorted(eps))
        classes.append(cls)
    return classes


def load_filters(config: SchedulerConfig) -> list[HostFilter]:
    """Instances of the enabled filters, in config order."""
    return [cls(config) for cls in _load_classes(available(FILTER_GROUP), config.enabled_filters, HostFilter, "filter")]


def load_weighers(config: SchedulerConfig) -> list[HostWeigher]:
    """Instances of the enabled weighers, in config order, with their multipliers."""
    known = available(WEIGHER_GROUP)
    unknown = sorted(set(config.multipliers) - set(known))
    if unknown:
        raise UnknownPlugin("scheduler multipliers name unknown weigher {}; available weighers: {}".format(", ".join(unknown), ", ".join(sorted(known))), unknown=unknown, available=sorted(known))
    classes = _load_classes(known, config.weighers, HostWeigher, "weigher")
    return [cls(config, config.multipliers.get(cls.name)) for cls in classes]
