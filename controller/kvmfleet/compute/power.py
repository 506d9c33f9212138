"""Operations on a built instance in place: power actions, delete, rebuild, reset-state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from kvmfleet import executor
from kvmfleet.compute import actions, nics, volume_ops
from kvmfleet.compute.common import (
    DELETE_TASK,
    GIB,
    REBUILD_TASK,
    Begun,
    domain_spec,
    fail_op,
    finish,
    hosts_inventory,
    item_outcome,
    new_job,
    run_job,
    run_on_host,
    status_of,
    unreachable,
)
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.network import reconcile
from kvmfleet.scheduler.claims import release_in
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Allocation, Host, Image, Instance, utcnow
from kvmfleet.store.states import PowerState, TaskState, VmState


def power_action(store: Any, key: str, op_name: str, project: str | None = None,
                 stop_timeout: int = 60) -> str:
    """start, stop, reboot, reboot_hard, pause, unpause, suspend, resume, as a task owned by this process
    (kvmfleet.compute.tasks). Returns the new status."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, op_name, key, project=project, stop_timeout=stop_timeout)


def run_power(store: Any, b: Begun, stop_timeout: int = 60) -> str:
    """The recorded power action on the instance's host."""
    op = b.op
    if b.host is None:
        finish(store, b, False, {}, error=f"server {b.name} has no host")
        raise OperationFailed(f"cannot {op.action} server {b.name}: it has no host (it was never built)")
    result = run_on_host(store, b, "instance_action.yml", {
        "kvmfleet_action": op.playbook_action, "kvmfleet_stop_timeout": int(stop_timeout),
        "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid}]}})
    if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
        fail_op(store, b, result, op.action)
    finish(store, b, True, {"vm_state": op.done_vm_state, "power_state": op.done_power_state}, result.id)
    return status_of(store, b.uuid)


def delete(store: Any, key: str, project: str | None = None) -> None:
    """Delete one server (see delete_many)."""
    failed = delete_many(store, [key], project)
    if failed:
        raise OperationFailed(failed[0])


def delete_many(store: Any, keys: list[str], project: str | None = None) -> list[str]:
    """Delete servers, in any state, as tasks owned by this process (one batch, one executor job; see
    run_delete). Returns the error messages of the servers not deleted."""
    from kvmfleet.compute import tasks

    return tasks.run_inline_many(store, "delete", keys, project=project)


def _holding_hosts(session: Any, uuid: str) -> list[str]:
    """Every host that may hold a copy of the instance: its host, the source of a resize not confirmed,
    and any host it holds an allocation on (the destination of a move under way)."""
    inst = session.get(Instance, uuid)
    hosts = [inst.host] if inst.host else []
    source = (inst.old_flavor or {}).get("source_host")
    if source:
        hosts.append(source)
    hosts += session.scalars(select(Host.name).join(Allocation, Allocation.host_id == Host.id)
                             .where(Allocation.instance_uuid == uuid)).all()
    return sorted(set(hosts))


def run_delete(store: Any, begun: list[Begun]) -> dict[str, str]:
    """Delete recorded servers in one executor job: each domain and its disks go from every host that may
    hold a copy, then the allocations are released and the row soft-deleted. A server whose host fails or
    cannot be reached is left ERROR with the fault (its domain may still exist there; host refresh reaps
    it once the host answers). Returns {uuid: error} of the servers not deleted."""
    on_hosts: dict[str, list[str]] = store.run_in_transaction(
        lambda session: {b.uuid: _holding_hosts(session, b.uuid) for b in begun})
    result = None
    specs: dict[str, list[dict[str, Any]]] = {}
    for b in begun:
        for host in on_hosts[b.uuid]:
            specs.setdefault(host, []).append({"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid})
    if specs:
        inv = store.run_in_transaction(lambda session: hosts_inventory(session, specs))
        result = run_job(new_job("instance_delete.yml", inv, {"kvmfleet_instances": specs},
                                      forks=min(50, max(5, len(specs)))))
    errors: dict[str, str] = {}
    tenant_hosts: set[str] = set()
    for b in begun:
        if on_hosts[b.uuid] and result is not None:
            failed = None
            for host in on_hosts[b.uuid]:
                ok, error, _ = item_outcome(result, host, b.uuid, DELETE_TASK)
                if not ok:
                    failed = (host, error)
                    break
            if failed:
                message = f"delete of server {b.name} on host {failed[0]} failed: {failed[1]}"
                values = {"vm_state": VmState.ERROR} if unreachable(result, failed[0]) else {}
                finish(store, b, False, values, result.id, message)
                errors[b.uuid] = message
                continue
        now = utcnow()
        job_id = result.id if result and on_hosts[b.uuid] else None

        def deleted(session: Any, b: Begun = b, now: Any = now, job_id: str | None = job_id) -> list[str]:
            store_api.save_instance(session, b.uuid, {"vm_state": VmState.DELETED, "task_state": None,
                                                      "power_state": PowerState.NOSTATE, "terminated_at": now,
                                                      "deleted_at": now}, expected_task_state=TaskState.DELETING)
            release_in(session, b.uuid)
            ports = nics.release_in(session, b.uuid)  # its addresses free again
            actions.finish_event(session, b.event_id, True, job_id=job_id)
            actions.finish_action(session, b.action_id)
            return volume_ops.release_in(session, b.uuid), ports  # its volumes detached (the domain is gone)

        volume_ids, ports = store.run_in_transaction(deleted)
        for volume_id in volume_ids:  # delete_on_termination
            volume_ops.run_logged(store, volume_id)
        if ports:
            tenant_hosts.update(on_hosts[b.uuid])
    if tenant_hosts:
        reconcile.converge(store, tenant_hosts, raise_on_error=False)  # filters and networks no longer needed
    return errors


# -- rebuild --------------------------------------------------------------------------------------


def rebuild(store: Any, key: str, image_key: str | None = None, project: str | None = None,
            name: str | None = None) -> str:
    """A fresh root disk from `image_key` (default: the current image); same uuid, flavor, MACs; `name`
    renames the server (Nova's rebuild takes one). Runs as a task owned by this process."""
    from kvmfleet.compute import tasks

    return tasks.run_inline(store, "rebuild", key, project=project, image=image_key, name=name)


def rebuild_image(session: Any, inst: Instance, image_key: str | None) -> Image:
    """The image a rebuild uses, checked (usable, fits the root disk)."""
    image = store_api.get_image(session, image_key) if image_key else (
        session.get(Image, inst.image_id) if inst.image_id else None)
    if image is None:
        raise InvalidRequest(f"server {inst.name} has no image any more: give one with --image")
    if image.status != "active" or not image.file_path or not Path(image.file_path).is_file():
        raise InvalidRequest(f"image {image.name} is not usable (status {image.status}, file {image.file_path})")
    if inst.root_gb and image.virtual_size and inst.root_gb * GIB < image.virtual_size:
        raise InvalidRequest(f"image {image.name} is larger than server {inst.name}'s {inst.root_gb} GB root disk")
    return image


def run_rebuild(store: Any, b: Begun, image_id: str) -> str:
    """The recorded rebuild on the instance's host."""
    if b.host is None:
        finish(store, b, False, {}, error="no host")
        raise OperationFailed(f"cannot rebuild server {b.name}: it has no host (it was never built)")
    with store.transaction() as session:
        image = store_api.get_image(session, image_id)
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        spec = domain_spec(session, inst, image)
        spec["state"] = "stopped" if b.vm_state is VmState.STOPPED else "running"
        user_data = {b.uuid: inst.config["user_data"]} if inst.config.get("user_data") is not None else {}
    result = run_on_host(store, b, "instance_rebuild.yml", {
        "kvmfleet_instances": {b.host: [spec]}, "kvmfleet_user_data": user_data},
        secret_vars=("kvmfleet_user_data",))
    ok, error, _domain = item_outcome(result, b.host, b.uuid, REBUILD_TASK)
    if not ok:
        # The old root disk is gone once the rebuild started: the instance is ERROR until rebuilt again.
        message = f"rebuild of server {b.name} on host {b.host} failed: {error}"
        finish(store, b, False, {"vm_state": VmState.ERROR, "power_state": PowerState.NOSTATE}, result.id, message)
        raise OperationFailed(message)
    stopped = spec["state"] == "stopped"
    finish(store, b, True, {"vm_state": VmState.STOPPED if stopped else VmState.ACTIVE, "image_id": image.id,
                             "power_state": PowerState.SHUTDOWN if stopped else PowerState.RUNNING}, result.id)
    return status_of(store, b.uuid)


def reset_state(store: Any, key: str, active: bool = False, project: str | None = None) -> str:
    """Operator's way out of a stuck task (Nova's reset-state): ERROR (or ACTIVE), no task; see
    kvmfleet.compute.tasks.submit(op="reset_state")."""
    from kvmfleet.compute import tasks

    uuid = tasks.submit(store, "reset_state", key, project=project, active=active)
    return status_of(store, uuid)


def reset_state_in(session: Any, inst: Instance, active: bool, request_id: str | None = None,
                   user_id: str | None = None) -> None:
    """Inside the caller's transaction: ERROR (or ACTIVE), no task. Compare-and-set on the task_state seen, so
    it never overwrites a task that moved on meanwhile."""
    store_api.save_instance(session, inst.uuid, {"vm_state": VmState.ACTIVE if active else VmState.ERROR,
                                                 "task_state": None}, expected_task_state=inst.task_state)
    action = actions.start_action(session, inst.uuid, "reset_state", request_id or actions.new_request_id(),
                                  inst.project_id, user_id)
    actions.finish_action(session, action.id, f"reset from {inst.vm_state}/{inst.task_state}")
