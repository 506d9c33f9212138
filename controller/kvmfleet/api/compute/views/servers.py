"""Server views for the asked microversion (nova/api/openstack/compute/views/servers.py).

    v = ServerView(request, ctx, rel)          # rel: kvmfleet.compute.queries.Related of the page
    v.show(inst)                               # GET /servers/{id}: {"server": {...}}
    v.detail(instances, query_params)          # GET /servers/detail: {"servers": [...], "servers_links"?}
    v.index(instances, query_params)           # GET /servers
    v.update(inst) / v.rebuild(inst)           # PUT and rebuild: the reduced field set before 2.75
    v.create(inst_uuid, security_groups)       # POST /servers

Every key is Nova's, with Nova's types: a missing or extra key for a microversion is a bug.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any
from urllib.parse import urlencode

from kvmfleet.compute.queries import Related, network_names
from kvmfleet.store.models import Instance
from kvmfleet.store.states import PowerState, VmState

PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
FAULT_STATUSES = ("ERROR", "DELETED")
MAX_LIMIT = 1000  # Nova's [api] max_limit
VERSIONS = ("2.3", "2.9", "2.16", "2.19", "2.26", "2.47", "2.54", "2.57", "2.63", "2.71", "2.73", "2.75")


def isotime(value: dt.datetime | None) -> str | None:
    """Nova's utils.isotime: seconds precision and a Z."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_time(value: dt.datetime | None) -> str | None:
    """OS-SRV-USG:* as Nova serialises a naive datetime (microseconds, no zone)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f")


def host_id(host: str | None, project_id: str) -> str:
    """Nova's generate_hostid: sha224 of project + host, '' without a host."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode("utf-8")).hexdigest()


def base_url(request: Any) -> str:
    from kvmfleet.config import get_settings

    public = get_settings().api.public_url
    return (public or str(request.base_url)).rstrip("/")


class ServerView:
    def __init__(self, request: Any, ctx: Any, rel: Related) -> None:
        self.base = base_url(request)
        self.ctx = ctx
        self.v = ctx.microversion
        # Every version this view compares against, compared once per request rather than per server.
        self.at = {m: self.v.matches(m) for m in VERSIONS}
        self.rel = rel
        self.admin = ctx.is_admin

    # -- links ----------------------------------------------------------------------------------

    def links(self, uuid: str, collection: str = "servers") -> list[dict[str, str]]:
        return [{"rel": "self", "href": f"{self.base}/compute/v2.1/{collection}/{uuid}"},
                {"rel": "bookmark", "href": f"{self.base}/compute/{collection}/{uuid}"}]

    def next_link(self, collection: str, params: list[tuple[str, str]], marker: str) -> dict[str, str]:
        kept = sorted((k, v) for k, v in params if k != "marker")
        query = urlencode([*dict(kept).items(), ("marker", marker)])
        return {"rel": "next", "href": f"{self.base}/compute/v2.1/{collection}?{query}"}

    def collection_links(self, collection: str, items: list[Any], params: list[tuple[str, str]],
                         limit: int | None) -> list[dict[str, str]]:
        """Nova's _get_collection_links: a next link when the page is as long as the limit (or max_limit)."""
        max_items = min(limit, MAX_LIMIT) if limit is not None else MAX_LIMIT
        if max_items and len(items) == max_items:
            return [self.next_link(collection, params, items[-1].uuid)]
        return []

    # -- parts ----------------------------------------------------------------------------------

    def _image(self, inst: Instance) -> Any:
        if not inst.image_id or (inst.config or {}).get("boot_volume"):
            return ""  # booted from a volume (Nova's empty image)
        return {"id": inst.image_id, "links": [{"rel": "bookmark", "href": f"{self.base}/compute/images/{inst.image_id}"}]}

    def _flavor(self, inst: Instance) -> dict[str, Any]:
        if self.at["2.47"]:
            flavor: dict[str, Any] = {"vcpus": inst.vcpus, "ram": inst.memory_mb, "disk": inst.root_gb,
                                      "ephemeral": inst.ephemeral_gb, "swap": inst.swap,
                                      "original_name": inst.flavor_name}
            # show:flavor-extra-specs is reader-or-admin: whoever may see the server sees them
            flavor["extra_specs"] = {str(k): str(v) for k, v in (inst.flavor_extra_specs or {}).items()}
            return flavor
        flavor_id = inst.flavor_id or inst.flavor_name
        return {"id": str(flavor_id),
                "links": [{"rel": "bookmark", "href": f"{self.base}/compute/flavors/{flavor_id}"}]}

    def _addresses(self, inst: Instance, extended: bool) -> dict[str, list[dict[str, Any]]]:
        if inst.vm_state is VmState.BUILDING:
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        for nic in self.rel.nics(inst):
            ips = out.setdefault(nic.network_name, [])
            if nic.ip:
                addr: dict[str, Any] = {"version": 4, "addr": nic.ip}
                if extended:
                    addr["OS-EXT-IPS:type"] = "fixed"
                    addr["OS-EXT-IPS-MAC:mac_addr"] = nic.mac
                ips.append(addr)
        return out

    def _fault(self, inst: Instance) -> dict[str, Any] | None:
        if inst.fault_message is None:
            return None
        fault: dict[str, Any] = {"code": 500, "created": isotime(inst.fault_created_at or inst.updated_at),
                                 "message": inst.fault_message}
        if inst.fault_details and self.admin:  # code 500 details are admin-only, as Nova
            fault["details"] = inst.fault_details
        return fault

    def _availability_zone(self, inst: Instance) -> str:
        host = self.rel.host(inst)
        if host is not None:
            return host.availability_zone or ""
        return inst.availability_zone or ""

    def _host_status(self, inst: Instance) -> str:
        """Nova's get_instance_host_status (kvmfleet.compute.services.host_status)."""
        from kvmfleet.compute.services import host_status

        return host_status(self.rel.host(inst))

    def _security_groups(self, inst: Instance) -> list[dict[str, str]] | None:
        names = self.rel.security_groups.get(inst.uuid)
        if names:
            return [{"name": n} for n in names]
        return [{"name": "default"}] if self.rel.nics(inst) or network_names(inst) else None

    def _user_data(self, inst: Instance) -> str | None:
        data = (inst.config or {}).get("user_data")
        if data is None:
            return None
        return base64.b64encode(data.encode("utf-8")).decode("ascii")

    # -- whole servers --------------------------------------------------------------------------

    def server(self, inst: Instance, *, full: bool = True, server_groups: bool = False,
               user_data: bool = True) -> dict[str, Any]:
        """Nova's ViewBuilder.show. ``full``: every attribute (show, detail, and PUT/rebuild from 2.75);
        otherwise the reduced set PUT and rebuild answered before 2.75."""
        status = "DELETED" if inst.deleted_at is not None else inst.status
        out: dict[str, Any] = {
            "accessIPv4": "", "accessIPv6": "",
            "addresses": self._addresses(inst, extended=full),
            "created": isotime(inst.created_at),
            "flavor": self._flavor(inst),
            "hostId": host_id(inst.host, inst.project_id),
            "id": inst.uuid,
            "image": self._image(inst),
            "links": self.links(inst.uuid),
            "metadata": {str(k): str(val) for k, val in (inst.metadata_ or {}).items()},
            "name": inst.name,
            "status": status,
            "tenant_id": inst.project_id or "",
            "user_id": inst.user_id or "",
            "updated": isotime(inst.updated_at or inst.created_at),
            "OS-DCF:diskConfig": "MANUAL",
        }
        if status in FAULT_STATUSES:
            fault = self._fault(inst)
            if fault:
                out["fault"] = fault
        if status in PROGRESS_STATUSES:
            out["progress"] = 0  # Nova reports 0 unless a driver tracks progress (libvirt's does not)
        if full:
            out["OS-EXT-AZ:availability_zone"] = self._availability_zone(inst)
            out["config_drive"] = "True"  # every kvmfleet guest gets a config drive (its seed)
            out["key_name"] = inst.key_name
            out["OS-SRV-USG:launched_at"] = usage_time(inst.launched_at)
            out["OS-SRV-USG:terminated_at"] = usage_time(inst.terminated_at)
            groups = self._security_groups(inst)
            if groups:
                out["security_groups"] = groups
            if self.admin:
                out["OS-EXT-SRV-ATTR:host"] = inst.host
                out["OS-EXT-SRV-ATTR:instance_name"] = inst.domain_name
                out["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.node
                if self.at["2.3"]:
                    out.update({
                        "OS-EXT-SRV-ATTR:hostname": (inst.config or {}).get("hostname") or "",
                        "OS-EXT-SRV-ATTR:kernel_id": "",
                        "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                        "OS-EXT-SRV-ATTR:ramdisk_id": "",
                        "OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                    })
                    if user_data:
                        out["OS-EXT-SRV-ATTR:user_data"] = self._user_data(inst)
            out["OS-EXT-STS:task_state"] = str(inst.task_state) if inst.task_state else None
            out["OS-EXT-STS:vm_state"] = str(inst.vm_state)
            out["OS-EXT-STS:power_state"] = PowerState(inst.power_state).code
            out["os-extended-volumes:volumes_attached"] = [
                {"id": vid, "delete_on_termination": dot} if self.at["2.3"] else {"id": vid}
                for vid, dot in self.rel.attached(inst)]
        if self.at["2.9"]:
            out["locked"] = bool(inst.locked)
        if full and self.at["2.16"] and self.admin:
            out["host_status"] = self._host_status(inst)
        if self.at["2.19"]:
            out["description"] = inst.description
        if self.at["2.26"]:
            out["tags"] = []
        if self.at["2.63"]:
            out["trusted_image_certificates"] = None
        if server_groups:
            group = self.rel.group_id(inst)
            out["server_groups"] = [group] if group else []
        if self.at["2.73"]:
            out["locked_reason"] = None
        return out

    def show(self, inst: Instance) -> dict[str, Any]:
        return {"server": self.server(inst, server_groups=self.at["2.71"])}

    def update(self, inst: Instance) -> dict[str, Any]:
        return {"server": self.server(inst, full=self.at["2.75"], server_groups=self.at["2.71"])}

    def rebuild(self, inst: Instance) -> dict[str, Any]:
        full = self.at["2.75"]
        server = self.server(inst, full=full, server_groups=self.at["2.71"], user_data=False)
        if not full and self.at["2.54"]:
            server["key_name"] = inst.key_name
        if self.at["2.57"]:
            server["user_data"] = self._user_data(inst)
        return {"server": server}

    def detail(self, instances: list[Instance], params: list[tuple[str, str]], limit: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"servers": [self.server(i) for i in instances]}
        links = self.collection_links("servers/detail", instances, params, limit)
        if links:
            out["servers_links"] = links
        return out

    def index(self, instances: list[Instance], params: list[tuple[str, str]], limit: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"servers": [{"id": i.uuid, "name": i.name, "links": self.links(i.uuid)}
                                           for i in instances]}
        links = self.collection_links("servers", instances, params, limit)
        if links:
            out["servers_links"] = links
        return out

    def create(self, uuid: str, security_groups: list[dict[str, str]] | None) -> dict[str, Any]:
        return {"server": {"id": uuid, "links": self.links(uuid), "OS-DCF:diskConfig": "MANUAL",
                           "security_groups": security_groups or [{"name": "default"}]}}
