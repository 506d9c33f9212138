"""ServerGroupSoftAffinityWeigher and ServerGroupSoftAntiAffinityWeigher (Nova semantics).

For a request in a ``soft-affinity`` group a host weighs the number of the group's members on it
(more is better); for ``soft-anti-affinity`` the negated number (fewer is better). Other requests
get no opinion. Member counts come from ``spec.server_group.hosts``, like the hard filters.
"""

from __future__ import annotations

import numpy as np

from kvmfleet.scheduler.weighers import HostWeigher


class _SoftGroupWeigher(HostWeigher):
    policy = ""
    sign = 1.0

    def weigh(self, host, spec):
        group = spec.server_group
        if group is None or group.policy != self.policy:
            return 0.0
        return self.sign * group.hosts.get(host.name, 0)

    def weigh_all(self, hosts, spec):
        group = spec.server_group
        if group is None or group.policy != self.policy or not group.hosts:
            return None
        get = group.hosts.get
        sign = self.sign
        return [sign * get(h.name, 0) for h in hosts]

    def weigh_columns(self, cols, spec):
        group = spec.server_group
        if group is None or group.policy != self.policy or not group.hosts:
            return None
        out = np.full(cols.n, self.sign * 0.0)  # sparse: only the group's hosts are touched
        index = cols.index
        for name, count in group.hosts.items():
            i = index.get(name)
            if i is not None:
                out[i] = self.sign * count
        return out


class ServerGroupSoftAffinityWeigher(_SoftGroupWeigher):
    policy = "soft-affinity"


class ServerGroupSoftAntiAffinityWeigher(_SoftGroupWeigher):
    policy = "soft-anti-affinity"
    sign = -1.0
