"""ImagePropertiesFilter: the host's architecture matches the image's ``hw_architecture``.

Nova's filter also checks hypervisor type and VM mode; every kvmfleet host is libvirt/KVM with HVM
guests, so only the architecture can differ. Names are canonical (amd64 -> x86_64, arm64 -> aarch64).
"""

from __future__ import annotations

import numpy as np

from kvmfleet.scheduler.filters import HostFilter


class ImagePropertiesFilter(HostFilter):
    def host_passes(self, host, spec):
        return spec.image.arch is None or host.arch == spec.image.arch

    def filter_all(self, hosts, spec):
        arch = spec.image.arch
        if arch is None:
            return hosts
        return [h for h in hosts if h.arch == arch]

    def mask(self, cols, spec):
        arch = spec.image.arch
        if arch is None:
            return None
        code = cols.arch_code(arch)
        return cols.arch == code if code is not None else np.zeros(cols.n, dtype=bool)
