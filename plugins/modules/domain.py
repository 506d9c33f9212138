#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: domain
short_description: Desired state of one libvirt domain (a kvmfleet instance)
version_added: 0.1.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Defines, starts, stops, pauses, suspends and removes one libvirt domain on a KVM host, in one call.
  - A new domain gets a qcow2 overlay on a cached base image as its root disk, optional empty extra disks,
    an optional seed (NoCloud, label C(cidata), or a config drive, label C(config-2)), NICs on named libvirt
    networks, a serial console logged to C(<instance dir>/console.log) and VNC on 127.0.0.1.
  - The domain carries kvmfleet metadata (instance uuid, name, project, flavor, image, server group,
    created_at and the disks this module created) in its libvirt C(<metadata>) element.
  - For an existing domain, I(vcpus) and I(memory_mb) are written to the persistent definition; if the
    domain stays active the new values take effect at its next boot and are listed in C(restart_required).
    Disks, NICs and the seed of an existing domain are never changed.
  - Any failure while creating a domain removes what this run created (disks, seed, definition).
extends_documentation_fragment:
  - kvmfleet.compute.attributes
  - kvmfleet.compute.libvirt
  - kvmfleet.compute.libvirt.PATHS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the libvirt domain. 1-64 characters of C(A-Za-z0-9._-), not starting with C(-) or C(.).
    type: str
    required: true
  uuid:
    description:
      - UUID of the domain when it is created. An existing domain with another UUID is an error.
      - A random UUID is used when omitted.
    type: str
  state:
    description:
      - C(present) defines the domain; a new domain is left shut off, an existing one keeps its power state.
      - C(running) defines it if needed and runs it (starting, resuming or restoring a managed save).
      - C(stopped) shuts it down gracefully (ACPI) and waits up to I(stop_timeout) seconds, then destroys
        it if I(force_stop) is set. A managed save image is discarded.
      - C(paused) pauses the vCPUs (starting the domain paused if it is shut off).
      - C(suspended) saves the memory to a managed save image and stops the domain (libvirt managed save).
      - C(absent) destroys and undefines the domain and removes the disks this module created (recorded in
        the metadata), the original of each such disk kept beside it by an in-place resize
        (C(<disk>.resize-orig)), and the instance directory if it is then empty. Base images are never removed.
    type: str
    choices: [present, running, stopped, paused, suspended, absent]
    default: running
  vcpus:
    description:
      - Number of virtual CPUs. Required to create a domain.
    type: int
  memory_mb:
    description:
      - Memory in MiB. Required to create a domain. More than the host's total memory is refused.
    type: int
  virt_type:
    description:
      - Domain type. C(kvm) uses hardware virtualisation and CPU host-passthrough; C(qemu) is TCG emulation.
    type: str
    choices: [kvm, qemu]
    default: kvm
  arch:
    description: Guest architecture.
    type: str
    default: x86_64
  machine:
    description: QEMU machine type; C(pc) when omitted.
    type: str
  root_disk:
    description:
      - Root disk of a new domain, a qcow2 overlay on a base image. Required to create a domain.
    type: dict
    suboptions:
      image:
        description:
          - File name of a base image in I(images_dir), or the absolute path of a base image.
        type: str
        required: true
      size_gb:
        description:
          - Virtual size of the root disk in GiB; the base image's size when omitted. Cannot be smaller.
        type: int
      format:
        description:
          - Format of the base image, passed to qemu-img explicitly (an image's format is never probed).
        type: str
        choices: [qcow2, raw]
        default: qcow2
      volume:
        description:
          - Boot from volume. The absolute path of an existing volume (made from the image, for example by
            M(kvmfleet.compute.volume)) that is the root disk as it is, instead of an overlay on I(image).
          - The domain never creates nor deletes it; O(root_disk.size_gb) does not apply.
        type: path
      volume_format:
        description: Format of O(root_disk.volume).
        type: str
        choices: [qcow2, raw]
        default: qcow2
  disks:
    description:
      - Extra empty qcow2 disks of a new domain, attached after the root disk.
    type: list
    elements: dict
    suboptions:
      size_gb:
        description: Size in GiB.
        type: int
        required: true
      bus:
        description: Disk bus.
        type: str
        choices: [virtio, sata, scsi]
        default: virtio
  nics:
    description:
      - Network interfaces of a new domain, each on a named libvirt network.
    type: list
    elements: dict
    suboptions:
      network:
        description: Name of the libvirt network. It must exist.
        type: str
        required: true
      mac:
        description: MAC address; libvirt picks one when omitted.
        type: str
      model:
        description: NIC model.
        type: str
        choices: [virtio, e1000, e1000e, rtl8139]
        default: virtio
      target:
        description:
          - Name of the tap device on the host, 1-15 characters of C(A-Za-z0-9._-). libvirt picks one
            (C(vnetN)) when omitted; names starting with C(vnet), C(vif), C(macvtap) or C(macvlan) are refused
            (libvirt reserves them).
        type: str
      mtu:
        description: MTU of the guest's interface (C(<mtu size=.../>)); the network's when omitted.
        type: int
      filter:
        description:
          - Name of a libvirt nwfilter the interface references (C(<filterref/>)), for example the
            C(kf-port-<port id>) filter the M(kvmfleet.compute.port_firewall) module defines. None when omitted.
        type: str
  config_drive:
    description:
      - Seed disk of a new domain, read-only, in the format I(format).
      - C(nocloud) (label C(cidata)) holds C(meta-data) (C(instance-id), C(local-hostname), C(public-keys)),
        C(user-data) and, with I(network_data), C(network_data.json) and a cloud-init version 2 C(network-config).
      - C(config-drive) (label C(config-2)) holds C(openstack/latest/meta_data.json), C(network_data.json) and
        C(user_data) as Nova writes them; C(meta_data.json) always has C(uuid), C(hostname), C(name),
        C(public_keys) and C(keys).
    type: dict
    suboptions:
      hostname:
        description: Guest host name (C(local-hostname), C(hostname)); the domain name when omitted.
        type: str
      instance_id:
        description: Instance id (C(instance-id), C(uuid)); the domain UUID when omitted.
        type: str
      user_data:
        description: User data, for example a shell script or a cloud-config document.
        type: str
      format:
        description: Seed format.
        type: str
        choices: [nocloud, config-drive]
        default: nocloud
      public_keys:
        description:
          - SSH public keys by key name, each one OpenSSH public key line (C(ssh-ed25519 AAAA... comment)) without
            control characters; the guest lets them log in as root.
        type: dict
      network_data:
        description:
          - "Nova's C(network_data.json): C(links) (C(id), C(ethernet_mac_address), C(mtu)), C(networks) (C(type)
            C(ipv4) with C(ip_address), C(netmask) and C(routes), or C(ipv4_dhcp); C(link) names a link) and
            C(services) (C(type: dns), C(address)). Written as JSON."
        type: dict
      meta_data:
        description:
          - Further C(meta_data.json) keys of a C(config-drive) seed (for example C(name), C(availability_zone),
            C(project_id), C(launch_index), C(meta)); C(uuid), C(hostname), C(public_keys) and C(keys) are the
            module's.
        type: dict
  metadata:
    description:
      - kvmfleet metadata keys to set (for example C(project), C(flavor), C(server_group)). Values are stored
        as text. Keys not given are kept; C(uuid), C(name), C(image) and C(created_at) default from the domain.
      - The key C(disks) belongs to the module and is ignored here.
    type: dict
  serial_log:
    description: Log the serial console of a new domain to C(<instance dir>/console.log).
    type: bool
    default: true
  vnc:
    description: Give a new domain a VNC display listening on 127.0.0.1 only.
    type: bool
    default: true
  force_stop:
    description: Destroy the domain when a graceful shutdown does not finish within I(stop_timeout).
    type: bool
    default: true
  stop_timeout:
    description: Seconds to wait for a graceful shutdown.
    type: int
    default: 60
  wait:
    description: Wait for the domain to reach the requested state.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each state change other than a graceful shutdown.
    type: int
    default: 120
notes:
  - Live changes of vCPUs or memory are not made; they are applied to the persistent definition.
"""

EXAMPLES = r"""
- name: Run a small instance from the cached tiny image
  kvmfleet.compute.domain:
    name: web1
    state: running
    vcpus: 1
    memory_mb: 256
    virt_type: qemu
    root_disk:
      image: kvmfleet-tiny.qcow2
      size_gb: 1
    disks:
      - size_gb: 1
    nics:
      - network: default
    config_drive:
      hostname: web1
      user_data: |
        #!/bin/sh
        echo hello
    metadata:
      project: demo
      flavor: m1.tiny

- name: A guest with a config drive carrying an SSH key and a static address (Nova's network_data.json)
  kvmfleet.compute.domain:
    name: web2
    vcpus: 1
    memory_mb: 256
    root_disk:
      image: kvmfleet-tiny.qcow2
    nics:
      - network: default
        mac: "52:54:00:12:34:56"
    config_drive:
      format: config-drive
      public_keys:
        mykey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBw0cNnBR8ZcV0aSzCNkKp1H2b9mA1eK0aG6m8xgq5JR me@laptop"
      network_data:
        links:
          - {id: tap0, type: phy, ethernet_mac_address: "52:54:00:12:34:56", mtu: 1500}
        networks:
          - id: network0
            type: ipv4
            link: tap0
            ip_address: 192.168.122.50
            netmask: 255.255.255.0
            routes:
              - {network: 0.0.0.0, netmask: 0.0.0.0, gateway: 192.168.122.1}
        services:
          - {type: dns, address: 192.168.122.1}
      meta_data:
        availability_zone: nova

- name: Give it two vCPUs at its next boot
  kvmfleet.compute.domain:
    name: web1
    vcpus: 2
  register: result

- name: Stop it, forcing it off after 30 seconds
  kvmfleet.compute.domain:
    name: web1
    state: stopped
    stop_timeout: 30

- name: Remove it and the disks it was created with
  kvmfleet.compute.domain:
    name: web1
    state: absent
"""

RETURN = r"""
domain:
  description: The domain after the run (predicted in check mode); null when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: web1
    uuid:
      description: Domain UUID.
      type: str
      sample: 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
    state:
      description: Power state (running, paused, shutoff, suspended, ...).
      type: str
      sample: running
    vcpus:
      description: Virtual CPUs of the running configuration.
      type: int
      sample: 1
    memory_mb:
      description: Memory in MiB of the running configuration.
      type: int
      sample: 256
    virt_type:
      description: Domain type (kvm or qemu).
      type: str
      sample: qemu
    disks:
      description: Disks in attachment order.
      type: list
      elements: dict
      sample: [{"path": "/var/lib/libvirt/kvmfleet/instances/web1/disk", "target": "vda", "bus": "virtio",
                "format": "qcow2", "device": "disk", "readonly": false}]
    nics:
      description: Network interfaces.
      type: list
      elements: dict
      sample: [{"network": "default", "mac": "52:54:00:12:34:56", "model": "virtio"}]
    console_log:
      description: File receiving the serial console output, if any.
      type: str
      sample: /var/lib/libvirt/kvmfleet/instances/web1/console.log
    vnc_port:
      description: VNC port on 127.0.0.1 while the domain runs.
      type: int
      sample: 5900
    metadata:
      description: kvmfleet metadata; null for a domain without it.
      type: dict
      sample: {"uuid": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab", "name": "web1", "disks": []}
restart_required:
  description: Fields changed in the persistent definition that take effect at the next boot.
  returned: always
  type: list
  elements: str
  sample: [vcpus]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._domain import (
    ARGUMENT_SPEC,
    DomainManager,
    DomainParams,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import KvmfleetError, WaitTimeout
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = DomainManager(module, DomainParams(module.params))
        manager.run()
    except WaitTimeout as exc:
        module.fail_json(partial=exc.partial, **exc.to_result())
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
