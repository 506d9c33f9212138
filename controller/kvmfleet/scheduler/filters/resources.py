"""ResourceFilter: enough vcpus, memory and disk for one instance of the flavor.

This is the job of Nova's retired CoreFilter, RamFilter and DiskFilter, which Placement took over
(allocation candidates for VCPU, MEMORY_MB and DISK_GB). Capacity follows Placement:
``(total - reserved) * allocation_ratio - used`` must be at least the request, and no single request
may exceed the host's total (Placement's ``max_unit``). The host keeps ``fit_*`` = min(free, total).
"""

from __future__ import annotations

from kvmfleet.scheduler.filters import HostFilter


class ResourceFilter(HostFilter):
    def host_passes(self, host, spec):
        f = spec.flavor
        return host.fit_memory_mb >= f.memory_mb and host.fit_vcpus >= f.vcpus and host.fit_disk_gb >= f.disk_gb

    def filter_all(self, hosts, spec):
        f = spec.flavor
        # floats on both sides: int/float comparisons cost twice as much
        mem, cpu, disk = float(f.memory_mb), float(f.vcpus), float(f.disk_gb)
        return [h for h in hosts if h.fit_memory_mb >= mem and h.fit_vcpus >= cpu and h.fit_disk_gb >= disk]

    def mask(self, cols, spec):
        f = spec.flavor
        out = cols.fit_memory_mb >= f.memory_mb
        out &= cols.fit_vcpus >= f.vcpus
        out &= cols.fit_disk_gb >= f.disk_gb
        return out
