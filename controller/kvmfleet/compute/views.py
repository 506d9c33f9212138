"""Read-only: server dicts, list/show, the action log, the console log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from kvmfleet import executor
from kvmfleet.compute import actions
from kvmfleet.compute.common import (
    find_instance,
    hosts_inventory,
)
from kvmfleet.compute.errors import OperationFailed
from kvmfleet.compute.services import host_status
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Host, Image, Instance, Project, ServerGroup
from kvmfleet.store.states import PowerState, VmState

# -- read-only ------------------------------------------------------------------------------------


def console_log(store: Any, key: str, lines: int = 50, project: str | None = None) -> str:
    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        if inst.host is None:
            raise OperationFailed(f"server {inst.name} has no host")
        host, uuid, name = inst.host, inst.uuid, inst.name
        inv = hosts_inventory(session, [host])
    result = executor.run(executor.Job(playbook="instance_action.yml", inventory=inv, extravars={
        "kvmfleet_action": "console_log", "kvmfleet_console_lines": int(lines),
        "kvmfleet_instances": {host: [{"name": f"kvmfleet-{uuid}", "uuid": uuid}]}}))
    tr = result.host(host).task_result("Read the serial console log")
    if tr is None or tr.status.value in ("failed", "unreachable"):
        raise OperationFailed(f"console log of server {name}: {result.error_for(host) or 'not readable'}")
    items = tr.result.get("results") or []
    return str(items[0].get("stdout", "")) if items else ""


def server_dict(session: Any, inst: Instance, detail: bool = False) -> dict[str, Any]:
    project = session.get(Project, inst.project_id)
    image = session.get(Image, inst.image_id) if inst.image_id else None
    group = session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None
    out: dict[str, Any] = {
        "id": inst.uuid, "name": inst.name, "status": inst.status, "vm_state": str(inst.vm_state),
        "task_state": str(inst.task_state) if inst.task_state else None, "power_state": str(inst.power_state),
        "host": inst.host, "flavor": inst.flavor_name, "image": image.name if image else None,
        "project": project.name if project else inst.project_id,
        "server_group": group.name if group else None,
        "host_status": host_status(session.scalars(select(Host).where(Host.name == inst.host)).first()
                                   if inst.host else None),
    }
    if detail:
        out.update({
            "vcpus": inst.vcpus, "memory_mb": inst.memory_mb, "root_gb": inst.root_gb,
            "ephemeral_gb": inst.ephemeral_gb, "availability_zone": inst.availability_zone,
            "domain": inst.domain_name, "hostname": inst.config.get("hostname"),
            "network": inst.config.get("network"), "macs": inst.config.get("macs"),
            "old_flavor": (inst.old_flavor or {}).get("flavor_name"),
            "new_flavor": (inst.new_flavor or {}).get("flavor_name"),
            # As Nova's API: the fault shows while the server is in ERROR; an earlier failure the server got
            # past (a build retried elsewhere, a refused action) stays in `server events`.
            "fault": inst.fault_message if inst.vm_state in (VmState.ERROR, VmState.DELETED) else None,
            "created_at": inst.created_at.isoformat() if inst.created_at else None,
            "launched_at": inst.launched_at.isoformat() if inst.launched_at else None,
            "power_state_code": PowerState(inst.power_state).code,
        })
    return out


def list_servers(store: Any, project: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
    with store.transaction() as session:
        query = select(Instance).where(Instance.deleted_at.is_(None)).order_by(Instance.created_at, Instance.name)
        if project:
            query = query.where(Instance.project_id == store_api.get_project(session, project).id)
        if host:
            query = query.where(Instance.host == host)
        return [server_dict(session, i) for i in session.scalars(query).all()]


def show_server(store: Any, key: str, project: str | None = None) -> dict[str, Any]:
    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        return server_dict(session, inst, detail=True)


def server_events(store: Any, key: str, project: str | None = None) -> list[dict[str, Any]]:
    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        return actions.events_for(session, inst.uuid)
