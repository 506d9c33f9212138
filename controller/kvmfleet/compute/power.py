"""Operations on a built instance in place: power actions, delete, rebuild, reset-state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kvmfleet import executor
from kvmfleet.compute import actions
from kvmfleet.compute.common import (
    DELETE_TASK,
    GIB,
    REBUILD_TASK,
    Begun,
    begin,
    domain_spec,
    fail_op,
    find_instance,
    finish,
    hosts_inventory,
    item_outcome,
    release,
    run_on_host,
    status_of,
    unreachable,
)
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.compute.states import OPERATIONS
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Image, Instance, utcnow
from kvmfleet.store.states import PowerState, TaskState, VmState


def power_action(store: Any, key: str, op_name: str, project: str | None = None,
                 stop_timeout: int = 60) -> str:
    """start, stop, reboot, reboot_hard, pause, unpause, suspend, resume. Returns the new status."""
    op = OPERATIONS[op_name]
    b = begin(store, key, op_name, f"compute_{op.playbook_action}_instance", project)
    if b.host is None:
        finish(store, b, False, {}, error=f"server {b.name} has no host")
        raise OperationFailed(f"cannot {op.action} server {b.name}: it has no host (it was never built)")
    result = run_on_host(store, b, "instance_action.yml", {
        "kvmfleet_action": op.playbook_action, "kvmfleet_stop_timeout": stop_timeout,
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
    """Delete servers in one executor job: each domain and its disks go from its host, then the allocation
    is released and the row soft-deleted. A server whose host fails or cannot be reached is left ERROR with
    the fault (its domain may still exist there). Returns the error messages of the servers not deleted."""
    begun = [begin(store, key, "delete", "compute_terminate_instance", project) for key in keys]
    placed = [b for b in begun if b.host is not None]
    # A server resized to another host and not confirmed yet also has its stopped copy on the source.
    sources: dict[str, str] = store.run_in_transaction(lambda session: {
        b.uuid: src for b in placed
        if (src := (session.get(Instance, b.uuid).old_flavor or {}).get("source_host")) and src != b.host})
    on_hosts = {b.uuid: [b.host] + ([sources[b.uuid]] if b.uuid in sources else []) for b in placed}
    result = None
    if placed:
        specs: dict[str, list[dict[str, Any]]] = {}
        for b in placed:
            for host in on_hosts[b.uuid]:
                specs.setdefault(host, []).append({"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid})
        inv = store.run_in_transaction(lambda session: hosts_inventory(session, specs))
        result = executor.run(executor.Job(playbook="instance_delete.yml", inventory=inv,
                                           extravars={"kvmfleet_instances": specs},
                                           forks=min(50, max(5, len(specs)))))
    errors = []
    for b in begun:
        if b.host is not None and result is not None:
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
                errors.append(message)
                continue
        release(store, b.uuid)
        now = utcnow()
        job_id = result.id if result and b.host else None

        def deleted(session: Any, b: Begun = b, now: Any = now, job_id: str | None = job_id) -> None:
            actions.finish_event(session, b.event_id, True, job_id=job_id)
            actions.finish_action(session, b.action_id)
            store_api.save_instance(session, b.uuid, {"vm_state": VmState.DELETED, "task_state": None,
                                                      "power_state": PowerState.NOSTATE, "terminated_at": now,
                                                      "deleted_at": now}, expected_task_state=TaskState.DELETING)

        store.run_in_transaction(deleted)
    return errors


# -- rebuild --------------------------------------------------------------------------------------


def rebuild(store: Any, key: str, image_key: str | None = None, project: str | None = None) -> str:
    """A fresh root disk from `image_key` (default: the current image); same uuid, name, flavor, MACs."""
    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        image = store_api.get_image(session, image_key) if image_key else (
            session.get(Image, inst.image_id) if inst.image_id else None)
        if image is None:
            raise InvalidRequest(f"server {inst.name} has no image any more: give one with --image")
        if image.status != "active" or not Path(image.file_path).is_file():
            raise InvalidRequest(f"image {image.name} is not usable (status {image.status}, file {image.file_path})")
        if inst.root_gb and image.virtual_size and inst.root_gb * GIB < image.virtual_size:
            raise InvalidRequest(f"image {image.name} is larger than server {inst.name}'s {inst.root_gb} GB root disk")
    b = begin(store, key, "rebuild", "compute_rebuild_instance", project)
    if b.host is None:
        finish(store, b, False, {}, error="no host")
        raise OperationFailed(f"cannot rebuild server {b.name}: it has no host (it was never built)")
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
    """Operator's way out of a stuck task (Nova's reset-state): ERROR (or ACTIVE), no task. Compare-and-set
    on the task_state seen, so it never overwrites a task that moved on meanwhile."""
    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        store_api.save_instance(session, inst.uuid, {"vm_state": VmState.ACTIVE if active else VmState.ERROR,
                                                     "task_state": None}, expected_task_state=inst.task_state)
        action = actions.start_action(session, inst.uuid, "reset_state", actions.new_request_id(), inst.project_id)
        actions.finish_action(session, action.id, f"reset from {inst.vm_state}/{inst.task_state}")
        return session.get(Instance, inst.uuid).status
