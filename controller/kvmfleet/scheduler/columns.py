"""The columnar mirror of host state: one NumPy array per attribute the built-in plug-ins read.

``HostColumns`` holds, for a fixed list of ``HostState`` objects (position ``i`` = ``states[i]``),
the free and fit capacity, enabled/up, availability zone and architecture codes, instance and
failed-build counts and an aggregate-metadata code. Built-in filters answer with a boolean mask
over all positions (``mask(columns, spec)``) and built-in weighers with a value per position
(``weigh_columns(columns, spec)``), so a request costs a few NumPy operations instead of Python
loops over host objects.

Two kinds:
- attached (``HostManager``'s): every state knows its columns and position, and any assignment of
  a mirrored attribute (``consume``/``release``/``update`` or a direct ``host.enabled = False``)
  writes the new value into its column at once, O(1);
- detached (built by the scheduler for a plain list of states, for one call): the scheduler
  re-reads the row of each host it consumes (``sync_row``).

Codes: an availability zone, architecture or aggregate-metadata set gets a small integer the first
time it is seen; a request's value that no host has gets no code, so nothing matches it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kvmfleet.scheduler.exceptions import InvalidRequest

if TYPE_CHECKING:
    from kvmfleet.scheduler.host_state import HostState

# HostState attribute -> column, for the plain numeric ones (float64: the values the per-host
# plug-ins compare and weigh are Python floats or small ints, which float64 holds exactly).
NUMERIC = ("free_vcpus", "free_memory_mb", "free_disk_gb", "fit_vcpus", "fit_memory_mb", "fit_disk_gb",
           "num_instances", "failed_builds")
# Every HostState attribute whose assignment must reach the columns.
MIRRORED = frozenset(NUMERIC + ("enabled", "up", "az", "arch", "aggregate_metadata", "name"))


def _metadata_key(metadata: Mapping[str, frozenset[str]]) -> tuple:
    return tuple(sorted((k, tuple(sorted(v))) for k, v in metadata.items()))


class HostColumns:
    """Arrays over ``states`` (read them, never write them: only ``set``/``sync_row`` do)."""

    def __init__(self, states: Sequence[HostState], *, attach: bool = False):
        self.states = list(states)
        self.n = n = len(self.states)
        self.names = [h.name for h in self.states]
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        # Names must be unique for name-based plug-ins (server groups, force/ignore hosts).
        self.unique = len(self.index) == n
        self.attached = False
        self.live = True
        self._positions: dict[int, int] | None = None
        for col in NUMERIC:
            setattr(self, col, np.empty(n, dtype=np.float64))
        self.enabled = np.empty(n, dtype=bool)
        self.up = np.empty(n, dtype=bool)
        self.usable = np.empty(n, dtype=bool)  # enabled and up (ComputeFilter)
        self.az_codes: dict[str, int] = {}
        self.arch_codes: dict[str, int] = {}
        self.az = np.empty(n, dtype=np.int32)
        self.arch = np.empty(n, dtype=np.int32)
        # aggregate metadata: one code per distinct {key: values} (hosts share a few aggregates)
        self.agg_codes: dict[tuple, int] = {}
        self.agg_metadata: list[Mapping[str, frozenset[str]]] = []
        self.agg = np.empty(n, dtype=np.int32)
        self._build()
        if attach:
            if not self.unique:
                raise InvalidRequest("host columns: host names must be unique to attach")
            for i, h in enumerate(self.states):
                h._attach(self, i)
            self.attached = True

    # -- codes --------------------------------------------------------------------------------

    @staticmethod
    def _code(codes: dict, value: Any) -> int:
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(codes)
        return code

    def az_code(self, value: str) -> int | None:
        """The code of an availability zone, None if no host here was ever in it."""
        return self.az_codes.get(value)

    def arch_code(self, value: str) -> int | None:
        return self.arch_codes.get(value)

    def _agg_code(self, metadata: Mapping[str, frozenset[str]]) -> int:
        key = _metadata_key(metadata)
        code = self.agg_codes.get(key)
        if code is None:
            code = self.agg_codes[key] = len(self.agg_metadata)
            self.agg_metadata.append(metadata)
        return code

    def _build(self) -> None:
        states = self.states
        n = self.n
        for col in NUMERIC:
            getattr(self, col)[:] = np.fromiter((getattr(h, col) for h in states), dtype=np.float64, count=n)
        self.enabled[:] = np.fromiter((bool(h.enabled) for h in states), dtype=bool, count=n)
        self.up[:] = np.fromiter((bool(h.up) for h in states), dtype=bool, count=n)
        np.logical_and(self.enabled, self.up, out=self.usable)
        code = self._code
        self.az[:] = np.fromiter((code(self.az_codes, h.az) for h in states), dtype=np.int32, count=n)
        self.arch[:] = np.fromiter((code(self.arch_codes, h.arch) for h in states), dtype=np.int32, count=n)
        self.agg[:] = np.fromiter((self._agg_code(h.aggregate_metadata) for h in states), dtype=np.int32, count=n)

    # -- updates ------------------------------------------------------------------------------

    def set(self, i: int, attr: str, value: Any) -> None:
        """Write one mirrored attribute of the host at position ``i`` (called on every assignment)."""
        if attr in NUMERIC:
            getattr(self, attr)[i] = value
        elif attr == "enabled" or attr == "up":
            getattr(self, attr)[i] = bool(value)
            self.usable[i] = self.enabled[i] and self.up[i]
        elif attr == "az":
            self.az[i] = self._code(self.az_codes, value)
        elif attr == "arch":
            self.arch[i] = self._code(self.arch_codes, value)
        elif attr == "aggregate_metadata":
            self.agg[i] = self._agg_code(value)
        elif attr == "name" and value != self.names[i]:
            raise InvalidRequest(f"host {self.names[i]} is held by a HostManager and cannot be renamed to {value}")

    def set_capacity(self, i: int, values: tuple[float, float, float, float, float, float]) -> None:
        """free_vcpus, free_memory_mb, free_disk_gb, fit_vcpus, fit_memory_mb, fit_disk_gb of position ``i``."""
        (self.free_vcpus[i], self.free_memory_mb[i], self.free_disk_gb[i],
         self.fit_vcpus[i], self.fit_memory_mb[i], self.fit_disk_gb[i]) = values

    def sync_row(self, i: int) -> None:
        """Re-read every mirrored attribute of the host at position ``i``."""
        h = self.states[i]
        for col in NUMERIC:
            getattr(self, col)[i] = getattr(h, col)
        self.enabled[i] = bool(h.enabled)
        self.up[i] = bool(h.up)
        self.usable[i] = self.enabled[i] and self.up[i]
        self.az[i] = self._code(self.az_codes, h.az)
        self.arch[i] = self._code(self.arch_codes, h.arch)
        self.agg[i] = self._agg_code(h.aggregate_metadata)

    def detach(self) -> None:
        """Stop mirroring (the manager built new columns): states are released, this is no longer live."""
        if self.attached:
            for h in self.states:
                if h._cols is self:
                    h._attach(None, -1)
        self.attached = False
        self.live = False

    # -- lookups ------------------------------------------------------------------------------

    def positions_of(self, names) -> list[int]:
        """Positions of the named hosts present here (names not here are left out)."""
        index = self.index
        return [index[n] for n in names if n in index]

    def position_of_state(self, host: HostState) -> int:
        """Position of a state object (for per-host plug-ins' results)."""
        if self._positions is None:
            self._positions = {id(h): i for i, h in enumerate(self.states)}
        return self._positions[id(host)]
