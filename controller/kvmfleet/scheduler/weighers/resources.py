"""RAMWeigher, CPUWeigher, DiskWeigher: free capacity (after allocation ratios and reservations).

With positive multipliers (Nova's default 1.0) the host with the most free capacity wins, spreading
instances; negative multipliers fill the fullest host first (packing).
"""

from __future__ import annotations

from kvmfleet.scheduler.weighers import HostWeigher


class RAMWeigher(HostWeigher):
    def weigh(self, host, spec):
        return host.free_memory_mb

    def weigh_all(self, hosts, spec):
        return [h.free_memory_mb for h in hosts]

    def weigh_columns(self, cols, spec):
        return cols.free_memory_mb


class CPUWeigher(HostWeigher):
    def weigh(self, host, spec):
        return host.free_vcpus

    def weigh_all(self, hosts, spec):
        return [h.free_vcpus for h in hosts]

    def weigh_columns(self, cols, spec):
        return cols.free_vcpus


class DiskWeigher(HostWeigher):
    def weigh(self, host, spec):
        return host.free_disk_gb

    def weigh_all(self, hosts, spec):
        return [h.free_disk_gb for h in hosts]

    def weigh_columns(self, cols, spec):
        return cols.free_disk_gb
