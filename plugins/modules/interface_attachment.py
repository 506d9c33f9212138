#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: interface_attachment
short_description: Hot-plug a network interface into a libvirt domain, or unplug it
version_added: 0.3.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Attaches one interface, identified by its MAC address, on a libvirt network to a domain, like Nova's
    C(os-interface). A running domain gets it hot-plugged and in its persistent definition; a shut-off one in its
    definition only.
  - An attached interface whose I(filter) differs gets the new filter reference (live and persistent) in place.
    One on another network, or with another model, target or MTU, is an error (detach it first).
  - Detaching from a running domain waits until the guest has released the device (it is gone from the live
    definition), at most I(timeout) seconds.
extends_documentation_fragment:
  - kvmfleet.compute.attributes
  - kvmfleet.compute.libvirt
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  domain:
    description: Name of the domain.
    type: str
    required: true
  network:
    description: Name of the libvirt network. Required to attach.
    type: str
  mac:
    description: MAC address of the interface; identifies it.
    type: str
    required: true
  target:
    description:
      - Name of the tap device on the host (at most 15 characters; C(vnet), C(vif), C(macvtap), C(macvlan) prefixes
        are libvirt's and refused). libvirt picks one when omitted.
    type: str
  mtu:
    description: MTU of the guest's interface; the network bridge's when omitted.
    type: int
  filter:
    description: Name of the nwfilter the interface references (for example C(kf-port-<port id>)).
    type: str
  model:
    description: NIC model.
    type: str
    choices: [virtio, e1000, e1000e, rtl8139]
    default: virtio
  state:
    description: C(present) attaches, C(absent) detaches.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for a running guest to release a detached interface.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Plug a port into a running instance
  kvmfleet.compute.interface_attachment:
    domain: kvmfleet-6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
    network: kf-2a9c1f0e-5d3b-4c7a-8e6f-0123456789ab
    mac: "fa:16:3e:12:34:56"
    target: tap2b3c4d5e-6f
    filter: kf-port-2b3c4d5e-6f70-4a8e-9a7e-0123456789ab

- name: Unplug it
  kvmfleet.compute.interface_attachment:
    domain: kvmfleet-6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
    mac: "fa:16:3e:12:34:56"
    state: absent
"""

RETURN = r"""
interface:
  description: The interface after the run (predicted in check mode); null when it is not attached.
  returned: always
  type: dict
  contains:
    domain:
      description: Domain name.
      type: str
      sample: web1
    network:
      description: Libvirt network.
      type: str
      sample: kf-2a9c1f0e-5d3b-4c7a-8e6f-0123456789ab
    mac:
      description: MAC address.
      type: str
      sample: "fa:16:3e:12:34:56"
    model:
      description: NIC model.
      type: str
      sample: virtio
    target:
      description: Tap device name (the live one of a running domain), or null.
      type: str
      sample: tap2b3c4d5e-6f
    mtu:
      description: MTU given to the interface, or null.
      type: int
      sample: 1450
    filter:
      description: Referenced nwfilter, or null.
      type: str
      sample: kf-port-2b3c4d5e-6f70-4a8e-9a7e-0123456789ab
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    DomainNotFound,
    InvalidState,
    KvmfleetError,
    ValidationError,
    WaitTimeout,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._interface import (
    build_interface_xml,
    domain_interfaces,
    find_interface,
    interface_view,
    normalise_nic,
    with_filter,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    close,
    connect,
    libvirt_errors,
    lookup_domain,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_mac, validate_name
from ansible_collections.kvmfleet.compute.plugins.module_utils._volume import attachment_plan, poll

XML_INACTIVE = 2
AFFECT_LIVE = 1
AFFECT_CONFIG = 2
FLAG_NAMES = {AFFECT_LIVE: "live", AFFECT_CONFIG: "config"}


class InterfaceParams:
    """The module parameters, validated. Raises ValidationError."""

    uri: str
    domain: str
    nic: dict  # normalise_nic(): {network, mac, model, target, mtu, filter}
    state: str
    timeout: int

    def __init__(self, params):
        self.uri = params["uri"]
        self.domain = validate_name(params["domain"], "domain name")
        self.state = params["state"]
        mac = validate_mac(params["mac"], "mac")
        if self.state == "present":
            if not params.get("network"):
                raise ValidationError("network is required to attach an interface", what="network")
            self.nic = normalise_nic({k: params.get(k) for k in ("network", "mac", "model", "target", "mtu", "filter")},
                                     "the interface")
        else:
            self.nic = {"mac": mac}
        self.timeout = params["timeout"]
        if self.timeout < 1:
            raise ValidationError(f"timeout must be at least 1 second, got {self.timeout}", what="timeout")


def _interfaces(dom, flags):
    with libvirt_errors(f"read definition of domain {dom.name()}"):
        return domain_interfaces(dom.XMLDesc(flags))


class InterfaceManager:
    """Attaches or detaches one interface: one plan, applied only outside check mode."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.conn = None
        self.plan = []
        self.interface = None
        self.before = None
        self.after = None

    @property
    def results(self):
        return {"changed": bool(self.plan), "interface": self.interface,
                "diff": {"before": self.before, "after": self.after}}

    def run(self):
        self.conn = connect(self.p.uri)
        try:
            self._run()
        except WaitTimeout as exc:
            exc.partial = self.results
            raise
        finally:
            close(self.conn)

    def _run(self):
        mac = self.p.nic["mac"]
        dom = lookup_domain(self.conn, self.p.domain)
        if dom is None:
            if self.p.state == "present":
                raise DomainNotFound(f"domain {self.p.domain} does not exist", name=self.p.domain)
            return
        with libvirt_errors(f"read state of domain {self.p.domain}"):
            active = bool(dom.isActive())
        config = find_interface(_interfaces(dom, XML_INACTIVE), mac)
        live = find_interface(_interfaces(dom, 0), mac) if active else None
        # the definition names the network (the live XML of a bridge-mode network names the bridge instead) and
        # keeps only what was asked for; the live XML has the tap name libvirt picked
        current = dict(config or live) if (config or live) else None
        if current is not None and live is not None:
            current["target"] = live["target"]
        self.before = interface_view(current)
        attach, detach = attachment_plan(active, config, live)
        if self.p.state == "absent":
            if detach:
                self.plan.append(("detach", detach))
                if not self.module.check_mode:
                    self._detach(dom, config, live, detach)
            return
        want = self.p.nic
        update = 0
        if current is not None:
            self._check_same(current)
            for side, flag in ((live, AFFECT_LIVE), (config, AFFECT_CONFIG)):
                if side is not None and side["filter"] != want["filter"]:
                    update |= flag
        view = dict(interface_view(want), target=want["target"] or (current or {}).get("target"))
        self.after = view
        self.interface = dict(view, domain=self.p.domain)
        if attach:
            self.plan.append(("attach", attach))
        if update:
            self.plan.append(("update filter", update))
        if self.module.check_mode:
            return
        if attach:
            self._check_network()
            with libvirt_errors(f"attach interface {mac} to domain {self.p.domain} ({self._flags(attach)})"):
                dom.attachDeviceFlags(build_interface_xml(want), attach)
        for side, flag in ((live, AFFECT_LIVE), (config, AFFECT_CONFIG)):
            if update & flag:
                # the device as libvirt has it (its tap name included, which may not change), with the new filter
                with libvirt_errors(f"set filter of interface {mac} of domain {self.p.domain} ({self._flags(flag)})"):
                    dom.updateDeviceFlags(with_filter(side["element"], want["filter"]), flag)
        if active:
            live = find_interface(_interfaces(dom, 0), mac)
            if live is not None:
                self.interface["target"] = live["target"]

    def _check_network(self):
        with libvirt_errors(f"look up network {self.p.nic['network']} for domain {self.p.domain}"):
            active = self.conn.networkLookupByName(self.p.nic["network"]).isActive()
        if not active:
            raise InvalidState(f"network {self.p.nic['network']} is not active", network=self.p.nic["network"])

    def _check_same(self, current):
        want = self.p.nic
        for field in ("network", "model", "target", "mtu"):
            if want[field] is None or (field == "model" and current[field] is None):
                continue
            if current[field] != want[field]:
                raise InvalidState(f"interface {want['mac']} of domain {self.p.domain} has {field} {current[field]}, "
                                   f"not {want[field]}; detach it first to change that", field=field)

    @staticmethod
    def _flags(flags):
        return "+".join(name for bit, name in FLAG_NAMES.items() if flags & bit)

    def _detach(self, dom, config, live, flags):
        mac = self.p.nic["mac"]
        if flags & AFFECT_CONFIG:
            with libvirt_errors(f"detach interface {mac} from the definition of domain {self.p.domain}"):
                dom.detachDeviceFlags(config["element"], AFFECT_CONFIG)
        if not flags & AFFECT_LIVE:
            return
        with libvirt_errors(f"detach interface {mac} from running domain {self.p.domain}"):
            dom.detachDeviceFlags(live["element"], AFFECT_LIVE)

        def gone():
            with libvirt_errors(f"read domain {self.p.domain}"):
                if not dom.isActive():
                    return True
            return find_interface(_interfaces(dom, 0), mac) is None

        try:
            poll(gone, self.p.timeout, f"interface {mac} to leave domain {self.p.domain}")
        except WaitTimeout as exc:
            raise WaitTimeout(f"detach of interface {mac} from running domain {self.p.domain} did not complete within "
                              f"{self.p.timeout}s: the guest has not released the device (it needs PCI hot-unplug); "
                              "it is already out of the persistent definition", last_state="attached", mac=mac) from exc


ARGUMENT_SPEC = {
    "domain": {"type": "str", "required": True},
    "network": {"type": "str"},
    "mac": {"type": "str", "required": True},
    "target": {"type": "str"},
    "mtu": {"type": "int"},
    "filter": {"type": "str"},
    "model": {"type": "str", "default": "virtio", "choices": ["virtio", "e1000", "e1000e", "rtl8139"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "timeout": {"type": "int", "default": 30},
    "uri": {"type": "str", "default": "qemu:///system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "present", ("network",))])
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = InterfaceManager(module, InterfaceParams(module.params))
        manager.run()
    except WaitTimeout as exc:
        module.fail_json(partial=exc.partial, **exc.to_result())
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
