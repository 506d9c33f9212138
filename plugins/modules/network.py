#!/usr/bin/python
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: network
short_description: Desired state of one tenant or provider network on a KVM host
version_added: 0.3.0
author:
  - kvmfleet developers (@kvmfleet)
description:
  - Makes one network exist on a host, like the Neutron agent of a node would, without an agent. The kernel side is
    made with iproute2 (C(ip), C(bridge)), its state read back as iproute2 JSON.
  - C(vxlan) makes a Linux bridge I(bridge) and a VXLAN device I(vxlan_device) (VNI I(segmentation_id), source
    address I(local_ip), port I(vxlan_port), no learning) on it, and converges unicast head-end replication to
    exactly I(remote_ips) (one all-zeros FDB entry per remote host).
  - C(vlan) makes the bridge and the VLAN sub-interface C(<physical_interface>.<segmentation_id>) on it.
  - C(flat) uses I(physical_interface) as it is when it is a bridge; otherwise it makes I(bridge) and puts the
    interface on it (do not use an interface that carries the host's own address).
  - Then a persistent, autostarted libvirt network (forward mode C(bridge)) puts guests on that bridge, so the
    network survives a libvirtd restart (the kernel devices stay where they are).
  - Sets C(net.bridge.bridge-nf-call-iptables), C(-ip6tables) and C(-arptables) to 1 in the host's network
    namespace (nwfilter, used by M(kvmfleet.compute.port_firewall), needs them) and writes them to I(sysctl_file).
  - What the module made is recorded in C(<state_dir>/<name>.json) (mode 0600); C(state=absent) removes exactly
    that, never a bridge or interface that existed before, and is refused while a domain has an interface on the
    network.
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
  name:
    description:
      - Name of the libvirt network (the controller uses C(kf-<network uuid>)). 1-64 characters of
        C(A-Za-z0-9._-), not starting with C(-) or C(.).
    type: str
    required: true
  bridge:
    description:
      - Name of the Linux bridge, at most 15 characters of C(A-Za-z0-9._-) (for example C(kfbr1001)).
      - Required, except for C(flat) onto an existing bridge (that bridge is used).
    type: str
  type:
    description: How the network reaches other hosts.
    type: str
    choices: [vxlan, flat, vlan]
    default: vxlan
  segmentation_id:
    description:
      - The VNI (1-16777215) of a C(vxlan) network, the VLAN id (1-4094) of a C(vlan) one. Not used by C(flat).
    type: int
  vxlan_device:
    description: Name of the VXLAN device (at most 15 characters), C(kfvx<segmentation_id>) when omitted.
    type: str
  local_ip:
    description: This host's tunnel address (C(vxlan)); the underlay device is the one that has it.
    type: str
  remote_ips:
    description:
      - Tunnel addresses of the other hosts on the network (C(vxlan)). Converged exactly; I(local_ip) is ignored
        if listed.
    type: list
    elements: str
    default: []
  vxlan_port:
    description: UDP port of the VXLAN.
    type: int
    default: 4789
  physical_interface:
    description:
      - C(flat) an existing bridge or interface; C(vlan) the interface the sub-interface is made on.
    type: str
  mtu:
    description:
      - MTU of the bridge, its uplink device and the libvirt network. When omitted, for C(vxlan) the underlay
        device's MTU minus 50, otherwise I(physical_interface)'s MTU.
    type: int
  state:
    description: C(present) makes the network, C(absent) removes what this module made of it.
    type: str
    choices: [present, absent]
    default: present
  state_dir:
    description: Directory of the records of what this module made (private to the host).
    type: path
    default: /var/lib/libvirt/kvmfleet/networks
  sysctl_file:
    description:
      - File under C(/etc/sysctl.d) the bridge netfilter settings are persisted in; empty to not persist them
        (the lab, whose hosts share the machine's C(/etc)).
    type: str
    default: /etc/sysctl.d/90-kvmfleet-bridge.conf
notes:
  - Needs C(iproute2) on the host.
"""

EXAMPLES = r"""
- name: A tenant network over VXLAN between three hosts
  kvmfleet.compute.network:
    name: kf-6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
    bridge: kfbr1001
    type: vxlan
    segmentation_id: 1001
    vxlan_device: kfvx1001
    local_ip: 10.0.0.11
    remote_ips: [10.0.0.12, 10.0.0.13]

- name: A provider network on VLAN 100 of eth1
  kvmfleet.compute.network:
    name: provider-100
    bridge: kfbr-p100
    type: vlan
    segmentation_id: 100
    physical_interface: eth1

- name: Remove it from this host
  kvmfleet.compute.network:
    name: provider-100
    state: absent
"""

RETURN = r"""
network:
  description: The network after the run (predicted in check mode); null when it is absent.
  returned: always
  type: dict
  contains:
    name:
      description: Libvirt network name.
      type: str
      sample: kf-6f1c7a4e-0b5f-4a8e-9a7e-0123456789ab
    bridge:
      description: The bridge guests are on.
      type: str
      sample: kfbr1001
    mtu:
      description: MTU of the network.
      type: int
      sample: 1450
    type:
      description: vxlan, flat or vlan.
      type: str
      sample: vxlan
    segmentation_id:
      description: VNI or VLAN id, null for flat.
      type: int
      sample: 1001
    remote_ips:
      description: Head-end replication destinations (vxlan).
      type: list
      elements: str
      sample: [10.0.0.12]
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import InvalidState, KvmfleetError
from ansible_collections.kvmfleet.compute.plugins.module_utils._interface import domain_interfaces
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    close,
    connect,
    libvirt_errors,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._network import (
    BRIDGE_SYSCTLS,
    build_network_xml,
    device_view,
    fdb_remotes,
    kernel_plan,
    network_spec,
    parse_links,
    parse_network,
    predicted_devices,
    removal_steps,
    wanted_mtu,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_abs_path

ERR_NO_NETWORK = 43
NETWORK_XML_INACTIVE = 1
XML_INACTIVE = 2
SYSCTL_DIR = "/proc/sys/net/bridge"


class NetworkParams:
    """The module parameters, validated. Raises ValidationError."""

    uri: str
    spec: dict
    state_dir: str
    sysctl_file: str | None

    def __init__(self, params):
        self.uri = params["uri"]
        self.spec = network_spec(params)
        self.state_dir = validate_abs_path(params["state_dir"], "state_dir")
        self.sysctl_file = validate_abs_path(params["sysctl_file"], "sysctl_file") if params["sysctl_file"] else None


class NetworkManager:
    """Brings one network to the desired state on this host: one plan, applied only outside check mode."""

    def __init__(self, module, params):
        self.module = module
        self.p = params
        self.s = params.spec
        self.conn = None
        self.plan = []
        self.network = None
        self.before = None
        self.after = None
        self.record_file = os.path.join(params.state_dir, self.s["name"] + ".json")

    @property
    def results(self):
        return {"changed": bool(self.plan), "network": self.network,
                "diff": {"before": self.before, "after": self.after}}

    def run(self):
        self.conn = connect(self.p.uri)
        try:
            self._run()
        finally:
            close(self.conn)

    # -- observing ------------------------------------------------------------------------------------------

    def _cmd(self, argv, doing):
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise KvmfleetError(f"{doing}: {' '.join(argv)} failed (rc={rc}): {(err or out or '').strip()}",
                                rc=rc, stderr=err, cmd=argv)
        return out

    def _json(self, argv, doing):
        out = self._cmd(argv, doing)
        try:
            return json.loads(out or "[]")
        except ValueError as exc:
            raise KvmfleetError(f"{doing}: {' '.join(argv)} did not print JSON (iproute2 too old?)") from exc

    def _record(self):
        try:
            with open(self.record_file) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise KvmfleetError(f"read {self.record_file}: {exc}") from exc

    def _write_record(self, record):
        os.makedirs(self.p.state_dir, mode=0o700, exist_ok=True)
        tmp = self.record_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, sort_keys=True)
        os.replace(tmp, self.record_file)

    def _libvirt_network(self):
        try:
            with libvirt_errors(f"look up network {self.s['name']}"):
                net = self.conn.networkLookupByName(self.s["name"])
        except KvmfleetError as exc:
            if exc.details.get("libvirt_error_code") == ERR_NO_NETWORK:
                return None, None
            raise
        with libvirt_errors(f"read network {self.s['name']}"):
            persistent = bool(net.isPersistent())
            info = parse_network(net.XMLDesc(NETWORK_XML_INACTIVE if persistent else 0))
            info.update(active=bool(net.isActive()), persistent=persistent,
                        autostart=bool(net.autostart()) if persistent else False)
        return net, info

    @staticmethod
    def _net_view(info):
        if info is None:
            return None
        return {k: info[k] for k in ("bridge", "forward_mode", "active", "persistent", "autostart")}

    def _sysctls(self):
        """{name: value or None} of the bridge netfilter settings in this network namespace."""
        values = {}
        for name in BRIDGE_SYSCTLS:
            try:
                with open(os.path.join(SYSCTL_DIR, name)) as f:
                    values[name] = f.read().strip()
            except OSError:
                values[name] = None
        return values

    def _users(self, bridge):
        """Names of the domains with an interface on this network (or its bridge), live or in their definition."""
        users = set()
        with libvirt_errors("list domains"):
            doms = self.conn.listAllDomains(0)
        for dom in doms:
            with libvirt_errors(f"read domain {dom.name()}"):
                xmls = [dom.XMLDesc(XML_INACTIVE)] + ([dom.XMLDesc(0)] if dom.isActive() else [])
            for xml in xmls:
                for iface in domain_interfaces(xml):
                    if (iface["type"] == "network" and iface["network"] == self.s["name"]) or \
                            (bridge and iface["bridge"] == bridge):
                        users.add(dom.name())
        return sorted(users)

    # -- planning and applying ------------------------------------------------------------------------------

    def _run(self):
        links = parse_links(self._json(["ip", "-j", "-d", "link", "show"], "read network devices"))
        record = self._record()
        net, info = self._libvirt_network()
        vx = self.s["vxlan_device"]
        remotes = []
        if vx and vx in links and links[vx]["kind"] == "vxlan":
            remotes = fdb_remotes(self._json(["bridge", "-j", "fdb", "show", "dev", vx], f"read FDB of {vx}"))
        names = [n for n in (self.s["bridge"], vx, (record or {}).get("bridge"),
                             ((record or {}).get("made") or {}).get("device")) if n]
        if self.s["type"] == "vlan":
            names.append(f"{self.s['physical_interface']}.{self.s['segmentation_id']}")
        names = sorted(set(names))
        bridge_now = links.get(info["bridge"]) if info else None
        self.before = {"devices": device_view(links, names), "mtu": bridge_now["mtu"] if bridge_now else None,
                       "remote_ips": remotes, "libvirt_network": self._net_view(info)}
        if self.s["state"] == "absent":
            self._absent(links, record, net, info)
        else:
            self._present(links, remotes, record, net, info)

    def _present(self, links, remotes, record, net, info):
        addrs = self._json(["ip", "-j", "addr", "show"], "read addresses") if self.s["type"] == "vxlan" else []
        mtu = wanted_mtu(self.s, links, addrs)
        steps, made, bridge = kernel_plan(self.s, links, remotes, record, mtu)
        want_net = {"bridge": bridge, "forward_mode": "bridge", "active": True, "persistent": True, "autostart": True}
        net_steps = []
        if info is None:
            net_steps = ["define", "autostart", "start"]
            made["network"] = True
        else:
            if (info["bridge"], info["forward_mode"]) != (bridge, "bridge") or not info["persistent"]:
                if not (record or {}).get("made", {}).get("network"):
                    raise InvalidState(f"libvirt network {self.s['name']} exists (bridge {info['bridge']}, forward "
                                       f"{info['forward_mode']}) and was not made by this module")
                net_steps.append("redefine")
                if info["active"]:
                    net_steps.append("restart")
            if not info["autostart"]:
                net_steps.append("autostart")
            if not info["active"]:
                net_steps.append("start")
        sysctls = self._sysctls()
        sysctl_steps = [name for name, value in sysctls.items() if value != "1"]
        persist = self._sysctl_file_differs()
        new_record = {"name": self.s["name"], "type": self.s["type"], "bridge": bridge, "made": made}
        self.plan = [s["why"] for s in steps] + [f"{s} libvirt network" for s in net_steps] + \
            [f"set net.bridge.{n} = 1" for n in sysctl_steps] + (["persist sysctls"] if persist else [])
        if record != new_record and (steps or net_steps):
            self.plan.append("record what was made")
        self.after = {"devices": dict(self.before["devices"], **predicted_devices(self.s, mtu, bridge)), "mtu": mtu,
                      "remote_ips": list(self.s["remote_ips"]), "libvirt_network": want_net}
        self.network = {"name": self.s["name"], "bridge": bridge, "mtu": mtu, "type": self.s["type"],
                        "segmentation_id": self.s["segmentation_id"], "remote_ips": list(self.s["remote_ips"])}
        if self.module.check_mode or not self.plan:
            return
        if record != new_record:
            self._write_record(new_record)  # before making anything: absent can always undo it
        if sysctl_steps:
            self._set_sysctls(sysctls)
        if persist:
            self._persist_sysctls()
        for step in steps:
            self._cmd(step["argv"], step["why"])
        if net_steps:
            self._apply_libvirt(net, info, net_steps, bridge)

    def _apply_libvirt(self, net, info, net_steps, bridge):
        name = self.s["name"]
        for step in net_steps:
            with libvirt_errors(f"{step} libvirt network {name}"):
                if step in ("define", "redefine"):
                    uuid = None
                    if net is not None:
                        uuid = net.UUIDString()  # a redefinition keeps its uuid, or libvirt refuses it
                    net = self.conn.networkDefineXML(build_network_xml(name, bridge, uuid))
                elif step == "restart":
                    users = self._users(info["bridge"])
                    if users:
                        self.module.warn(f"network {name} is redefined; guests of domain {', '.join(users)} keep "
                                         "the old settings until the network is restarted")
                        continue
                    net.destroy()
                    net.create()
                elif step == "autostart":
                    net.setAutostart(1)
                elif step == "start" and not net.isActive():
                    net.create()

    def _absent(self, links, record, net, info):
        self.after = {"devices": {}, "mtu": None, "remote_ips": [], "libvirt_network": None}
        if record is None:
            if info is not None or self.s["bridge"] in links:
                self.module.warn(f"no record of what this module made of network {self.s['name']} in "
                                 f"{self.record_file}; nothing removed")
            self.after = self.before
            return
        kept = {n: v for n, v in self.before["devices"].items()
                if n not in (record["bridge"] if record["made"].get("bridge") else None, record["made"].get("device"))}
        self.after["devices"] = kept
        if not record["made"].get("network"):
            self.after["libvirt_network"] = self.before["libvirt_network"]
        users = self._users(record.get("bridge"))
        if users:
            raise InvalidState(f"network {self.s['name']} is in use by domain {', '.join(users)}; detach their "
                               "interfaces first", domains=users)
        steps = removal_steps(record, links)
        drop_net = info is not None and record["made"].get("network")
        self.plan = (["undefine libvirt network"] if drop_net else []) + [s["why"] for s in steps] + \
            ["remove the record"]
        if self.module.check_mode:
            return
        if drop_net:
            with libvirt_errors(f"remove libvirt network {self.s['name']}"):
                if net.isActive():
                    net.destroy()
                if net.isPersistent():
                    net.undefine()
        for step in steps:
            self._cmd(step["argv"], step["why"])
        os.remove(self.record_file)

    # -- sysctls --------------------------------------------------------------------------------------------

    def _set_sysctls(self, values):
        if any(v is None for v in values.values()):
            self._cmd(["modprobe", "br_netfilter"], "load br_netfilter (bridge netfilter settings are missing)")
        for name, value in values.items():
            if value != "1":
                with open(os.path.join(SYSCTL_DIR, name), "w") as f:
                    f.write("1\n")

    def _sysctl_text(self):
        return "# kvmfleet.compute.network: nwfilter needs bridged traffic to pass iptables\n" + \
            "".join(f"net.bridge.{name} = 1\n" for name in BRIDGE_SYSCTLS)

    def _sysctl_file_differs(self):
        if not self.p.sysctl_file:
            return False
        try:
            with open(self.p.sysctl_file) as f:
                return f.read() != self._sysctl_text()
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise KvmfleetError(f"read {self.p.sysctl_file}: {exc}") from exc

    def _persist_sysctls(self):
        os.makedirs(os.path.dirname(self.p.sysctl_file), exist_ok=True)
        with open(self.p.sysctl_file, "w") as f:
            f.write(self._sysctl_text())


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "bridge": {"type": "str"},
    "type": {"type": "str", "default": "vxlan", "choices": ["vxlan", "flat", "vlan"]},
    "segmentation_id": {"type": "int"},
    "vxlan_device": {"type": "str"},
    "local_ip": {"type": "str"},
    "remote_ips": {"type": "list", "elements": "str", "default": []},
    "vxlan_port": {"type": "int", "default": 4789},
    "physical_interface": {"type": "str"},
    "mtu": {"type": "int"},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "state_dir": {"type": "path", "default": "/var/lib/libvirt/kvmfleet/networks"},
    "sysctl_file": {"type": "str", "default": "/etc/sysctl.d/90-kvmfleet-bridge.conf"},
    "uri": {"type": "str", "default": "qemu:///system"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"), exception=str(LIBVIRT_IMPORT_ERROR))
    try:
        manager = NetworkManager(module, NetworkParams(module.params))
        manager.run()
    except KvmfleetError as exc:
        module.fail_json(**exc.to_result())
    module.exit_json(**manager.results)


if __name__ == "__main__":
    main()
