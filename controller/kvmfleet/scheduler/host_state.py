"""Host state as the scheduler sees it, and the in-memory cache of all hosts (Nova's HostManager).

A ``HostState`` holds one compute host's totals, allocation ratios, reservations and usage. Free
capacity follows Placement: ``(total - reserved) * allocation_ratio - used``. The free values (and
the largest single request each resource can take now) are plain attributes recomputed whenever
usage changes, because filters and weighers read them for every host on every request; change
usage through ``consume``/``release``/``update`` so they stay right.

``HostManager`` keeps the states keyed by name and refreshes them from a provider: any callable
returning an iterable of dicts whose keys are ``HostState`` field names (the store gives its rows
this way; the benchmark gives workload hosts).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kvmfleet.scheduler.columns import MIRRORED, HostColumns
from kvmfleet.scheduler.exceptions import InvalidRequest

if TYPE_CHECKING:
    from kvmfleet.scheduler.request_spec import RequestSpec

# Nova's canonical architecture names for the aliases people write.
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86-64": "x86_64",
    "arm64": "aarch64",
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "x86_32": "i686",
    "ppc64el": "ppc64le",
}


def canonical_arch(value: str | None) -> str | None:
    """Lower-case an architecture name and map aliases (amd64 -> x86_64, arm64 -> aarch64)."""
    if value is None:
        return None
    low = str(value).strip().lower()
    return _ARCH_ALIASES.get(low, low)


# Defaults follow DESIGN.md principle 4 (Nova's allocation ratios and reserved host memory).
DEFAULT_CPU_ALLOCATION_RATIO = 4.0
DEFAULT_RAM_ALLOCATION_RATIO = 1.0
DEFAULT_DISK_ALLOCATION_RATIO = 1.0
DEFAULT_RESERVED_MEMORY_MB = 512
DEFAULT_AVAILABILITY_ZONE = "nova"

_INT_FIELDS = (
    "vcpus", "memory_mb", "disk_gb", "reserved_vcpus", "reserved_memory_mb", "reserved_disk_gb",
    "vcpus_used", "memory_mb_used", "disk_gb_used", "num_instances", "failed_builds", "generation",
)
_RATIO_FIELDS = ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio")

# Every field a provider row may carry (unknown keys are refused, to catch typos in rows and data files).
FIELDS = (
    "name", "address", "arch", "az", "aggregates", "enabled", "up", "server_group_instances",
) + _INT_FIELDS + _RATIO_FIELDS


# Hosts (in this process) whose failed_builds is above zero, so BuildFailureWeigher can tell in
# O(1) that no candidate has failures, the usual case.
_FAILING: weakref.WeakSet[HostState] = weakref.WeakSet()


def hosts_with_failed_builds() -> int:
    """How many live HostState objects have failed_builds > 0."""
    return len(_FAILING)


# Derived attributes, recomputed by HostState._recompute().
_DERIVED = ("free_vcpus", "free_memory_mb", "free_disk_gb", "fit_vcpus", "fit_memory_mb", "fit_disk_gb",
            "aggregate_metadata")
_CAPACITY = _DERIVED[:6]  # in HostColumns.set_capacity's order
_COPIED = FIELDS + _DERIVED  # what HostManager copies into a cached state on refresh


class HostState:
    """One compute host: totals, ratios, reservations, usage, placement attributes."""

    # What filters and weighers read on every request comes first, so it shares cache lines.
    __slots__ = ("enabled", "up", "fit_memory_mb", "fit_vcpus", "fit_disk_gb", "free_memory_mb", "free_vcpus",
                 "free_disk_gb", "name", "az", "arch", "num_instances") + tuple(
        f for f in FIELDS + _DERIVED
        if f not in ("enabled", "up", "fit_memory_mb", "fit_vcpus", "fit_disk_gb", "free_memory_mb", "free_vcpus",
                     "free_disk_gb", "name", "az", "arch", "num_instances", "failed_builds")
    ) + ("_failed_builds", "_cols", "_idx", "__weakref__")

    def __setattr__(self, attr: str, value: Any) -> None:
        # Every assignment of a mirrored attribute also reaches the manager's columns (O(1)); the
        # columns first, so a refused value (a rename) leaves the state as it was.
        cols = self._cols
        if cols is not None and attr in MIRRORED:
            cols.set(self._idx, attr, value)
        object.__setattr__(self, attr, value)

    def __init__(
        self,
        name: str,
        *,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        address: str | None = None,
        arch: str = "x86_64",
        az: str | None = None,
        aggregates: Iterable[Mapping[str, Any]] = (),
        enabled: bool = True,
        up: bool = True,
        cpu_allocation_ratio: float = DEFAULT_CPU_ALLOCATION_RATIO,
        ram_allocation_ratio: float = DEFAULT_RAM_ALLOCATION_RATIO,
        disk_allocation_ratio: float = DEFAULT_DISK_ALLOCATION_RATIO,
        reserved_vcpus: int = 0,
        reserved_memory_mb: int = DEFAULT_RESERVED_MEMORY_MB,
        reserved_disk_gb: int = 0,
        vcpus_used: int = 0,
        memory_mb_used: int = 0,
        disk_gb_used: int = 0,
        num_instances: int = 0,
        server_group_instances: Mapping[str, int] | None = None,
        failed_builds: int = 0,
        generation: int = 0,
    ):
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"host name must be a non-empty string, got {name!r}")
        # Not in a HostManager's columns yet: plain slot assignment (no mirroring to do) is faster.
        set_ = object.__setattr__
        set_(self, "_cols", None)
        set_(self, "_idx", -1)
        set_(self, "name", name)
        set_(self, "address", address)
        set_(self, "arch", canonical_arch(arch))
        set_(self, "az", az if az is not None else DEFAULT_AVAILABILITY_ZONE)
        set_(self, "enabled", bool(enabled))
        set_(self, "up", bool(up))
        values = {
            "vcpus": vcpus, "memory_mb": memory_mb, "disk_gb": disk_gb, "reserved_vcpus": reserved_vcpus,
            "reserved_memory_mb": reserved_memory_mb, "reserved_disk_gb": reserved_disk_gb, "vcpus_used": vcpus_used,
            "memory_mb_used": memory_mb_used, "disk_gb_used": disk_gb_used, "num_instances": num_instances,
            "failed_builds": failed_builds, "generation": generation,
        }
        for key, value in values.items():
            set_(self, key, self._check_int(key, value))  # failed_builds: its property setter runs too
        for key, value in (("cpu_allocation_ratio", cpu_allocation_ratio),
                           ("ram_allocation_ratio", ram_allocation_ratio),
                           ("disk_allocation_ratio", disk_allocation_ratio)):
            set_(self, key, self._check_ratio(key, value))
        self.server_group_instances = dict(server_group_instances or {})
        self._set_aggregates(aggregates)
        self._recompute()

    @property
    def failed_builds(self) -> int:
        """Builds that failed on this host since the last success (BuildFailureWeigher)."""
        return self._failed_builds

    @failed_builds.setter
    def failed_builds(self, value: int) -> None:
        self._failed_builds = value
        if value > 0:
            _FAILING.add(self)
        else:
            _FAILING.discard(self)

    # -- construction helpers -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> HostState:
        """Build from a provider row; unknown keys are an error naming them."""
        unknown = sorted(set(row) - set(FIELDS))
        if unknown:
            raise InvalidRequest(
                "host {}: unknown field(s) {} (known: {})".format(row.get("name", "?"), ", ".join(unknown), ", ".join(FIELDS)),
                host=row.get("name"), unknown=unknown,
            )
        if "name" not in row:
            raise InvalidRequest(f"host row without a name: {dict(row)!r}")
        args = dict(row)
        name = args.pop("name")
        missing = [k for k in ("vcpus", "memory_mb", "disk_gb") if k not in args]
        if missing:
            raise InvalidRequest("host {}: missing field(s) {}".format(name, ", ".join(missing)), host=name)
        return cls(name, **args)

    # copy/deepcopy/pickle: a copy is never attached to the original's columns.
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _STATE_SLOTS if hasattr(self, k)}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._attach(None, -1)
        for key, value in state.items():
            if key == "_failed_builds":
                self.failed_builds = value
            else:
                object.__setattr__(self, key, value)

    def _attach(self, cols: HostColumns | None, index: int) -> None:
        """Mirror this state into ``cols`` at ``index`` from now on (None: stop)."""
        object.__setattr__(self, "_cols", cols)
        object.__setattr__(self, "_idx", index)

    def _check_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"host {self.name}: {key} must be a non-negative integer, got {value!r}",
                                 host=self.name, field=key)
        return value

    def _check_ratio(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidRequest(f"host {self.name}: {key} must be a positive number, got {value!r}",
                                 host=self.name, field=key)
        return float(value)

    def _set_aggregates(self, aggregates: Iterable[Mapping[str, Any]]) -> None:
        aggs = []
        merged: dict[str, set[str]] = {}
        for agg in aggregates or ():
            if not isinstance(agg, Mapping) or "name" not in agg:
                raise InvalidRequest(f"host {self.name}: each aggregate needs a name and metadata, got {agg!r}",
                                     host=self.name)
            metadata = {str(k): str(v) for k, v in (agg.get("metadata") or {}).items()}
            aggs.append({"name": str(agg["name"]), "metadata": metadata})
            for key, value in metadata.items():
                merged.setdefault(key, set()).add(value)
        self.aggregates = aggs
        # key -> every value any of the host's aggregates gives it (Nova's aggregate_metadata_get_by_host)
        self.aggregate_metadata = {k: frozenset(v) for k, v in merged.items()}

    def _recompute(self) -> None:
        free_vcpus = (self.vcpus - self.reserved_vcpus) * self.cpu_allocation_ratio - self.vcpus_used
        free_memory_mb = (self.memory_mb - self.reserved_memory_mb) * self.ram_allocation_ratio - self.memory_mb_used
        free_disk_gb = (self.disk_gb - self.reserved_disk_gb) * self.disk_allocation_ratio - self.disk_gb_used
        # Largest single request that fits now: free capacity, capped by Placement's max_unit (= total).
        values = (free_vcpus, free_memory_mb, free_disk_gb, float(min(free_vcpus, self.vcpus)),
                  float(min(free_memory_mb, self.memory_mb)), float(min(free_disk_gb, self.disk_gb)))
        setattr_ = object.__setattr__
        for attr, value in zip(_CAPACITY, values):
            setattr_(self, attr, value)
        if self._cols is not None:  # one call for the six columns
            self._cols.set_capacity(self._idx, values)

    # -- usage ----------------------------------------------------------------------------------

    def consume(self, spec: RequestSpec) -> None:
        """Account one instance of ``spec`` on this host (in memory; the store's claim is separate)."""
        flavor = spec.flavor
        self.vcpus_used += flavor.vcpus
        self.memory_mb_used += flavor.memory_mb
        self.disk_gb_used += flavor.disk_gb
        self.num_instances += 1
        group = spec.server_group
        if group is not None:
            self.server_group_instances[group.name] = self.server_group_instances.get(group.name, 0) + 1
        self._recompute()

    def release(self, spec: RequestSpec) -> None:
        """Undo one ``consume(spec)`` (a claim given back)."""
        flavor = spec.flavor
        self.vcpus_used = max(0, self.vcpus_used - flavor.vcpus)
        self.memory_mb_used = max(0, self.memory_mb_used - flavor.memory_mb)
        self.disk_gb_used = max(0, self.disk_gb_used - flavor.disk_gb)
        self.num_instances = max(0, self.num_instances - 1)
        group = spec.server_group
        if group is not None and self.server_group_instances.get(group.name):
            self.server_group_instances[group.name] -= 1
            if not self.server_group_instances[group.name]:
                del self.server_group_instances[group.name]
        self._recompute()

    def update(self, row: Mapping[str, Any]) -> None:
        """Take every value from a full provider row (same keys as ``from_dict``, name optional); keeps
        this object, so references held elsewhere see the new values."""
        fresh = HostState.from_dict({"name": self.name, **row})
        if fresh.name != self.name:
            raise InvalidRequest(f"host {self.name}: a row for {fresh.name} cannot update it")
        for key in _COPIED:
            setattr(self, key, getattr(fresh, key))

    def to_dict(self) -> dict[str, Any]:
        """Fields plus the computed free capacity (for explain output and the CLI)."""
        out = {k: getattr(self, k) for k in FIELDS}
        out["aggregates"] = [dict(a, metadata=dict(a["metadata"])) for a in self.aggregates]
        out["server_group_instances"] = dict(self.server_group_instances)
        out.update(free_vcpus=self.free_vcpus, free_memory_mb=self.free_memory_mb, free_disk_gb=self.free_disk_gb)
        return out

    def __repr__(self) -> str:
        return (f"HostState({self.name} free vcpus={self.free_vcpus:g} memory_mb={self.free_memory_mb:g} "
                f"disk_gb={self.free_disk_gb:g} instances={self.num_instances})")


_STATE_SLOTS = tuple(s for s in HostState.__slots__ if s not in ("_cols", "_idx", "__weakref__"))


class HostList(list):
    """The manager's list of host states, ordered by name, carrying their columnar mirror
    (``columns``): the scheduler takes the vectorised path on it without building anything.
    Callers must not modify it (the scheduler checks its length against the columns)."""

    __slots__ = ("columns",)

    def __init__(self, states: Iterable[HostState], columns: HostColumns):
        super().__init__(states)
        self.columns = columns


class HostManager:
    """All host states, keyed by name, refreshed from a provider (Nova's HostManager cache).

    ``host_states()`` returns the same list object until the set of hosts changes, ordered by name,
    so the scheduler can take it on every request for free. The list carries the columnar mirror
    of the states (``HostColumns``), kept current by every assignment to a mirrored attribute
    (``consume``/``release``/``update``/``load`` included), O(1) per change.
    """

    def __init__(self, provider: Callable[[], Iterable[Mapping[str, Any]]] | None = None):
        self._provider = provider
        self._by_name: dict[str, HostState] = {}
        self._ordered: HostList = HostList((), HostColumns((), attach=True))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> HostManager:
        manager = cls()
        manager.load(rows)
        return manager

    def refresh(self) -> None:
        """Pull every row from the provider and make the cache match it."""
        if self._provider is None:
            raise InvalidRequest("this HostManager has no provider to refresh from")
        self.load(self._provider())

    def load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Make the cache match ``rows``: update known hosts in place, add new ones, drop missing ones.

        All rows are validated before anything changes, so a bad row leaves the cache as it was.
        """
        parsed: dict[str, tuple[Mapping[str, Any], HostState]] = {}
        for row in rows:
            state = HostState.from_dict(row)
            if state.name in parsed:
                raise InvalidRequest(f"host {state.name} appears twice in the provider's rows", host=state.name)
            parsed[state.name] = (row, state)
        by_name: dict[str, HostState] = {}
        for name, (_row, state) in parsed.items():
            current = self._by_name.get(name)
            if current is None:
                by_name[name] = state
            else:
                for key in _COPIED:
                    setattr(current, key, getattr(state, key))
                by_name[name] = current
        membership_changed = by_name.keys() != self._by_name.keys()
        self._by_name = by_name
        if membership_changed or len(self._ordered) != len(by_name):
            self._ordered.columns.detach()
            ordered = [by_name[n] for n in sorted(by_name)]
            self._ordered = HostList(ordered, HostColumns(ordered, attach=True))

    @property
    def columns(self) -> HostColumns:
        """The columnar mirror of ``host_states()``."""
        return self._ordered.columns

    def host_states(self) -> HostList:
        """Every host state, ordered by name (the caller must not modify the list)."""
        return self._ordered

    def __getitem__(self, name: str) -> HostState:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)
