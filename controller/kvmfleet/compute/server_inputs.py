"""Resolving what a compute API request names (flavorRef, imageRef, networks, the group hint, the
availability zone) into the store's rows, with Nova's 400s: on create an unknown flavor, image or network
is a bad request, not a missing resource. Nothing here writes.

    flavor = resolve_flavor(session, "1")                       # InvalidRequest "Flavor 1 could not be found."
    image = resolve_image(session, image_id, project_id, admin)
    names = resolve_networks(session, [{"uuid": net_id}], project_id)    # -> network names, "auto" or "none"
    zone, host = parse_availability_zone(session, "nova:lab-h1")
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sqlalchemy import select

from kvmfleet.compute.errors import InvalidRequest
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Flavor, Host, Image, ServerGroup

DEFAULT_NETWORK = "default"
DEFAULT_SECURITY_GROUP = "default"


def href_id(ref: Any) -> str:
    """Nova's get_id_from_href: the last path segment of a link, or the value itself."""
    from urllib.parse import urlsplit

    return urlsplit(str(ref)).path.split("/")[-1]


def resolve_flavor(session: Any, ref: Any) -> Flavor:
    flavor_id = href_id(ref)
    row = session.get(Flavor, flavor_id)
    if row is None:
        raise InvalidRequest(f"Flavor {flavor_id} could not be found.", flavor=flavor_id)
    if row.disabled:
        raise InvalidRequest(f"Flavor {flavor_id} is disabled.", flavor=flavor_id)
    return row


def image_visible(image: Image, project_id: str | None, admin: bool) -> bool:
    """Glance's rule: public (and community) images for all, private/shared ones for their owner, all for admins."""
    if admin or image.visibility in ("public", "community") or image.project_id is None:
        return True
    return image.project_id == project_id


def resolve_image(session: Any, ref: Any, project_id: str | None, admin: bool = False,
                  message: str = "Can not find requested image") -> Image:
    image_id = href_id(ref)
    row = session.get(Image, image_id)
    if row is None or not image_visible(row, project_id, admin):
        raise InvalidRequest(message, image=image_id)
    if row.status != "active":
        raise InvalidRequest(f"Image {image_id} is not active.", image=image_id)
    return row


def _network_module() -> Any:
    try:
        from kvmfleet import network
    except ImportError:
        return None
    return network


def network_name(session: Any, network_id: str, project_id: str | None) -> str:
    """The name of the network with this id (the Neutron API's ids), InvalidRequest when there is none."""
    network = _network_module()
    get_network = getattr(network, "get_network", None)
    if get_network is not None:
        try:
            return str(get_network(session, network_id, project_id).name)
        except NotFound:
            pass
    elif network_id == DEFAULT_NETWORK:
        return DEFAULT_NETWORK
    raise InvalidRequest(f"Network {network_id} could not be found.", network=network_id)


def _uuid_like(value: Any) -> bool:
    import uuid

    try:
        return str(uuid.UUID(str(value))).replace("-", "") == str(value).replace("-", "").lower()
    except ValueError:
        return False


def resolve_networks(session: Any, requested: Any, project_id: str | None, admin: bool = False) -> str | list[Any]:
    """The API's ``networks`` (absent, "auto", "none" or [{uuid}|{port}|{uuid, fixed_ip}...]) as the
    CreateRequest takes it: "auto", "none" or a list with, per NIC, the provider network's name or
    {"network_id", "fixed_ip"?} / {"port_id"} of a tenant network (kvmfleet.compute.nics)."""
    if requested is None or requested == "auto":
        return "auto"
    if requested == "none":
        return "none"
    from kvmfleet.network import tenant

    out: list[Any] = []
    seen_ports: set[str] = set()
    for item in requested:
        port = item.get("port")
        if port:
            if port in seen_ports:
                raise InvalidRequest(f"Port ID '{port}' was specified twice: you cannot attach a port multiple "
                                     "times.")
            seen_ports.add(port)
            try:
                row = tenant.get_port(session, str(port), project_id, admin=admin)
            except NotFound:
                raise InvalidRequest(f"Port id {port} could not be found.", port=port) from None
            if row.device_id:
                raise Conflict(f"Port {port} is still in use.", port=port)
            out.append({"port_id": row.id})
            continue
        if "uuid" not in item:
            raise InvalidRequest("Bad network format: missing 'uuid'")
        if not _uuid_like(item["uuid"]):
            raise InvalidRequest(f"Bad networks format: network uuid is not in proper format ({item['uuid']})")
        try:
            net = tenant.get_network(session, str(item["uuid"]), project_id, admin=admin)
        except NotFound:
            net = None
        if net is None:
            name = network_name(session, str(item["uuid"]), project_id)
            if item.get("fixed_ip") is not None:
                raise InvalidRequest(f"Network {name} gives addresses by DHCP: a fixed IP cannot be requested "
                                     "on it.")
            out.append(name)
            continue
        entry = {"network_id": net.id}
        if item.get("fixed_ip") is not None:
            entry["fixed_ip"] = str(item["fixed_ip"])
        out.append(entry)
    return out


def resolve_group(session: Any, hint: Any, project_id: str) -> ServerGroup | None:
    """The ``group`` scheduler hint: a server group of the caller's project (another's is not found)."""
    if hint is None or hint == []:
        return None
    if isinstance(hint, list):
        if len(hint) != 1:
            raise InvalidRequest("Only one server group may be given in the group scheduler hint.")
        hint = hint[0]
    row = session.get(ServerGroup, str(hint))
    if row is None or row.project_id != project_id:
        raise InvalidRequest(f"Instance group {hint} could not be found.", group=str(hint))
    return row


def parse_availability_zone(session: Any, text: str | None) -> tuple[str | None, str | None]:
    """Nova's parse_availability_zone: "zone", "zone:host", "zone:host:node", ":host" (node = host here).
    The host must exist (Nova: ComputeHostNotFound, 400) and the zone must be one a host is in."""
    if text is None:
        return None, None
    parts = text.split(":")
    if len(parts) > 3:
        raise InvalidRequest(f"Unable to parse availability_zone {text!r}")
    zone = parts[0] or None
    host = parts[1] if len(parts) > 1 and parts[1] else None
    node = parts[2] if len(parts) > 2 and parts[2] else None
    if node and host and node != host:
        raise InvalidRequest(f"Compute host {host} has no node {node}: a host is its own node here.")
    host = host or node
    if host is not None:
        try:
            row = store_api.get_host(session, host)
        except NotFound:
            raise InvalidRequest(f"Compute host {host} could not be found.", host=host) from None
        if zone is not None and zone != (row.availability_zone or "nova"):
            zone = None  # as Nova (bug 1934770): the forced host's own zone wins
    if zone is not None:
        zones = set(session.scalars(select(Host.availability_zone).distinct()).all())
        if zone not in zones:
            raise InvalidRequest("The requested availability zone is not available", availability_zone=zone)
    return zone, host


def decode_user_data(text: str | None) -> str | None:
    """The API's base64 user_data as the text the guest's seed carries (never shown in an error)."""
    if text is None:
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidRequest("User data needs to be valid base 64.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("User data must be UTF-8 text once decoded: binary user data is not supported.") \
            from None


def check_security_groups(session: Any, groups: list[dict[str, Any]] | None, project_id: str | None) -> list[str] | None:
    """The ids of the security groups named (by name or id) for the ports the create makes; None when
    none is named (each port gets the project's default group)."""
    if not groups:
        return None
    from kvmfleet.network import tenant

    out = []
    for group in groups:
        name = group.get("name")
        if not name:
            continue
        try:
            out.append(tenant.find_security_group(session, str(name), project_id).id)
        except NotFound:
            raise InvalidRequest(f"Security group {name} not found.", security_group=name) from None
    return out or None
