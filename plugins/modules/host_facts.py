#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_facts
short_description: Report everything placement needs to know about a KVM compute host
version_added: 0.1.0
description:
  - Reads, in one call, the capacity and contents of a KVM compute host. CPU architecture, model
    and flags, vCPUs, memory, free storage of the image cache and instance directories, hypervisor
    and libvirt versions, usable virt types, every kvmfleet domain with its instance metadata and
    NICs, and the host's libvirt networks with the DHCP leases their dnsmasq handed out.
  - The kvmfleet controller's scheduler uses the result as host state, and it is enough to rebuild
    the controller's store from the hosts after a disaster.
  - Never changes anything on the host.
author:
  - kvmfleet developers (@kvmfleet)
extends_documentation_fragment:
  - kvmfleet.compute.attributes.INFO_MODULE
  - kvmfleet.compute.libvirt
  - kvmfleet.compute.libvirt.PATHS
options: {}
notes:
  - When O(images_dir) or O(instances_dir) does not exist yet, the filesystem of its nearest existing
    parent directory is measured.
  - C(kvm) counts as usable only when C(/dev/kvm) can be opened read-write by the module and libvirt
    reports domain capabilities for the C(kvm) virt type on the host's architecture. C(qemu) (TCG)
    counts as usable when the QEMU emulator for the architecture is installed.
  - Domains without kvmfleet metadata are counted in RV(host_facts.foreign_domains) but not listed.
seealso:
  - module: kvmfleet.compute.domain_info
  - module: kvmfleet.compute.image
  - module: kvmfleet.compute.network_info
"""

EXAMPLES = r"""
- name: Read host facts
  kvmfleet.compute.host_facts:
  register: facts

- name: Show what the scheduler will see
  ansible.builtin.debug:
    msg: >-
      {{ facts.host_facts.hostname }}: {{ facts.host_facts.vcpus }} vCPUs,
      {{ facts.host_facts.memory_free_mb }} MiB free,
      {{ facts.host_facts.storage.free_gb }} GiB free for instances,
      virt types {{ facts.host_facts.virt_types | join(', ') }}

- name: Read facts about a host that keeps instances on another filesystem
  kvmfleet.compute.host_facts:
    instances_dir: /srv/kvmfleet/instances
"""

RETURN = r"""
host_facts:
  description: The facts of the host.
  returned: success
  type: dict
  contains:
    hostname:
      description: Host name as libvirt reports it.
      type: str
      sample: compute-01
    host_uuid:
      description: Host UUID from the libvirt capabilities.
      type: str
      sample: baf8bbcf-e9b7-48ac-aaff-4f0d5cddb81d
    arch:
      description: Host CPU architecture.
      type: str
      sample: x86_64
    cpu_model:
      description: libvirt's name of the host CPU model.
      type: str
      sample: Skylake-Client-IBRS
    cpu_model_name:
      description: The CPU model name from C(/proc/cpuinfo).
      type: str
      sample: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz
    cpu_vendor:
      description: CPU vendor as libvirt reports it.
      type: str
      sample: Intel
    cpu_flags:
      description: Sorted CPU flags from C(/proc/cpuinfo) (libvirt's extra features when that cannot be read).
      type: list
      elements: str
      sample: [aes, avx, avx2, vmx]
    cpu_topology:
      description: Sockets, cores per socket and threads per core.
      type: dict
      sample: {sockets: 1, cores: 4, threads: 2}
    numa_cells:
      description: Number of NUMA cells.
      type: int
      sample: 1
    vcpus:
      description: Number of host CPUs.
      type: int
      sample: 8
    memory_mb:
      description: Host memory in MiB.
      type: int
      sample: 32038
    memory_free_mb:
      description: Memory available for new guests in MiB (C(MemAvailable)).
      type: int
      sample: 20110
    storage:
      description:
        - Capacity of the image cache and instance directories, in GiB with 2 decimals.
        - Free space is what an unprivileged user may still use.
      type: dict
      contains:
        images_dir:
          description: The image cache directory.
          type: str
          sample: /var/lib/libvirt/kvmfleet/images
        instances_dir:
          description: The instances directory.
          type: str
          sample: /var/lib/libvirt/kvmfleet/instances
        total_gb:
          description: Size of the filesystem of the instances directory.
          type: float
          sample: 97.87
        free_gb:
          description: Free space on the filesystem of the instances directory.
          type: float
          sample: 51.2
        same_filesystem:
          description: Whether both directories are on one filesystem.
          type: bool
          sample: true
        images:
          description: The filesystem of the image cache directory.
          type: dict
          sample: {path: /var/lib/libvirt/kvmfleet/images, measured_path: /var/lib/libvirt/kvmfleet/images,
                   exists: true, total_gb: 97.87, free_gb: 51.2}
        instances:
          description:
            - The filesystem of the instances directory.
            - RV(host_facts.storage.instances.measured_path) is the nearest existing directory, which
              was measured; RV(host_facts.storage.instances.exists) tells whether that is the directory itself.
          type: dict
          contains:
            path:
              description: The directory.
              type: str
            measured_path:
              description: The directory measured (itself or its nearest existing parent).
              type: str
            exists:
              description: Whether the directory exists.
              type: bool
            total_gb:
              description: Size of its filesystem.
              type: float
            free_gb:
              description: Free space on its filesystem.
              type: float
    hypervisor_type:
      description: libvirt driver name.
      type: str
      sample: QEMU
    hypervisor_version:
      description: Hypervisor (QEMU) version.
      type: str
      sample: 7.2.22
    hypervisor_version_code:
      description: Hypervisor version as libvirt's number (major * 1000000 + minor * 1000 + release).
      type: int
      sample: 7002022
    libvirt_version:
      description: libvirt version.
      type: str
      sample: 9.0.0
    libvirt_version_code:
      description: libvirt version as a number.
      type: int
      sample: 9000000
    virt_types:
      description: Virt types a domain of the host's architecture can use, best first.
      type: list
      elements: str
      sample: [kvm, qemu]
    kvm_usable:
      description: Whether C(kvm) is in RV(host_facts.virt_types).
      type: bool
      sample: true
    kvm_unusable_reason:
      description: Why C(kvm) is not usable, or null.
      type: str
      sample: /dev/kvm does not exist
    instances:
      description: Every kvmfleet domain (one with kvmfleet metadata), sorted by domain name.
      type: list
      elements: dict
      contains:
        domain:
          description: libvirt domain name.
          type: str
          sample: kvmfleet-6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
        uuid:
          description: libvirt domain UUID.
          type: str
          sample: 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
        power_state:
          description: Power state (running, paused, shutoff, suspended, crashed, ...).
          type: str
          sample: running
        vcpus:
          description: Number of vCPUs.
          type: int
          sample: 2
        memory_mb:
          description: Memory in MiB.
          type: int
          sample: 512
        virt_type:
          description: The domain's virt type.
          type: str
          sample: kvm
        disks:
          description: Source paths of the domain's disks.
          type: list
          elements: str
          sample: [/var/lib/libvirt/kvmfleet/instances/web1/disk]
        disk_capacities:
          description:
            - Virtual size in bytes of each disk of RV(host_facts.instances[].disks), by source path, as
              libvirt's block info reports it (running or shut off); null for a disk libvirt cannot measure.
            - With the metadata, what a controller needs to rebuild its store from the hosts (root and
              ephemeral disk sizes of an instance whose flavor it no longer knows).
          type: dict
          sample: {/var/lib/libvirt/kvmfleet/instances/web1/disk: 1073741824}
          version_added: 0.2.0
        nics:
          description: The domain's network interfaces, in device order.
          type: list
          elements: dict
          sample: [{mac: "52:54:00:6b:3c:58", network: default, bridge: null, model: virtio, target: vnet0}]
        metadata:
          description: The kvmfleet instance metadata (uuid, name, project, flavor, image, ...).
          type: dict
          sample: {uuid: 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab, name: web1, flavor: m1.tiny}
    allocated:
      description: Sums over RV(host_facts.instances), whatever their power state.
      type: dict
      sample: {instances: 3, vcpus: 6, memory_mb: 1536}
    foreign_domains:
      description: Number of libvirt domains without kvmfleet metadata.
      type: int
      sample: 0
    networks:
      description:
        - The host's libvirt networks, sorted by name, as M(kvmfleet.compute.network_info) returns them
          (see its C(networks) return value for every field), with their DHCP leases.
      type: list
      elements: dict
      sample: [{name: default, active: true, bridge: virbr0, forward_mode: nat, mtu: 1500,
                subnets: [{ip_version: 4, address: 192.168.122.1, prefix: 24, cidr: 192.168.122.0/24,
                           dhcp_ranges: [{start: 192.168.122.2, end: 192.168.122.254}]}],
                dhcp_leases: [{mac: "52:54:00:6b:3c:58", ip_address: 192.168.122.37, prefix: 24,
                               ip_version: 4, hostname: web1, expires_at: 1764632000}]}]
"""

import errno
import os
import socket
from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmfleet.compute.plugins.module_utils import _host
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import DomainNotFound, KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._image import DEFAULT_IMAGES_DIR
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    DEFAULT_URI,
    close,
    connect,
    domain_state,
    libvirt_errors,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._network import observe_networks
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_abs_path

KVM_DEVICE = "/dev/kvm"


@dataclass
class HostFactsParameters:
    uri: str
    images_dir: str
    instances_dir: str

    @classmethod
    def from_module(cls, module):
        p = module.params
        return cls(
            uri=p["uri"],
            images_dir=validate_abs_path(p["images_dir"], "images_dir"),
            instances_dir=validate_abs_path(p["instances_dir"], "instances_dir"),
        )


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def kvm_device_problem(path=KVM_DEVICE):
    """None when ``path`` opens read-write (as QEMU needs), else why not."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return f"{path} does not exist"
        return f"{path} cannot be opened: {exc.strerror}"
    os.close(fd)
    return None


class HostFactsManager:
    """Reads the raw observation from libvirt and the host (read-only) and builds the facts."""

    def __init__(self, params):
        self.params = params

    def run(self):
        observation = self.observe()
        facts = _host.build_host_facts(observation)
        capacities = {entry["name"]: entry["disk_capacities"] for entry in observation.domains}
        for instance in facts["instances"]:
            instance["disk_capacities"] = capacities.get(instance["domain"], {})
        return {"changed": False, "host_facts": facts}

    def observe(self):
        conn = connect(self.params.uri)
        try:
            return self._observe(conn)
        finally:
            close(conn)

    def _observe(self, conn):
        with libvirt_errors("read host capabilities"):
            caps_xml = conn.getCapabilities()
            node_info = conn.getInfo()
            hv_type = conn.getType()
            hv_version = conn.getVersion()
            lib_version = conn.getLibVersion()
            free_bytes = conn.getFreeMemory()
        with libvirt_errors("read host name"):
            hostname = conn.getHostname() or socket.gethostname()
        caps = _host.parse_capabilities(caps_xml)
        arch = caps["arch"] or node_info[0]
        guest = caps["guests"].get(arch) or {}
        emulator = guest.get("emulator")
        return _host.HostObservation(
            hostname=hostname,
            capabilities_xml=caps_xml,
            node_info=list(node_info),
            hypervisor_type=hv_type,
            hypervisor_version=hv_version,
            libvirt_version=lib_version,
            cpuinfo=_read("/proc/cpuinfo"),
            meminfo=_read("/proc/meminfo"),
            free_memory_bytes=free_bytes,
            kvm_device=kvm_device_problem(),
            kvm_domain_capabilities=self._kvm_domain_capabilities(conn, arch),
            emulators={emulator: os.access(emulator, os.X_OK)} if emulator else {},
            domains=self._domains(conn),
            images_storage=_host.measure_storage(self.params.images_dir),
            instances_storage=_host.measure_storage(self.params.instances_dir),
            networks=observe_networks(conn),
        )

    @staticmethod
    def _kvm_domain_capabilities(conn, arch):
        try:
            with libvirt_errors("read kvm domain capabilities"):
                conn.getDomainCapabilities(None, arch, None, "kvm", 0)
        except KvmfleetError:
            return False  # libvirt says kvm cannot run domains of this arch here
        return True

    @staticmethod
    def _domains(conn):
        with libvirt_errors("list domains"):
            domains = conn.listAllDomains(0)
        observed = []
        for dom in domains:
            try:
                with libvirt_errors(f"read domain {dom.name()}"):
                    name = dom.name()
                    xml = dom.XMLDesc(0)
                state = domain_state(dom)
            except DomainNotFound:
                continue  # undefined while we looked: it no longer exists
            observed.append({"name": name, "xml": xml, "power_state": state,
                             "disk_capacities": HostFactsManager._disk_capacities(dom, name, xml)})
        return observed

    @staticmethod
    def _disk_capacities(dom, name, xml):
        """Virtual size of each disk of a kvmfleet domain, by source path (None: libvirt could not tell)."""
        parsed = _host.parse_domain(xml)
        if parsed["metadata"] is None:
            return {}  # foreign domains are only counted
        sizes = {}
        for path in parsed["disks"]:
            try:
                with libvirt_errors(f"read block info of {path} of domain {name}"):
                    sizes[path] = int(dom.blockInfo(path, 0)[0])
            except KvmfleetError:
                sizes[path] = None
        return sizes


def main():
    module = AnsibleModule(
        argument_spec={
            "uri": {"type": "str", "default": DEFAULT_URI},
            "images_dir": {"type": "path", "default": DEFAULT_IMAGES_DIR},
            "instances_dir": {"type": "path", "default": _host.DEFAULT_INSTANCES_DIR},
        },
        supports_check_mode=True,
    )
    try:
        manager = HostFactsManager(HostFactsParameters.from_module(module))
        module.exit_json(**manager.run())
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    except OSError as exc:
        module.fail_json(msg=f"read host facts: {exc}")


if __name__ == "__main__":
    main()
