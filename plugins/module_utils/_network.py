# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt networks of a host and the DHCP leases their dnsmasq handed out.

``observe_networks(conn)`` reads, read-only, every network (or the named ones): its XML, whether it is
active, persistent and autostarted, and ``virNetworkGetDHCPLeases``. ``build_networks`` turns those raw
observations into the ``networks`` facts without touching the host, so the assembly is tested from data
files. The controller maps a guest's MAC to the IPv4 address it got from these leases.

The network module's pure half lives here too: the validated spec, iproute2 JSON parsed, the commands that make
(or remove) a network's bridge, VXLAN or VLAN device and FDB entries, and the libvirt network XML.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import (
    InvalidState,
    KvmfleetError,
    ValidationError,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._interface import (
    IFNAME_MAX_LEN,
    validate_ifname,
    validate_mtu,
)
from ansible_collections.kvmfleet.compute.plugins.module_utils._libvirt import ERR_NO_SUPPORT, libvirt_errors
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_name

IP_TYPES = {0: 4, 1: 6}  # virIPAddrType: VIR_IP_ADDR_TYPE_IPV4, VIR_IP_ADDR_TYPE_IPV6
DEFAULT_MTU = 1500


def _prefix(ip_el, family):
    prefix = ip_el.get("prefix")
    if prefix and prefix.isdigit():
        return int(prefix)
    netmask = ip_el.get("netmask")
    if netmask and family == 4:
        return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
    return 24 if family == 4 else 64


def parse_network(xml):
    """Name, uuid, bridge, forward mode, MTU and the IP ranges of a network's XML."""
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    forward = root.find("forward")
    mtu = root.find("mtu")
    mac = root.find("mac")
    subnets = []
    for ip_el in root.findall("ip"):
        address = ip_el.get("address")
        if not address:
            continue
        family = 6 if (ip_el.get("family") == "ipv6" or ":" in address) else 4
        prefix = _prefix(ip_el, family)
        try:
            cidr = str(ipaddress.ip_interface(f"{address}/{prefix}").network)
        except ValueError:
            continue
        ranges = [{"start": r.get("start"), "end": r.get("end")}
                  for r in ip_el.findall("./dhcp/range") if r.get("start") and r.get("end")]
        subnets.append({"ip_version": family, "address": address, "prefix": prefix, "cidr": cidr,
                        "dhcp_ranges": ranges})
    return {
        "name": root.findtext("name"),
        "uuid": root.findtext("uuid"),
        "bridge": bridge.get("name") if bridge is not None else None,
        "forward_mode": (forward.get("mode") or "nat") if forward is not None else "isolated",
        "mtu": int(mtu.get("size")) if mtu is not None and (mtu.get("size") or "").isdigit() else DEFAULT_MTU,
        "mac": mac.get("address").lower() if mac is not None and mac.get("address") else None,
        "subnets": subnets,
    }


def normalise_leases(leases):
    """virNetworkGetDHCPLeases entries -> [{mac, ip_address, prefix, ip_version, hostname, expires_at}],
    sorted by MAC then address (the client id and IAID are left out: the controller does not need them)."""
    out = []
    for lease in leases or []:
        mac = (lease.get("mac") or "").lower()
        ip = lease.get("ipaddr")
        if not mac or not ip:
            continue
        out.append({
            "mac": mac,
            "ip_address": ip,
            "prefix": lease.get("prefix"),
            "ip_version": IP_TYPES.get(lease.get("type"), 6 if ":" in ip else 4),
            "hostname": lease.get("hostname") or None,
            "expires_at": int(lease.get("expirytime") or 0),
        })
    out.sort(key=lambda item: (item["mac"], item["ip_version"], item["ip_address"]))
    return out


def build_networks(observations):
    """The ``networks`` facts, sorted by name, from [{xml, active, persistent, autostart, leases,
    leases_error}]."""
    networks = []
    for obs in observations:
        net = parse_network(obs["xml"])
        net.update({
            "active": bool(obs.get("active")),
            "persistent": bool(obs.get("persistent")),
            "autostart": bool(obs.get("autostart")),
            "dhcp_leases": normalise_leases(obs.get("leases")),
            "dhcp_leases_error": obs.get("leases_error"),
        })
        networks.append(net)
    networks.sort(key=lambda n: n["name"] or "")
    return networks


def _leases(net):
    """(leases, error): a driver without lease support (libvirt's test driver) gives no leases, not a failure."""
    if not net.isActive():
        return [], None
    try:
        with libvirt_errors(f"read DHCP leases of network {net.name()}"):
            return net.DHCPLeases(), None
    except KvmfleetError as exc:
        if exc.details.get("libvirt_error_code") == ERR_NO_SUPPORT:
            return [], "not supported by this libvirt driver"
        raise


def observe_networks(conn, names=None):
    """Raw observations of the host's networks (all, or those in ``names``; missing names are skipped)."""
    with libvirt_errors("list networks"):
        nets = conn.listAllNetworks(0)
    wanted = set(names) if names else None
    observed = []
    for net in nets:
        with libvirt_errors("read network"):
            name = net.name()
        if wanted is not None and name not in wanted:
            continue
        with libvirt_errors(f"read network {name}"):
            xml = net.XMLDesc(0)
            active = net.isActive()
            persistent = net.isPersistent()
            autostart = net.autostart() if persistent else False
        leases, error = _leases(net)
        observed.append({"xml": xml, "active": active, "persistent": persistent, "autostart": autostart,
                         "leases": leases, "leases_error": error})
    return observed


# -- the network module: one network on a host (bridge, VXLAN / VLAN / flat uplink, libvirt network) ---------

NETWORK_TYPES = ("vxlan", "flat", "vlan")
VNI_MAX = 16777215
VLAN_MAX = 4094
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
DEFAULT_VXLAN_PORT = 4789
ALL_ZEROS_MAC = "00:00:00:00:00:00"
BRIDGE_SYSCTLS = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables")


def _ip_key(address):
    ip = ipaddress.ip_address(address)
    return ip.version, ip


def _ip(value, what):
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} {value!r} is not an IP address", what=what) from exc


def network_spec(params):
    """The wanted network, validated: {name, type, bridge, segmentation_id, vxlan_device, local_ip, remote_ips,
    vxlan_port, physical_interface, mtu, state}. Raises ValidationError naming the bad value."""
    kind = params.get("type") or "vxlan"
    if kind not in NETWORK_TYPES:
        raise ValidationError(f"type {kind!r} must be one of {', '.join(NETWORK_TYPES)}", what="type")
    spec = {"name": validate_name(params.get("name"), "network name"), "type": kind,
            "state": params.get("state") or "present", "bridge": None, "segmentation_id": None,
            "vxlan_device": None, "local_ip": None, "remote_ips": [], "vxlan_port": None,
            "physical_interface": None, "mtu": None}
    if params.get("bridge") is not None:
        spec["bridge"] = validate_ifname(params["bridge"], "bridge")
    if spec["state"] == "absent":  # what to remove comes from the record; the rest need not be given
        if params.get("vxlan_device") is not None:
            spec["vxlan_device"] = validate_ifname(params["vxlan_device"], "vxlan_device")
        return spec
    if params.get("mtu") is not None:
        spec["mtu"] = validate_mtu(params["mtu"])
    seg = params.get("segmentation_id")
    if seg is not None and (isinstance(seg, bool) or not isinstance(seg, int)):
        raise ValidationError(f"segmentation_id must be an integer, got {seg!r}", what="segmentation_id")
    if kind == "vxlan":
        if seg is None or not 1 <= seg <= VNI_MAX:
            raise ValidationError(f"segmentation_id (the VNI) of a vxlan network must be 1-{VNI_MAX}, got {seg!r}",
                                  what="segmentation_id")
        spec["vxlan_device"] = validate_ifname(params.get("vxlan_device") or f"kfvx{seg}"[:IFNAME_MAX_LEN],
                                               "vxlan_device")
        if params.get("local_ip") is None and spec["state"] == "present":
            raise ValidationError("local_ip (this host's tunnel address) is required for a vxlan network",
                                  what="local_ip")
        if params.get("local_ip") is not None:
            spec["local_ip"] = _ip(params["local_ip"], "local_ip")
        remotes = [_ip(ip, "remote_ips entry") for ip in params.get("remote_ips") or []]
        spec["remote_ips"] = sorted(set(remotes) - {spec["local_ip"]}, key=_ip_key)
        port = params.get("vxlan_port") or DEFAULT_VXLAN_PORT
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValidationError(f"vxlan_port must be 1-65535, got {port!r}", what="vxlan_port")
        spec["vxlan_port"] = port
        if spec["bridge"] is None:
            raise ValidationError("bridge is required for a vxlan network", what="bridge")
        if spec["bridge"] == spec["vxlan_device"]:
            raise ValidationError("bridge and vxlan_device must differ", what="vxlan_device")
    else:
        for opt in ("local_ip", "vxlan_device"):
            if params.get(opt) is not None:
                raise ValidationError(f"{opt} is only for type vxlan", what=opt)
        if params.get("remote_ips"):
            raise ValidationError("remote_ips is only for type vxlan", what="remote_ips")
        if params.get("physical_interface") is None:
            raise ValidationError(f"physical_interface is required for a {kind} network", what="physical_interface")
        spec["physical_interface"] = validate_ifname(params["physical_interface"], "physical_interface")
        if kind == "vlan":
            if seg is None or not 1 <= seg <= VLAN_MAX:
                raise ValidationError(f"segmentation_id (the VLAN id) of a vlan network must be 1-{VLAN_MAX}, got "
                                      f"{seg!r}", what="segmentation_id")
            validate_ifname(f"{spec['physical_interface']}.{seg}", "VLAN sub-interface name")
            if spec["bridge"] is None:
                raise ValidationError("bridge is required for a vlan network", what="bridge")
        elif seg is not None:
            raise ValidationError("segmentation_id is not used by a flat network", what="segmentation_id")
    spec["segmentation_id"] = seg
    return spec


def parse_links(links_json):
    """{ifname: {kind, mtu, up, master, link, vxlan: {id, local, port, learning} | None, vlan_id}} from
    ``ip -j -d link show``."""
    out = {}
    for link in links_json or []:
        info = link.get("linkinfo") or {}
        data = info.get("info_data") or {}
        kind = info.get("info_kind")
        entry = {"kind": kind or "device", "mtu": link.get("mtu"), "up": "UP" in (link.get("flags") or []),
                 "master": link.get("master"), "link": link.get("link"), "vxlan": None, "vlan_id": None}
        if kind == "vxlan":
            entry["vxlan"] = {"id": data.get("id"), "local": data.get("local"), "port": data.get("port"),
                              "learning": bool(data.get("learning"))}
        elif kind == "vlan":
            entry["vlan_id"] = data.get("id")
        out[link["ifname"]] = entry
    return out


def address_mtu(addrs_json, address):
    """(device, mtu) of the device that has ``address`` (``ip -j addr show``), or (None, None)."""
    for link in addrs_json or []:
        for addr in link.get("addr_info") or []:
            if addr.get("local") == address:
                return link.get("ifname"), link.get("mtu")
    return None, None


def fdb_remotes(fdb_json):
    """Sorted head-end replication destinations: the all-zeros FDB entries of a VXLAN device."""
    dsts = {e["dst"] for e in fdb_json or [] if e.get("mac") == ALL_ZEROS_MAC and e.get("dst")}
    return sorted(dsts, key=_ip_key)


def build_network_xml(name, bridge, uuid=None):
    """A libvirt network that puts guests on an existing bridge (forward mode bridge). libvirt allows no <mtu> in
    this mode: a guest's tap device gets the bridge's MTU."""
    root = ET.Element("network")
    ET.SubElement(root, "name").text = name
    if uuid:
        ET.SubElement(root, "uuid").text = uuid
    ET.SubElement(root, "forward", mode="bridge")
    ET.SubElement(root, "bridge", name=bridge)
    return ET.tostring(root, encoding="unicode")


def _run(*argv, why):
    return {"op": "run", "argv": [str(a) for a in argv], "why": why}


def _link_steps(name, have, mtu, master=None):
    """Steps that give an existing (or just made, ``have`` None) device its master, MTU and up state."""
    steps = []
    if mtu is not None and (have is None or have["mtu"] != mtu):
        steps.append(_run("ip", "link", "set", "dev", name, "mtu", mtu, why=f"set MTU of {name} to {mtu}"))
    if master is not None and (have is None or have["master"] != master):
        steps.append(_run("ip", "link", "set", "dev", name, "master", master, why=f"enslave {name} to {master}"))
    if have is None or not have["up"]:
        steps.append(_run("ip", "link", "set", "dev", name, "up", why=f"bring {name} up"))
    return steps


def wanted_mtu(spec, links, addrs_json):
    """The MTU the network gets: the given one, else the underlay's (minus the VXLAN overhead)."""
    if spec["mtu"] is not None:
        return spec["mtu"]
    if spec["type"] == "vxlan":
        dev, mtu = address_mtu(addrs_json, spec["local_ip"])
        if dev is None:
            raise InvalidState(f"local_ip {spec['local_ip']} is not an address of this host", local_ip=spec["local_ip"])
        return mtu - VXLAN_OVERHEAD
    phys = links.get(spec["physical_interface"])
    if phys is None:
        raise InvalidState(f"physical_interface {spec['physical_interface']} does not exist on this host",
                           physical_interface=spec["physical_interface"])
    return phys["mtu"]


def _vxlan_matches(have, spec):
    vx = have.get("vxlan") or {}
    return (have["kind"] == "vxlan" and vx.get("id") == spec["segmentation_id"] and vx.get("local") == spec["local_ip"]
            and vx.get("port") == spec["vxlan_port"] and not vx.get("learning"))


def kernel_plan(spec, links, remotes, record, mtu):
    """(steps, made, libvirt_bridge): the commands that make the kernel side of a present network, what this
    module then has made (the record to keep), and the bridge the libvirt network forwards onto."""
    made = dict(record.get("made") or {}) if record else {}
    made.setdefault("bridge", False)
    steps = []
    phys_name = spec["physical_interface"]
    if spec["type"] == "flat":
        phys = links.get(phys_name)
        if phys is None:
            raise InvalidState(f"physical_interface {phys_name} does not exist on this host")
        if phys["kind"] == "bridge":  # an existing host bridge: guests go straight onto it, nothing to make
            if spec["bridge"] not in (None, phys_name):
                raise ValidationError(f"physical_interface {phys_name} is a bridge: the network uses it, so bridge "
                                      f"must be omitted or {phys_name}", what="bridge")
            return steps, made, phys_name
        if spec["bridge"] is None:
            raise ValidationError(f"bridge is required: {phys_name} is not a bridge, so one is made and "
                                  f"{phys_name} put on it", what="bridge")
    br_name = spec["bridge"]
    br = links.get(br_name)
    if br is not None and br["kind"] != "bridge":
        raise InvalidState(f"{br_name} exists and is a {br['kind']}, not a bridge", device=br_name)
    if br is None:
        steps.append(_run("ip", "link", "add", br_name, "type", "bridge", why=f"make bridge {br_name}"))
        made["bridge"] = True
    if spec["type"] == "vxlan":
        vx_name = spec["vxlan_device"]
        vx = links.get(vx_name)
        if vx is not None and not _vxlan_matches(vx, spec):
            if made.get("device") != vx_name:
                raise InvalidState(f"{vx_name} exists and was not made by this module as VXLAN "
                                   f"{spec['segmentation_id']} from {spec['local_ip']} port {spec['vxlan_port']} "
                                   f"(it is {vx['kind']} {vx.get('vxlan')})", device=vx_name)
            why = f"remove {vx_name} to make it anew with the wanted VNI, address and port"
            steps.append(_run("ip", "link", "del", vx_name, why=why))
            vx, remotes = None, []
        if vx is None:
            steps.append(_run("ip", "link", "add", vx_name, "type", "vxlan", "id", spec["segmentation_id"], "local",
                              spec["local_ip"], "dstport", spec["vxlan_port"], "nolearning",
                              why=f"make VXLAN {vx_name} (VNI {spec['segmentation_id']})"))
            made["device"] = vx_name
            remotes = []
        steps.extend(_link_steps(vx_name, vx, mtu, br_name))
        for ip in spec["remote_ips"]:
            if ip not in remotes:
                steps.append(_run("bridge", "fdb", "append", ALL_ZEROS_MAC, "dev", vx_name, "dst", ip,
                                  why=f"flood to remote {ip}"))
        for ip in remotes:
            if ip not in spec["remote_ips"]:
                steps.append(_run("bridge", "fdb", "del", ALL_ZEROS_MAC, "dev", vx_name, "dst", ip,
                                  why=f"stop flooding to remote {ip}"))
    elif spec["type"] == "vlan":
        phys = links.get(phys_name)
        if phys is None:
            raise InvalidState(f"physical_interface {phys_name} does not exist on this host")
        sub_name = f"{phys_name}.{spec['segmentation_id']}"
        sub = links.get(sub_name)
        if sub is not None and (sub["kind"] != "vlan" or sub["vlan_id"] != spec["segmentation_id"]
                                or sub["link"] != phys_name):
            raise InvalidState(f"{sub_name} exists and is not VLAN {spec['segmentation_id']} on {phys_name}",
                               device=sub_name)
        if sub is None:
            steps.append(_run("ip", "link", "add", "link", phys_name, "name", sub_name, "type", "vlan", "id",
                              spec["segmentation_id"], why=f"make VLAN sub-interface {sub_name}"))
            made["device"] = sub_name
        steps.extend(_link_steps(sub_name, sub, mtu, br_name))
    else:  # flat onto a plain interface: put it on the bridge, never change the interface itself
        phys = links[phys_name]
        if phys["master"] not in (None, br_name):
            raise InvalidState(f"physical_interface {phys_name} is already on bridge {phys['master']}")
        if phys["master"] != br_name:
            steps.append(_run("ip", "link", "set", "dev", phys_name, "master", br_name,
                              why=f"put {phys_name} on bridge {br_name}"))
            made["enslaved"] = phys_name
    steps.extend(_link_steps(br_name, br, mtu))
    return steps, made, br_name


def removal_steps(record, links):
    """Commands that undo the kernel side this module recorded having made; what is gone already is skipped."""
    made = (record or {}).get("made") or {}
    steps = []
    device = made.get("device")
    if device and device in links:
        steps.append(_run("ip", "link", "del", device, why=f"remove {device}"))
    enslaved = made.get("enslaved")
    if enslaved and enslaved in links and links[enslaved]["master"] == record.get("bridge"):
        steps.append(_run("ip", "link", "set", "dev", enslaved, "nomaster", why=f"take {enslaved} off its bridge"))
    bridge = record.get("bridge") if record else None
    if made.get("bridge") and bridge in links:
        steps.append(_run("ip", "link", "del", bridge, why=f"remove bridge {bridge}"))
    return steps


def device_view(links, names):
    """The managed fields of the named devices (absent ones left out), for diffs."""
    view = {}
    for name in names:
        link = links.get(name)
        if link is None:
            continue
        entry = {"kind": link["kind"], "mtu": link["mtu"], "up": link["up"], "master": link["master"]}
        if link["vxlan"]:
            entry.update(vni=link["vxlan"]["id"], local=link["vxlan"]["local"], port=link["vxlan"]["port"])
        if link["vlan_id"]:
            entry["vlan_id"] = link["vlan_id"]
        view[name] = entry
    return view


def predicted_devices(spec, mtu, bridge):
    """The device_view a present network ends with."""
    if spec["type"] == "flat" and bridge == spec["physical_interface"]:
        return {}
    view = {bridge: {"kind": "bridge", "mtu": mtu, "up": True, "master": None}}
    if spec["type"] == "vxlan":
        view[spec["vxlan_device"]] = {"kind": "vxlan", "mtu": mtu, "up": True, "master": bridge,
                                      "vni": spec["segmentation_id"], "local": spec["local_ip"],
                                      "port": spec["vxlan_port"]}
    elif spec["type"] == "vlan":
        view[f"{spec['physical_interface']}.{spec['segmentation_id']}"] = {
            "kind": "vlan", "mtu": mtu, "up": True, "master": bridge, "vlan_id": spec["segmentation_id"]}
    return view
