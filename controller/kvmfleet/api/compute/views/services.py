"""Views of hosts as Nova's services, hypervisors and availability zones, per microversion
(nova/api/openstack/compute/services.py, hypervisors.py, availability_zone.py): uuid ids from 2.53,
``forced_down`` from 2.11, ``cpu_info`` a dict from 2.28, ``servers`` on request from 2.53."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kvmfleet.api.microversion import APIVersion
from kvmfleet.compute import services as svc
from kvmfleet.store.models import Host, Instance


def nova_time(value: dt.datetime | None) -> str | None:
    """A timestamp as Nova's JSON shows a service's (naive UTC, microseconds)."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def service(version: APIVersion, host: Host, now: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {
        "binary": svc.BINARY, "host": host.name,
        "id": svc.service_uuid(host) if version.matches("2.53") else host.id,
        "zone": host.availability_zone or svc.DEFAULT_ZONE,
        "status": "enabled" if host.enabled else "disabled",
        "state": "up" if svc.is_up(host, now) else "down",
        "updated_at": nova_time(host.last_heartbeat_at),
        "disabled_reason": host.disabled_reason if not host.enabled else None,
    }
    if version.matches("2.11"):
        out["forced_down"] = bool(host.forced_down)
    return out


def hypervisor(version: APIVersion, host: Host, now: dt.datetime, *, detail: bool, stats: svc.NodeStats | None,
               servers: list[Instance] | None = None) -> dict[str, Any]:
    by_uuid = version.matches("2.53")
    out: dict[str, Any] = {
        "id": svc.node_uuid(host) if by_uuid else host.id,
        "hypervisor_hostname": host.name,
        "state": "up" if svc.is_up(host, now) else "down",
        "status": "enabled" if host.enabled else "disabled",
    }
    if detail:
        out.update({
            "hypervisor_type": host.hypervisor_type or "QEMU",
            "hypervisor_version": svc.hypervisor_version(host),
            "host_ip": host.address,
            "service": {"id": svc.service_uuid(host) if by_uuid else host.id, "host": host.name,
                        "disabled_reason": host.disabled_reason if not host.enabled else None},
        })
        if stats is not None:
            out.update(stats.as_dict())
        info = svc.cpu_info(host)
        out["cpu_info"] = info if version.matches("2.28") else json.dumps(info)
    if servers is not None:
        out["servers"] = [{"name": i.name, "uuid": i.uuid} for i in servers]
    return out


def zone(z: svc.Zone, now: dt.datetime, detail: bool) -> dict[str, Any]:
    hosts: dict[str, Any] | None = None
    if detail and z.available:
        hosts = {h.name: {svc.BINARY: {"available": svc.is_up(h, now), "active": bool(h.enabled),
                                       "updated_at": nova_time(h.last_heartbeat_at)}} for h in z.hosts}
    return {"zoneName": z.name, "zoneState": {"available": z.available}, "hosts": hosts}
