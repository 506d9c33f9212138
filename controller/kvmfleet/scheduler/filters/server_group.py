"""ServerGroupAffinityFilter and ServerGroupAntiAffinityFilter (Nova semantics).

Both read where the group's members already are from the request (``spec.server_group.hosts``,
host -> member count; Nova's ``instance_group.hosts`` and members). The scheduler adds each
instance it places, so the members of one multi-create see each other.

- affinity: once a member is placed, only its host(s) pass; the first member goes anywhere.
- anti-affinity: a host passes while it holds fewer than ``max_server_per_host`` members (default 1).
The soft policies are weighers, not filters.
"""

from __future__ import annotations

import numpy as np

from kvmfleet.scheduler.filters import HostFilter


class ServerGroupAffinityFilter(HostFilter):
    def host_passes(self, host, spec):
        group = spec.server_group
        if group is None or group.policy != "affinity" or not group.hosts:
            return True
        return host.name in group.hosts

    def filter_all(self, hosts, spec):
        group = spec.server_group
        if group is None or group.policy != "affinity" or not group.hosts:
            return hosts
        members = group.hosts
        return [h for h in hosts if h.name in members]

    def mask(self, cols, spec):
        group = spec.server_group
        if group is None or group.policy != "affinity" or not group.hosts:
            return None
        out = np.zeros(cols.n, dtype=bool)  # sparse: only the group's hosts are touched
        out[cols.positions_of(group.hosts)] = True
        return out


class ServerGroupAntiAffinityFilter(HostFilter):
    def host_passes(self, host, spec):
        group = spec.server_group
        if group is None or group.policy != "anti-affinity":
            return True
        return group.hosts.get(host.name, 0) < (group.max_server_per_host or 1)

    def filter_all(self, hosts, spec):
        group = spec.server_group
        if group is None or group.policy != "anti-affinity" or not group.hosts:
            return hosts
        limit = group.max_server_per_host or 1
        if limit == 1:
            members = group.hosts
            return [h for h in hosts if h.name not in members]
        full = {name for name, n in group.hosts.items() if n >= limit}
        if not full:
            return hosts
        return [h for h in hosts if h.name not in full]

    def mask(self, cols, spec):
        group = spec.server_group
        if group is None or group.policy != "anti-affinity" or not group.hosts:
            return None
        limit = group.max_server_per_host or 1
        full = [name for name, n in group.hosts.items() if n >= limit]
        if not full:
            return None
        out = np.ones(cols.n, dtype=bool)  # sparse: only the full hosts are touched
        out[cols.positions_of(full)] = False
        return out
