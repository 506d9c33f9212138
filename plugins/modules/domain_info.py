#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: domain_info
short_description: List and describe libvirt domains (kvmfleet instances)
version_added: 0.1.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Returns the domains of a host with their power state, vCPUs, memory, disks, NICs, console log,
    VNC port and kvmfleet metadata.
  - Only domains carrying kvmfleet metadata are returned unless I(all) is set.
  - Never changes anything.
extends_documentation_fragment:
  - kvmfleet.compute.attributes.INFO_MODULE
  - kvmfleet.compute.libvirt
options:
  name:
    description:
      - Only the domain with this name (an empty list when it does not exist).
    type: str
  all:
    description:
      - Also return domains without kvmfleet metadata.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: List the kvmfleet instances of a host
  kvmfleet.compute.domain_info:
  register: info

- name: Describe one domain, kvmfleet-managed or not
  kvmfleet.compute.domain_info:
    name: web1
    all: true
  register: web1
"""

RETURN = r"""
domains:
  description: The domains, sorted by name.
  returned: always
  type: list
  elements: dict
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
      sample: {"uuid": "6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab", "name": "web1", "project": "demo"}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._domain_xml import parse_domain_xml
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import DomainNotFound, KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    close,
    connect,
    domain_state,
    effective_xml,
    libvirt_errors,
    lookup_domain,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._plan import domain_view
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_name


class DomainInfoParams:
    """The module parameters, validated."""

    uri: str
    name: str | None
    all: bool

    def __init__(self, params):
        self.uri = params["uri"]
        self.name = validate_name(params["name"], "domain name") if params.get("name") is not None else None
        self.all = params["all"]


class DomainInfoManager:
    """Reads domains; never changes anything."""

    def __init__(self, params):
        self.p = params
        self.domains = []

    @property
    def results(self):
        return {"changed": False, "domains": self.domains}

    def run(self):
        conn = connect(self.p.uri)
        try:
            if self.p.name is not None:
                dom = lookup_domain(conn, self.p.name)
                candidates = [dom] if dom is not None else []
            else:
                with libvirt_errors("list domains"):
                    candidates = conn.listAllDomains(0)
            for dom in candidates:
                view = self._describe(dom)
                if view is not None and (self.p.all or view["metadata"] is not None):
                    self.domains.append(view)
        finally:
            close(conn)
        self.domains.sort(key=lambda d: d["name"])

    @staticmethod
    def _describe(dom):
        try:
            with libvirt_errors("describe domain"):
                state = domain_state(dom)
                return domain_view(parse_domain_xml(effective_xml(dom, state)), state)
        except DomainNotFound:
            return None  # undefined while we were listing


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str"},
            "all": {"type": "bool", "default": False},
            "uri": {"type": "str", "default": "qemu:///system"},
        },
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = DomainInfoManager(DomainInfoParams(module.params))
        manager.run()
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
