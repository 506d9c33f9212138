# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A domain's network interfaces: validation of what ends up in <interface> (tap name, MTU, nwfilter
reference), the element built with xml.etree, and the interfaces parsed back from domain XML. Shared by the
domain XML builder and the interface_attachment module."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_mac, validate_name

NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
IFNAME_MAX_LEN = 15  # IFNAMSIZ - 1
# libvirt names its own tap and macvtap devices with these prefixes and refuses them as a target dev
RESERVED_TAP_PREFIXES = ("vnet", "vif", "macvtap", "macvlan")
MTU_MIN = 68
MTU_MAX = 65535
_IFNAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,14}\Z")


def validate_ifname(value, what):
    """A Linux network device name: 1-15 characters of [A-Za-z0-9._-], not starting with '-' or '.'."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}", value=repr(value), what=what)
    if len(value) > IFNAME_MAX_LEN:
        raise ValidationError(f"{what} {value!r} is {len(value)} characters long; a Linux device name has at most "
                              f"{IFNAME_MAX_LEN}", value=value, what=what)
    if not _IFNAME_RE.match(value):
        raise ValidationError(f"{what} {value!r} is not a valid device name: use 1-{IFNAME_MAX_LEN} characters of "
                              "A-Z a-z 0-9 . _ - not starting with '-' or '.'", value=value, what=what)
    return value


def validate_tap(value, what="target"):
    """A tap device name for <target dev=.../>: a device name libvirt does not reserve for itself."""
    validate_ifname(value, what)
    for prefix in RESERVED_TAP_PREFIXES:
        if value.startswith(prefix):
            raise ValidationError(f"{what} {value!r} starts with {prefix!r}, which libvirt reserves for the names it "
                                  "picks itself", value=value, what=what)
    return value


def validate_mtu(value, what="mtu"):
    if isinstance(value, bool) or not isinstance(value, int) or not MTU_MIN <= value <= MTU_MAX:
        raise ValidationError(f"{what} must be an integer from {MTU_MIN} to {MTU_MAX}, got {value!r}", what=what)
    return value


def normalise_nic(nic, what="nic"):
    """{network, mac, model, target, mtu, filter} validated; unset optional fields are None."""
    out = {
        "network": validate_name(nic.get("network"), f"network name of {what}"),
        "mac": validate_mac(nic["mac"], f"MAC address of {what}") if nic.get("mac") else None,
        "model": nic.get("model") or "virtio",
        "target": validate_tap(nic["target"], f"target of {what}") if nic.get("target") else None,
        "mtu": validate_mtu(nic["mtu"], f"mtu of {what}") if nic.get("mtu") is not None else None,
        "filter": validate_name(nic["filter"], f"filter of {what}") if nic.get("filter") else None,
    }
    if out["model"] not in NIC_MODELS:
        raise ValidationError(f"model of {what} must be one of {', '.join(NIC_MODELS)}, got {out['model']!r}")
    return out


def build_interface_element(nic):
    """<interface type='network'> for a normalised nic; optional fields left out when unset."""
    iface = ET.Element("interface", type="network")
    if nic.get("mac"):
        ET.SubElement(iface, "mac", address=nic["mac"].lower())
    ET.SubElement(iface, "source", network=nic["network"])
    if nic.get("target"):
        ET.SubElement(iface, "target", dev=nic["target"])
    ET.SubElement(iface, "model", type=nic.get("model") or "virtio")
    if nic.get("filter"):
        ET.SubElement(iface, "filterref", filter=nic["filter"])
    if nic.get("mtu") is not None:
        ET.SubElement(iface, "mtu", size=str(nic["mtu"]))
    return iface


def build_interface_xml(nic):
    return ET.tostring(build_interface_element(nic), encoding="unicode")


def parse_interface(iface):
    """The managed fields of one <interface> element, plus its XML (for detach)."""
    source = iface.find("source")
    mac = iface.find("mac")
    model = iface.find("model")
    target = iface.find("target")
    filterref = iface.find("filterref")
    mtu = iface.find("mtu")
    network = None
    if source is not None:
        network = source.get("network") or source.get("bridge") or source.get("dev")
    size = mtu.get("size") if mtu is not None else None
    return {
        "type": iface.get("type"),
        "network": network,
        "bridge": source.get("bridge") if source is not None else None,
        "mac": mac.get("address").lower() if mac is not None and mac.get("address") else None,
        "model": model.get("type") if model is not None else None,
        "target": target.get("dev") if target is not None else None,
        "mtu": int(size) if size and size.isdigit() else None,
        "filter": filterref.get("filter") if filterref is not None else None,
        "element": ET.tostring(iface, encoding="unicode"),
    }


def with_filter(interface_xml, name):
    """An <interface> element's XML with its <filterref> replaced by ``name`` (removed when None)."""
    iface = ET.fromstring(interface_xml)
    for old in iface.findall("filterref"):
        iface.remove(old)
    if name:
        ET.SubElement(iface, "filterref", filter=validate_name(name, "filter"))
    return ET.tostring(iface, encoding="unicode")


def domain_interfaces(domain_xml):
    """[parse_interface(...)] for every <interface> of a domain's XML (text or element)."""
    root = ET.fromstring(domain_xml) if isinstance(domain_xml, str) else domain_xml
    return [parse_interface(iface) for iface in root.findall("devices/interface")]


def find_interface(interfaces, mac):
    for iface in interfaces:
        if iface["mac"] == mac:
            return iface
    return None


def interface_view(iface):
    """The normalised fields diffs and results show (never raw XML)."""
    if iface is None:
        return None
    return {k: iface.get(k) for k in ("network", "mac", "model", "target", "mtu", "filter")}
