#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: port_firewall
short_description: Security groups of the ports on a KVM host, as libvirt nwfilters
version_added: 0.3.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Converges the host's port filters to I(ports), the complete list of filtered ports on this host. Each port
    gets one libvirt nwfilter C(kf-port-<id>) that its domain interface references (C(filter) of a nic of
    M(kvmfleet.compute.domain) or M(kvmfleet.compute.interface_attachment)). Redefining a filter updates running
    guests at once, without restarting them.
  - Neutron's semantics. Stateful; everything not allowed by a rule is dropped in both directions; replies to
    allowed connections (established, related) pass. Anti-spoofing, the guest may only send from the port's MAC
    and fixed IPs (ARP likewise); DHCP client traffic and ICMPv6 neighbour discovery are allowed.
    I(port_security=false) accepts everything.
  - A C(kf-port-*) filter of a port not listed is removed once no interface references it (a warning says which
    are kept).
  - Why nwfilter. It is libvirt's own mechanism. It follows a guest's tap device across restarts and migrations,
    and it updates in place. It needs C(ebtables) and C(iptables) on the host and bridged traffic passed to
    iptables (C(net.bridge.bridge-nf-call-iptables=1), which M(kvmfleet.compute.network) sets). Its stateful
    rules use the IP layer's conntrack, so a kernel without C(NF_CONNTRACK_BRIDGE) is fine. Protocols are those
    nwfilter can match, tcp, udp, icmp, sctp, udplite, esp, ah, igmp and icmpv6 (or their numbers), or any.
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
  ports:
    description:
      - Every filtered port on this host. With I(state=absent), the ports whose filters to remove.
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Port id (the filter is C(kf-port-<id>)).
        type: str
        required: true
      mac:
        description: The port's MAC address.
        type: str
        required: true
      ips:
        description: The port's fixed IP addresses.
        type: list
        elements: str
        default: []
      port_security:
        description: false accepts everything (no anti-spoofing, no security groups).
        type: bool
        default: true
      rules:
        description: The rules of all the port's security groups.
        type: list
        elements: dict
        default: []
        suboptions:
          direction:
            description: C(ingress) is traffic to the guest.
            type: str
            required: true
            choices: [ingress, egress]
          ethertype:
            description: IP version.
            type: str
            choices: [IPv4, IPv6]
            default: IPv4
          protocol:
            description: A protocol name or number; null is any.
            type: raw
          port_range_min:
            description: First destination port (tcp, udp, sctp); the ICMP type for icmp.
            type: int
          port_range_max:
            description: Last destination port; the ICMP code for icmp.
            type: int
          remote_ip_prefix:
            description: CIDR of the remote end (the source of ingress, the destination of egress); null is any.
            type: str
          remote_ips:
            description:
              - The addresses of a remote security group's members, expanded by the controller. An empty list
                matches nothing; null does not restrict the remote end.
            type: list
            elements: str
  state:
    description: C(present) converges the host's filters to I(ports); C(absent) removes the filters of I(ports).
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The ports of this host and their security groups
  kvmfleet.compute.port_firewall:
    ports:
      - id: 6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
        mac: "fa:16:3e:12:34:56"
        ips: [10.0.0.5]
        rules:
          - {direction: egress, ethertype: IPv4}
          - {direction: ingress, ethertype: IPv4, protocol: tcp, port_range_min: 22, port_range_max: 22,
             remote_ip_prefix: 0.0.0.0/0}
          - {direction: ingress, ethertype: IPv4, remote_ips: [10.0.0.6]}
"""

RETURN = r"""
ports:
  description: Ids of the ports whose filters exist after the run (predicted in check mode).
  returned: always
  type: list
  elements: str
  sample: [6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab]
changes:
  description: Per filter, the normalised rules added and removed.
  returned: always
  type: dict
  sample: {"kf-port-6f1c7a4e": {"added": ["+0200 in accept tcp(dstportend=22,dstportstart=22,state=NEW)"],
           "removed": []}}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import InvalidState, KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._firewall import (
    FILTER_PREFIX,
    build_filter_element,
    build_filter_xml,
    filter_rules,
    port_spec,
    rule_changes,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._interface import domain_interfaces
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    close,
    connect,
    libvirt_errors,
)

XML_INACTIVE = 2


class FirewallParams:
    """The module parameters, validated. Raises ValidationError."""

    uri: str
    ports: list
    state: str

    def __init__(self, params):
        self.uri = params["uri"]
        self.state = params["state"]
        self.ports = [port_spec(p) for p in params["ports"] or []]
        ids = [p["id"] for p in self.ports]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        if dups:
            raise InvalidState(f"ports lists {', '.join(dups)} more than once", ports=dups)


class FirewallManager:
    """Converges the host's kf-port-* nwfilters: one plan, applied only outside check mode."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.conn = None
        self.plan = []
        self.changes = {}
        self.kept = []
        self.before = {}
        self.after = {}

    @property
    def results(self):
        return {"changed": bool(self.plan), "ports": sorted(self.kept), "changes": self.changes,
                "diff": {"before": {"filters": self.before}, "after": {"filters": self.after}}}

    def run(self):
        self.conn = connect(self.p.uri)
        try:
            self._run()
        finally:
            close(self.conn)

    def _filters(self):
        """{name: (filter, rules)} of the host's kf-port-* filters."""
        with libvirt_errors("list network filters"):
            filters = self.conn.listAllNWFilters(0)
        out = {}
        for nwf in filters:
            with libvirt_errors("read network filter"):
                name = nwf.name()
                if name.startswith(FILTER_PREFIX):
                    out[name] = (nwf, filter_rules(nwf.XMLDesc(0)))
        return out

    def _referenced(self):
        """{filter name: [domain names]} of the filters domain interfaces reference (live or defined)."""
        refs = {}
        with libvirt_errors("list domains"):
            doms = self.conn.listAllDomains(0)
        for dom in doms:
            with libvirt_errors(f"read domain {dom.name()}"):
                xmls = [dom.XMLDesc(XML_INACTIVE)] + ([dom.XMLDesc(0)] if dom.isActive() else [])
            for xml in xmls:
                for iface in domain_interfaces(xml):
                    if iface["filter"]:
                        refs.setdefault(iface["filter"], set()).add(dom.name())
        return {k: sorted(v) for k, v in refs.items()}

    def _run(self):
        have = self._filters()
        self.before = {name: rules for name, (_f, rules) in sorted(have.items())}
        wanted = {} if self.p.state == "absent" else {p["filter"]: p for p in self.p.ports}
        drop = set(have) - set(wanted)
        if self.p.state == "absent":
            drop &= {p["filter"] for p in self.p.ports}
        refs = self._referenced() if drop else {}
        self.after = {name: rules for name, rules in self.before.items() if name not in drop}
        defines = []
        for name, port in sorted(wanted.items()):
            rules = filter_rules(build_filter_element(port))
            self.after[name] = rules
            current = have.get(name)
            if current is None or current[1] != rules:
                defines.append((port, current[0] if current else None))
                self.changes[name] = rule_changes(current[1] if current else [], rules)
                self.plan.append(("define", name))
        removes = []
        for name in sorted(drop):
            users = refs.get(name)
            if users:
                if self.p.state == "absent":
                    raise InvalidState(f"filter {name} is referenced by an interface of domain {', '.join(users)}; "
                                       "detach it first", domains=users)
                self.module.warn(f"filter {name} is kept: an interface of domain {', '.join(users)} references it")
                self.after[name] = self.before[name]
                continue
            removes.append(have[name][0])
            self.changes[name] = rule_changes(self.before[name], [])
            self.plan.append(("undefine", name))
        self.kept = [name[len(FILTER_PREFIX):] for name in self.after]
        self.after = dict(sorted(self.after.items()))
        if self.module.check_mode:
            return
        for port, current in defines:
            with libvirt_errors(f"define network filter {port['filter']}"):
                uuid = current.UUIDString() if current is not None else None  # a redefinition keeps its uuid
                self.conn.nwfilterDefineXML(build_filter_xml(port, uuid))
        for nwf in removes:
            with libvirt_errors(f"remove network filter {nwf.name()}"):
                nwf.undefine()


RULE_OPTIONS = {
    "direction": {"type": "str", "required": True, "choices": ["ingress", "egress"]},
    "ethertype": {"type": "str", "default": "IPv4", "choices": ["IPv4", "IPv6"]},
    "protocol": {"type": "raw"},
    "port_range_min": {"type": "int"},
    "port_range_max": {"type": "int"},
    "remote_ip_prefix": {"type": "str"},
    "remote_ips": {"type": "list", "elements": "str"},
}

ARGUMENT_SPEC = {
    "ports": {"type": "list", "elements": "dict", "default": [], "options": {
        "id": {"type": "str", "required": True},
        "mac": {"type": "str", "required": True},
        "ips": {"type": "list", "elements": "str", "default": []},
        "port_security": {"type": "bool", "default": True},
        "rules": {"type": "list", "elements": "dict", "default": [], "options": RULE_OPTIONS}}},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "uri": {"type": "str", "default": "qemu:///system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = FirewallManager(module, FirewallParams(module.params))
        manager.run()
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
