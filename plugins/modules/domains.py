#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: domains
short_description: Desired state of several libvirt domains at once
version_added: 0.2.0
author:
- kvmfleet developers (@kvmfleet)
description:
- Brings every domain in I(domains) to its desired state as M(kvmfleet.compute.domain) does for one, the domains
  side by side in threads (at most I(parallel) at a time), in one module call.
- Each domain gets its own result in C(results), in the order given; a domain that fails is cleaned up as M(kvmfleet.compute.domain)
  cleans up (nothing half-made) and does not stop the others.
- The module fails when any domain failed; C(results) then says which ones and why.
- Used by the controller's build playbook so that a host starts all of a burst's guests at once, paying one module
  start-up per host instead of one per guest.
extends_documentation_fragment:
- kvmfleet.compute.attributes
- kvmfleet.compute.libvirt
- kvmfleet.compute.libvirt.PATHS
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  domains:
    description:
    - The domains, each described with the options of M(kvmfleet.compute.domain) (less I(uri), I(images_dir) and
      I(instances_dir), which are the module's).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
        - Name of the libvirt domain. 1-64 characters of C(A-Za-z0-9._-), not starting with C(-) or C(.).
        type: str
        required: true
      uuid:
        description:
        - UUID of the domain when it is created (an existing domain with another UUID is an error); also the key
          of its entry in I(user_data).
        - A random UUID is used when omitted.
        type: str
      state:
        description:
        - C(present) defines the domain; a new domain is left shut off, an existing one keeps its power state.
        - C(running) defines it if needed and runs it (starting, resuming or restoring a managed save).
        - C(stopped) shuts it down gracefully (ACPI) and waits up to I(stop_timeout) seconds, then destroys it if
          I(force_stop) is set. A managed save image is discarded.
        - C(paused) pauses the vCPUs (starting the domain paused if it is shut off).
        - C(suspended) saves the memory to a managed save image and stops the domain (libvirt managed save).
        - C(absent) destroys and undefines the domain and removes the disks this module created (recorded in the
          metadata), the original of each such disk kept beside it by an in-place resize (C(<disk>.resize-orig)),
          and the instance directory if it is then empty. Base images are never removed.
        type: str
        choices:
        - present
        - running
        - stopped
        - paused
        - suspended
        - absent
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
        - 'Default: the module''s I(virt_type).'
        type: str
        choices:
        - kvm
        - qemu
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
            choices:
            - qcow2
            - raw
            default: qcow2
          volume:
            description:
            - Boot from volume, as in M(kvmfleet.compute.domain) (an existing volume, never created nor deleted).
            type: path
          volume_format:
            description: Format of the volume.
            type: str
            choices:
            - qcow2
            - raw
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
            choices:
            - virtio
            - sata
            - scsi
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
            choices:
            - virtio
            - e1000
            - e1000e
            - rtl8139
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
        description:
        - S
        - e
        - c
        - o
        - n
        - d
        - s
        - ' '
        - t
        - o
        - ' '
        - w
        - a
        - i
        - t
        - ' '
        - f
        - o
        - r
        - ' '
        - e
        - a
        - c
        - h
        - ' '
        - s
        - t
        - a
        - t
        - e
        - ' '
        - c
        - h
        - a
        - n
        - g
        - e
        - ' '
        - o
        - t
        - h
        - e
        - r
        - ' '
        - t
        - h
        - a
        - n
        - ' '
        - a
        - ' '
        - g
        - r
        - a
        - c
        - e
        - f
        - u
        - l
        - ' '
        - s
        - h
        - u
        - t
        - d
        - o
        - w
        - n
        - .
        - 'Default: the module''s I(timeout).'
        type: int
  user_data:
    description:
    - 'User data for the seeds of new domains, by domain UUID: the I(config_drive.user_data) of each domain that
      has none of its own.'
    - Kept out of logs and results (no_log).
    type: dict
  virt_type:
    description:
    - 'Domain type of every domain that does not name its own: C(kvm) (hardware virtualisation) or C(qemu) (software
      emulation).'
    type: str
    choices:
    - kvm
    - qemu
    default: kvm
  timeout:
    description:
    - Seconds to wait for each state change of every domain that does not give its own (other than a graceful shutdown).
    type: int
    default: 120
  parallel:
    description:
    - How many domains are worked on at the same time (one libvirt connection each).
    type: int
    default: 10
seealso:
- module: kvmfleet.compute.domain
"""

EXAMPLES = r"""
- name: Start a host's new guests together
  kvmfleet.compute.domains:
    virt_type: qemu
    domains:
      - name: web1
        uuid: 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
        vcpus: 1
        memory_mb: 256
        root_disk: {image: tiny.qcow2}
        nics: [{network: default}]
        config_drive: {hostname: web1, instance_id: 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab}
      - name: web2
        vcpus: 1
        memory_mb: 256
        root_disk: {image: tiny.qcow2}
    user_data:
      6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab: "#cloud-config\n"
  register: started

- name: Remove them again
  kvmfleet.compute.domains:
    domains:
      - {name: web1, state: absent}
      - {name: web2, state: absent}
"""

RETURN = r"""
results:
  description: One result per domain, in the order of I(domains).
  returned: always
  type: list
  elements: dict
  contains:
    item:
      description: The domain's C(name) and C(uuid) as given (what a loop result's C(item) would say).
      type: dict
      sample: {"name": "web1", "uuid": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab"}
    changed:
      description: Whether this domain was changed.
      type: bool
    failed:
      description: Whether this domain failed (then C(msg) says why, and what it had made was removed).
      type: bool
    msg:
      description: Why the domain failed.
      type: str
      returned: when failed
    domain:
      description: The domain after the run, as M(kvmfleet.compute.domain) returns it; null when absent.
      type: dict
    restart_required:
      description: Fields that take effect at the domain's next boot.
      type: list
      elements: str
"""

import copy
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._domain import (
    ARGUMENT_SPEC,
    DomainManager,
    DomainParams,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import KvmfleetError, WaitTimeout
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR

HOST_WIDE = ("uri", "images_dir", "instances_dir")  # the module's own options, the same for every domain
DEFAULTED = ("virt_type", "timeout")                 # each domain's own, else the module's


def domain_spec():
    spec = copy.deepcopy(ARGUMENT_SPEC)
    for key in HOST_WIDE:
        del spec[key]
    for key in DEFAULTED:
        spec[key].pop("default", None)
    return spec


class _DomainModule:
    """What DomainManager uses of the module, for one domain of many: warnings are collected per domain."""

    def __init__(self, module):
        self._module = module
        self.check_mode = module.check_mode
        self.warnings = []

    def run_command(self, *args, **kwargs):
        return self._module.run_command(*args, **kwargs)

    def warn(self, warning):
        self.warnings.append(warning)


def _params(module, domain):
    params = dict(domain)
    for key in HOST_WIDE:
        params[key] = module.params[key]
    for key in DEFAULTED:
        if params.get(key) is None:
            params[key] = module.params[key]
    user_data = (module.params.get("user_data") or {}).get(params.get("uuid") or "")
    drive = params.get("config_drive")
    if user_data is not None and drive is not None and drive.get("user_data") is None:
        params["config_drive"] = dict(drive, user_data=user_data)
    return params


def run_one(module, domain):
    item = {"name": domain.get("name"), "uuid": domain.get("uuid")}
    proxy = _DomainModule(module)
    try:
        manager = DomainManager(proxy, DomainParams(_params(module, domain)))
        manager.run()
    except WaitTimeout as exc:
        return dict(exc.to_result(), item=item, failed=True, changed=True, partial=exc.partial,
                    warnings=proxy.warnings)
    except KvmfleetError as exc:
        return dict(exc.to_result(), item=item, failed=True, changed=False, warnings=proxy.warnings)
    except Exception as exc:  # noqa: BLE001 - one domain's unexpected error must not lose the others' results
        return {"item": item, "failed": True, "changed": False, "warnings": proxy.warnings,
                "msg": f"domain {item['name']}: unexpected error: {exc}"}
    result = dict(manager.results, item=item, failed=False)
    result.pop("diff", None)
    result["warnings"] = proxy.warnings
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "domains": {"type": "list", "elements": "dict", "required": True, "options": domain_spec()},
            "user_data": {"type": "dict", "no_log": True},
            "virt_type": {"type": "str", "default": "kvm", "choices": ["kvm", "qemu"]},
            "timeout": {"type": "int", "default": 120},
            "parallel": {"type": "int", "default": 10},
            "uri": ARGUMENT_SPEC["uri"],
            "images_dir": ARGUMENT_SPEC["images_dir"],
            "instances_dir": ARGUMENT_SPEC["instances_dir"],
        },
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    domains = module.params["domains"]
    names = [d["name"] for d in domains]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        module.fail_json(msg=f"domains named more than once: {', '.join(twice)}", results=[])
    if module.params["parallel"] < 1:
        module.fail_json(msg=f"parallel must be at least 1, got {module.params['parallel']}", results=[])
    with ThreadPoolExecutor(max_workers=min(module.params["parallel"], max(1, len(domains)))) as pool:
        results = list(pool.map(lambda domain: run_one(module, domain), domains))
    for result in results:
        for warning in result.pop("warnings", []):
            module.warn(warning)
    failed = [r for r in results if r["failed"]]
    changed = any(r.get("changed") for r in results)
    if failed:
        reasons = "; ".join(f"{r['item']['name']}: {r.get('msg', 'failed')}" for r in failed)
        module.fail_json(msg=f"{len(failed)} of {len(results)} domains failed: {reasons}", results=results,
                         changed=changed)
    module.exit_json(changed=changed, results=results)


if __name__ == "__main__":
    main()
