"""AvailabilityZoneFilter: the host is in the availability zone the request names, if it names one."""

from __future__ import annotations

import numpy as np

from kvmfleet.scheduler.filters import HostFilter


class AvailabilityZoneFilter(HostFilter):
    def host_passes(self, host, spec):
        return spec.availability_zone is None or host.az == spec.availability_zone

    def filter_all(self, hosts, spec):
        az = spec.availability_zone
        if az is None:
            return hosts
        return [h for h in hosts if h.az == az]

    def mask(self, cols, spec):
        az = spec.availability_zone
        if az is None:
            return None
        code = cols.az_code(az)
        return cols.az == code if code is not None else np.zeros(cols.n, dtype=bool)
