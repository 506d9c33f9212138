"""NumInstancesWeigher: the number of instances on the host (Nova's default multiplier 0.0, off).

A positive multiplier prefers hosts with more instances (packing), a negative one spreads.
"""

from __future__ import annotations

from kvmfleet.scheduler.weighers import HostWeigher


class NumInstancesWeigher(HostWeigher):
    default_multiplier = 0.0

    def weigh(self, host, spec):
        return host.num_instances

    def weigh_all(self, hosts, spec):
        return [h.num_instances for h in hosts]

    def weigh_columns(self, cols, spec):
        return cols.num_instances
