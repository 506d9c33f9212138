#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: network_info
short_description: List the libvirt networks of a host with the DHCP leases they handed out
version_added: 0.2.0
description:
  - Returns, in one call, the host's libvirt networks (bridge, forward mode, MTU, IP ranges) and, for
    each active one, the DHCP leases its dnsmasq handed out (C(virNetworkGetDHCPLeases)).
  - The kvmfleet controller maps each guest's MAC address to the IPv4 address it got from these leases
    and shows it as the server's fixed IP (the Network API's ports, the Compute API's addresses).
  - The same networks are part of M(kvmfleet.compute.host_facts); this module is the light call the
    controller makes to refresh leases a few seconds after a build and periodically.
  - Never changes anything on the host.
author:
  - kvmfleet developers (@kvmfleet)
extends_documentation_fragment:
  - kvmfleet.compute.attributes.INFO_MODULE
  - kvmfleet.compute.libvirt
options:
  names:
    description:
      - Only the networks with these names (a name the host does not have is left out).
      - All networks when empty.
    type: list
    elements: str
    default: []
notes:
  - A libvirt driver that cannot report leases (libvirt's test driver) gives empty
    RV(networks[].dhcp_leases) and says why in RV(networks[].dhcp_leases_error).
seealso:
  - module: kvmfleet.compute.host_facts
"""

EXAMPLES = r"""
- name: Read the leases of the default network
  kvmfleet.compute.network_info:
    names: [default]
  register: nets

- name: Show which address each guest got
  ansible.builtin.debug:
    msg: "{{ item.mac }} -> {{ item.ip_address }}"
  loop: "{{ nets.networks[0].dhcp_leases }}"
"""

RETURN = r"""
networks:
  description: The networks, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: default
    uuid:
      description: Network UUID.
      type: str
      sample: df529215-6dc1-4fda-abef-ffdb7061ad88
    active:
      description: Whether the network is running.
      type: bool
      sample: true
    persistent:
      description: Whether the network is defined (not transient).
      type: bool
      sample: true
    autostart:
      description: Whether libvirt starts the network at boot.
      type: bool
      sample: true
    bridge:
      description: The host bridge of the network.
      type: str
      sample: virbr0
    forward_mode:
      description: How traffic leaves the network (nat, route, bridge, open, ... or isolated).
      type: str
      sample: nat
    mtu:
      description: The network's MTU (1500 unless the XML sets one).
      type: int
      sample: 1500
    mac:
      description: The bridge's MAC address.
      type: str
      sample: "52:54:00:0c:24:ae"
    subnets:
      description: The IP ranges of the network, one per C(<ip>) element.
      type: list
      elements: dict
      contains:
        ip_version:
          description: 4 or 6.
          type: int
          sample: 4
        address:
          description: The host's address on the network (the guests' gateway).
          type: str
          sample: 192.168.122.1
        prefix:
          description: Prefix length.
          type: int
          sample: 24
        cidr:
          description: The subnet.
          type: str
          sample: 192.168.122.0/24
        dhcp_ranges:
          description: The ranges DHCP hands out.
          type: list
          elements: dict
          sample: [{start: 192.168.122.2, end: 192.168.122.254}]
    dhcp_leases:
      description: Current DHCP leases, sorted by MAC address (client ids are not returned).
      type: list
      elements: dict
      contains:
        mac:
          description: The guest NIC's MAC address, lower case.
          type: str
          sample: "52:54:00:6b:3c:58"
        ip_address:
          description: The leased address.
          type: str
          sample: 192.168.122.37
        prefix:
          description: Its prefix length.
          type: int
          sample: 24
        ip_version:
          description: 4 or 6.
          type: int
          sample: 4
        hostname:
          description: The host name the guest sent, or null (guest-supplied text).
          type: str
          sample: web1
        expires_at:
          description: When the lease expires, seconds since the epoch.
          type: int
          sample: 1764632000
    dhcp_leases_error:
      description: Why no leases could be read, or null.
      type: str
      sample: null
"""

from dataclasses import dataclass

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import DEFAULT_URI, close, connect
from ansible_collections.kvmfleet.compute.plugins.module_utils._network import build_networks, observe_networks
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_name


@dataclass
class NetworkInfoParameters:
    uri: str
    names: list

    @classmethod
    def from_module(cls, module):
        p = module.params
        return cls(uri=p["uri"], names=[validate_name(n, "network name") for n in p["names"] or []])


class NetworkInfoManager:
    """Reads the networks and their leases (read-only)."""

    def __init__(self, params):
        self.params = params

    def run(self):
        conn = connect(self.params.uri)
        try:
            observed = observe_networks(conn, self.params.names or None)
        finally:
            close(conn)
        return {"changed": False, "networks": build_networks(observed)}


def main():
    module = AnsibleModule(
        argument_spec={
            "uri": {"type": "str", "default": DEFAULT_URI},
            "names": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        manager = NetworkInfoManager(NetworkInfoParameters.from_module(module))
        module.exit_json(**manager.run())
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())


if __name__ == "__main__":
    main()
