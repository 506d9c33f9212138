"""ComputeFilter: the host's compute service is enabled and up (Nova's ComputeFilter)."""

from __future__ import annotations

from kvmfleet.scheduler.filters import HostFilter


class ComputeFilter(HostFilter):
    def host_passes(self, host, spec):
        return host.enabled and host.up

    def filter_all(self, hosts, spec):
        return [h for h in hosts if h.enabled and h.up]

    def mask(self, cols, spec):
        return cols.usable
