# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What goes on a guest's seed disk: NoCloud (label cidata) or an OpenStack config drive (label config-2).

NoCloud: ``meta-data`` (YAML: instance-id, local-hostname, public-keys as a list of double-quoted
strings), ``user-data``, and with network data ``network_data.json`` (Nova's format, as on a config
drive) plus ``network-config`` (cloud-init network config version 2, written as JSON, which is YAML).
Config drive: ``openstack/latest/meta_data.json``, ``network_data.json`` and ``user_data`` as Nova
writes them. The tiny image reads both (its parsers handle exactly what is written here).
"""

from __future__ import annotations

import ipaddress
import json
import re

from ansible_collections.kvmfleet.compute.plugins.module_utils._errors import ValidationError
from ansible_collections.kvmfleet.compute.plugins.module_utils._validate import validate_mac, validate_name

FORMATS = ("nocloud", "config-drive")
LABELS = {"nocloud": "cidata", "config-drive": "config-2"}
# meta_data.json keys the module owns; meta_data may add others (name, availability_zone, project_id, ...).
OWNED_META_KEYS = ("uuid", "hostname", "public_keys", "keys")
NETWORK_TYPES_WITH_ADDRESS = ("ipv4",)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_KEY_TYPE_RE = re.compile(r"\A(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[A-Za-z0-9@.-]+)\Z")
_BASE64_RE = re.compile(r"\A[A-Za-z0-9+/]+={0,2}\Z")


def _text(value, what):
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}", what=what)
    if _CONTROL_RE.search(value):
        raise ValidationError(f"{what} must be one line of text without control characters", what=what)
    return value


def validate_public_keys(keys):
    """name -> OpenSSH public key line (``type base64 [comment]``), each one line without control characters."""
    if keys is None:
        return {}
    if not isinstance(keys, dict):
        raise ValidationError("config_drive public_keys must be a mapping of key name to public key line")
    out = {}
    for name, key in keys.items():
        validate_name(name, "config_drive public_keys name")
        key = _text(key, f"config_drive public key {name}").strip()
        parts = key.split(None, 2)
        if len(parts) < 2 or not _KEY_TYPE_RE.match(parts[0]) or not _BASE64_RE.match(parts[1]):
            raise ValidationError(f"config_drive public key {name} is not an OpenSSH public key line "
                                  "like 'ssh-ed25519 AAAA... comment'", what="public_keys")
        out[name] = key
    return out


def _ipv4(value, what):
    try:
        return str(ipaddress.IPv4Address(_text(value, what)))
    except ipaddress.AddressValueError as exc:
        raise ValidationError(f"{what} {value!r} is not an IPv4 address", what=what) from exc


def _netmask(value, what):
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{_text(value, what)}").netmask)
    except (ipaddress.NetmaskValueError, ValueError) as exc:
        raise ValidationError(f"{what} {value!r} is not an IPv4 netmask", what=what) from exc


def _prefix(netmask):
    return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen


def _list_of_dicts(doc, key, what):
    items = doc.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValidationError(f"{what} {key} must be a list of mappings", what=what)
    return items


def _services(items, what):
    for i, service in enumerate(items):
        _text(service.get("type", ""), f"{what} services[{i}] type")
        if service.get("type") == "dns":
            address = _text(service.get("address") or "", f"{what} services[{i}] address")
            try:
                service["address"] = str(ipaddress.ip_address(address))
            except ValueError as exc:
                raise ValidationError(f"{what} services[{i}] address {address!r} is not an IP address",
                                      what=what) from exc


def validate_network_data(doc):
    """A copy of Nova's network_data.json ``doc``, checked where the guest reads it: links (id,
    ethernet_mac_address, mtu), networks (id, type, link, ip_address, netmask, routes) and dns services."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValidationError("config_drive network_data must be a mapping (Nova's network_data.json)")
    doc = json.loads(json.dumps(doc))  # a deep copy of plain JSON types; refuses what JSON cannot hold
    what = "config_drive network_data"
    links = {}
    for i, link in enumerate(_list_of_dicts(doc, "links", what)):
        lid = _text(link.get("id") or "", f"{what} links[{i}] id")
        if not lid or lid in links:
            raise ValidationError(f"{what} links[{i}] needs an id of its own", what=what)
        if link.get("ethernet_mac_address") is not None:  # vlan links may have none; the guest skips them
            link["ethernet_mac_address"] = validate_mac(link["ethernet_mac_address"],
                                                        f"{what} links[{i}] ethernet_mac_address")
        mtu = link.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535):
            raise ValidationError(f"{what} links[{i}] mtu must be an integer from 68 to 65535", what=what)
        links[lid] = link
    for i, net in enumerate(_list_of_dicts(doc, "networks", what)):
        at = f"{what} networks[{i}]"
        kind = _text(net.get("type") or "", f"{at} type")
        if net.get("link") not in links:
            raise ValidationError(f"{at} link {net.get('link')!r} names no entry of links", what=what)
        routes = _list_of_dicts(net, "routes", at)
        if kind in NETWORK_TYPES_WITH_ADDRESS:  # other types (ipv6, ...) go through as given; the guest skips them
            net["ip_address"] = _ipv4(net.get("ip_address"), f"{at} ip_address")
            net["netmask"] = _netmask(net.get("netmask"), f"{at} netmask")
            for j, route in enumerate(routes):
                route["network"] = _ipv4(route.get("network"), f"{at} routes[{j}] network")
                route["netmask"] = _netmask(route.get("netmask"), f"{at} routes[{j}] netmask")
                route["gateway"] = _ipv4(route.get("gateway"), f"{at} routes[{j}] gateway")
        _services(_list_of_dicts(net, "services", at), at)
    _services(_list_of_dicts(doc, "services", what), what)
    return doc


def validate_meta_data(extra):
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ValidationError("config_drive meta_data must be a mapping of meta_data.json keys")
    owned = sorted(k for k in extra if k in OWNED_META_KEYS)
    if owned:
        raise ValidationError(f"config_drive meta_data may not set {', '.join(owned)}: the module writes them")
    return json.loads(json.dumps(extra))


def validate_seed_options(drive):
    """Check a config_drive option's seed suboptions before anything is created."""
    fmt = drive.get("format") or "nocloud"
    if fmt not in FORMATS:
        raise ValidationError(f"config_drive format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    validate_public_keys(drive.get("public_keys"))
    validate_network_data(drive.get("network_data"))
    validate_meta_data(drive.get("meta_data"))


def seed_options(drive):
    """The keyword arguments of create_seed taken from a config_drive option."""
    return {"fmt": drive.get("format") or "nocloud", "public_keys": drive.get("public_keys"),
            "network_data": drive.get("network_data"), "meta_data": drive.get("meta_data")}


def network_config_v2(doc):
    """cloud-init network config version 2 for Nova's network_data ``doc`` (already validated)."""
    ethernets = {}
    dns = [s["address"] for s in doc.get("services") or [] if s.get("type") == "dns"]
    links = {link["id"]: link for link in doc.get("links") or []}
    for net in doc.get("networks") or []:
        link = links[net["link"]]
        if not link.get("ethernet_mac_address"):
            continue
        eth = ethernets.setdefault(link["id"], {"match": {"macaddress": link["ethernet_mac_address"]}})
        if link.get("mtu"):
            eth["mtu"] = link["mtu"]
        if net.get("type") == "ipv4_dhcp":
            eth["dhcp4"] = True
        elif net.get("type") == "ipv4":
            eth.setdefault("addresses", []).append(f"{net['ip_address']}/{_prefix(net['netmask'])}")
            for route in net.get("routes") or []:
                to = f"{route['network']}/{_prefix(route['netmask'])}"
                eth.setdefault("routes", []).append({"to": "default" if to == "0.0.0.0/0" else to,
                                                     "via": route["gateway"]})
        addresses = dns + [s["address"] for s in net.get("services") or [] if s.get("type") == "dns"]
        if addresses:
            eth["nameservers"] = {"addresses": list(dict.fromkeys(addresses))}
    return {"version": 2, "ethernets": ethernets}


def _json(doc):
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def seed_files(hostname, instance_id, user_data, fmt="nocloud", public_keys=None, network_data=None,
               meta_data=None):
    """Path inside the seed -> content. Names are validated, so the YAML needs no quoting; key lines
    are double-quoted with JSON escapes (valid YAML) and hold no control characters."""
    validate_name(instance_id, "config_drive instance_id")
    validate_name(hostname, "config_drive hostname")
    if fmt not in FORMATS:
        raise ValidationError(f"config_drive format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    keys = validate_public_keys(public_keys)
    network = validate_network_data(network_data)
    extra = validate_meta_data(meta_data)
    if fmt == "nocloud":
        meta = f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n"
        if keys:
            meta += "public-keys:\n" + "".join(f"  - {json.dumps(k, ensure_ascii=False)}\n" for k in keys.values())
        files = {"meta-data": meta, "user-data": user_data or ""}
        if network is not None:
            files["network_data.json"] = _json(network)
            files["network-config"] = _json(network_config_v2(network))
        return files
    meta = {"name": hostname, **extra, "uuid": instance_id, "hostname": hostname, "public_keys": keys,
            "keys": [{"name": name, "type": "ssh", "data": key} for name, key in keys.items()]}
    files = {"openstack/latest/meta_data.json": _json(meta),
             "openstack/latest/network_data.json": _json(network if network is not None else {"links": [], "networks": [], "services": []})}
    if user_data is not None:
        files["openstack/latest/user_data"] = user_data
    return files
