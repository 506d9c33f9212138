"""NumInstancesFilter: the host has fewer than ``max_instances_per_host`` instances (Nova's default 50)."""

from __future__ import annotations

from kvmfleet.scheduler.filters import HostFilter


class NumInstancesFilter(HostFilter):
    def host_passes(self, host, spec):
        return host.num_instances < self.config.max_instances_per_host

    def filter_all(self, hosts, spec):
        limit = self.config.max_instances_per_host
        return [h for h in hosts if h.num_instances < limit]

    def mask(self, cols, spec):
        return cols.num_instances < self.config.max_instances_per_host
