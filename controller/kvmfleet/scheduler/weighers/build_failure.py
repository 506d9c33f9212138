"""BuildFailureWeigher: hosts where builds failed recently weigh less (Nova: -failed_builds, multiplier 1e6).

The large default multiplier makes a failing host lose to any healthy one whatever the other
weighers say; the count is reset when a build succeeds there (the compute code does that).
"""

from __future__ import annotations

from kvmfleet.scheduler.host_state import hosts_with_failed_builds
from kvmfleet.scheduler.weighers import HostWeigher


class BuildFailureWeigher(HostWeigher):
    default_multiplier = 1000000.0

    def weigh(self, host, spec):
        return -host.failed_builds

    def weigh_all(self, hosts, spec):
        if not hosts_with_failed_builds():  # no host anywhere has failures: all weigh the same
            return None
        return [-h.failed_builds for h in hosts]

    def weigh_columns(self, cols, spec):
        if not cols.failed_builds.any():
            return None
        return 0.0 - cols.failed_builds  # +0.0 where there are none, as -0 is for ints
