"""Scheduler settings: which filters and weighers run, in which order, with which multipliers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from kvmfleet.scheduler.exceptions import InvalidRequest

# Nova's default enabled_filters plus what Placement does for Nova (ResourceFilter, the
# availability zone), ordered cheap and most selective first: the server-group affinity filter
# cuts the list to the group's host; the zone, arch, extra-spec and group filters cost nothing when
# the request does not ask for them. NumInstancesFilter is available but, as in Nova, not enabled
# by default (enable it to apply max_instances_per_host).
DEFAULT_FILTERS = (
    "ServerGroupAffinityFilter",
    "AvailabilityZoneFilter",
    "ImagePropertiesFilter",
    "ComputeFilter",
    "ResourceFilter",
    "AggregateInstanceExtraSpecsFilter",
    "ServerGroupAntiAffinityFilter",
)
DEFAULT_WEIGHERS = (
    "RAMWeigher",
    "CPUWeigher",
    "DiskWeigher",
    "ServerGroupSoftAffinityWeigher",
    "ServerGroupSoftAntiAffinityWeigher",
    "BuildFailureWeigher",
    "NumInstancesWeigher",
)


@dataclass
class SchedulerConfig:
    """``multipliers`` maps a weigher name to its multiplier; weighers not named keep their default
    (Nova's: 1.0 for RAM/CPU/disk and the soft server-group weighers, 1e6 for build failures, 0.0
    for instance count). A negative multiplier packs instead of spreading."""

    enabled_filters: list[str] = field(default_factory=lambda: list(DEFAULT_FILTERS))
    weighers: list[str] = field(default_factory=lambda: list(DEFAULT_WEIGHERS))
    multipliers: dict[str, float] = field(default_factory=dict)
    max_instances_per_host: int = 50  # read by NumInstancesFilter
    host_subset_size: int = 1
    max_attempts: int = 3
    seed: int | None = None  # for host_subset_size > 1: a fixed seed makes the random pick repeatable

    def __post_init__(self) -> None:
        for key in ("enabled_filters", "weighers"):
            value = getattr(self, key)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise InvalidRequest(f"scheduler {key} must be a list of names, got {value!r}")
            if len(set(value)) != len(value):
                raise InvalidRequest(f"scheduler {key} names a plug-in twice: {value!r}")
            setattr(self, key, list(value))
        if not isinstance(self.multipliers, Mapping):
            raise InvalidRequest(f"scheduler multipliers must map weigher names to numbers, got {self.multipliers!r}")
        for name, value in self.multipliers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidRequest(f"scheduler multiplier for {name} must be a number, got {value!r}")
        self.multipliers = {k: float(v) for k, v in self.multipliers.items()}
        for key, minimum in (("max_instances_per_host", 1), ("host_subset_size", 1), ("max_attempts", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InvalidRequest(f"scheduler {key} must be an integer >= {minimum}, got {value!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SchedulerConfig:
        """Build from a config file section; unknown keys are an error naming them."""
        data = dict(data or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidRequest("scheduler config: unknown key(s) {} (known: {})".format(", ".join(unknown), ", ".join(known)))
        return cls(**data)

    @property
    def alternates(self) -> int:
        """Alternate hosts returned with each selection: one per retry left (Nova's max_attempts - 1)."""
        return self.max_attempts - 1
