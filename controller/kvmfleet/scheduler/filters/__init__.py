"""Host filters. Each is one class with ``host_passes(host, spec) -> bool``.

The per-host path calls ``filter_all(hosts, spec)``, the batch form (Nova's ``BaseFilter.filter_all``).
The default runs ``host_passes`` on every host; filters override it to hoist what depends only on
the request out of the per-host loop, and return the input list unchanged when the request does not
concern them.

A filter may also define the vectorised form ``mask(columns, spec)``: a boolean NumPy array over
every position of the ``HostColumns`` (True = passes), or None when the request does not concern
it (every host passes). The scheduler uses it when the class that defines ``mask`` is the one that
defines (or inherits from the one that defines) ``host_passes`` and ``filter_all``, so a subclass
that changes the per-host rule without a new ``mask`` runs per host. All forms must agree (the
tests check that on every case file and on generated workloads). The scheduler never writes into
a returned array, so ``mask`` may return a column itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmfleet.scheduler.config import SchedulerConfig
    from kvmfleet.scheduler.host_state import HostState
    from kvmfleet.scheduler.request_spec import RequestSpec


class HostFilter:
    """Base class: a filter says whether one host can take one instance of the request."""

    name: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(self, config: SchedulerConfig):
        self.config = config

    def host_passes(self, host: HostState, spec: RequestSpec) -> bool:
        raise NotImplementedError

    def filter_all(self, hosts: list[HostState], spec: RequestSpec) -> list[HostState]:
        """The hosts that pass, in their input order (may return ``hosts`` itself; never modify it)."""
        passes = self.host_passes
        return [h for h in hosts if passes(h, spec)]

    # Optional vectorised form: ``def mask(self, columns: HostColumns, spec) -> numpy bool array | None``.
    mask = None
