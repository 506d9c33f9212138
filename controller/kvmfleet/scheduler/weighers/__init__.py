"""Host weighers. Each is one class with ``weigh(host, spec) -> float`` and a multiplier.

Nova's weighing: every weigher's raw values over the candidate hosts are normalised to [0, 1]
with ``(value - minval) / (maxval - minval)`` (min and max taken over the candidates unless the
weigher fixes ``minval``/``maxval``; all-equal values give 0), multiplied by the weigher's
multiplier, and summed. Higher wins; a negative multiplier turns spreading into packing.

The per-host path calls ``weigh_all(hosts, spec)``; it returns the raw values in host order, or None
when the weigher has no opinion on this request (every host the same), which costs nothing.

A weigher may also define the vectorised form ``weigh_columns(columns, spec)``: a float NumPy array
with the raw value of every position of the ``HostColumns`` (the scheduler takes the candidates'
entries), or None for no opinion. As for filters, it is used only when its class is (or derives
from) the class defining ``weigh`` and ``weigh_all``; all forms must agree. The scheduler never
writes into a returned array, so it may return a column itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmfleet.scheduler.config import SchedulerConfig
    from kvmfleet.scheduler.host_state import HostState
    from kvmfleet.scheduler.request_spec import RequestSpec


class HostWeigher:
    """Base class. ``default_multiplier`` is Nova's default for the matching option."""

    name: str = ""
    default_multiplier: float = 1.0
    minval: float | None = None
    maxval: float | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, config: SchedulerConfig, multiplier: float | None = None):
        self.config = config
        self.multiplier = float(self.default_multiplier if multiplier is None else multiplier)

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        raise NotImplementedError

    def weigh_all(self, hosts: list[HostState], spec: RequestSpec) -> list[float] | None:
        weigh = self.weigh
        return [weigh(h, spec) for h in hosts]

    # Optional vectorised form: ``def weigh_columns(self, columns: HostColumns, spec) -> numpy array | None``.
    weigh_columns = None


def normalize(values: list[float], minval: float | None = None, maxval: float | None = None) -> list[float]:
    """Nova's ``nova.weights.normalize``: scale to [0, 1]; all-equal values become 0."""
    if not values:
        return []
    lo = float(min(values) if minval is None else minval)
    hi = float(max(values) if maxval is None else maxval)
    if lo == hi:
        return [0.0] * len(values)
    span = hi - lo
    return [(v - lo) / span for v in values]
