"""What every lifecycle module shares: names and their rules, lookups, the instance's data for the
playbooks, and the begin/finish pair every operation on an existing instance runs under.

Every operation first checks the instance's state, then records its task_state, action and first event
in one committed transaction (compare-and-set on task_state), and only then runs the executor
(principles 3 and 8). The outcome is recorded with another compare-and-set on the task_state the
operation set, so a concurrent operation can never be overwritten.
"""

from __future__ import annotations

import contextvars
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from kvmfleet import executor
from kvmfleet.compute import actions
from kvmfleet.compute import hosts as hostops
from kvmfleet.compute.errors import InvalidRequest, OperationFailed
from kvmfleet.compute.states import ACTION_NAME, OPERATIONS, Operation
from kvmfleet.scheduler.claims import release_in
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Host, Image, Instance, Project, ServerGroup
from kvmfleet.store.states import VmState

Progress = Callable[[str, str], None]  # (instance uuid, message)
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
MAX_USER_DATA = 65535  # Nova's limit on user_data (bytes)
DEFAULT_PROJECT = "default"
DEFAULT_NETWORK = "default"
GIB = 1024 ** 3
CREATE_TASK = "Define and start instances"
REBUILD_TASK = "Define and start on a fresh root disk"
DELETE_TASK = "Remove instances"


def noop(_uuid: str, _msg: str) -> None:
    return None


def validate_name(name: str, what: str = "server name") -> str:
    """A name that reaches hosts (hosts, networks, availability zones, image cache names): strict."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidRequest(f"invalid {what} {name!r}: 1-64 characters of [A-Za-z0-9._-], "
                             "not starting with '-' or '.'")
    return name


def _printable(ch: str) -> bool:
    return not unicodedata.category(ch).startswith("C")  # Nova's _build_regex_range leaves out C*


def validate_display_name(name: Any, what: str = "server name", max_length: int = 255) -> str:
    """Nova's parameter_types.name: 1-255 printable characters (any script), not starting or ending with
    whitespace. Stored and shown as given; it never becomes a libvirt name or a host command."""
    if not isinstance(name, str) or not 1 <= len(name) <= max_length:
        raise InvalidRequest(f"invalid {what}: 1-{max_length} characters expected")
    if not all(_printable(c) for c in name):
        raise InvalidRequest(f"invalid {what}: printable characters only")
    if name[0].isspace() or name[-1].isspace():
        raise InvalidRequest(f"invalid {what}: it can not start or end with whitespace")
    return name


def validate_description(text: Any, max_length: int = 255) -> str | None:
    """Nova's description: None or 0-255 printable characters (whitespace allowed)."""
    if text is None:
        return None
    if not isinstance(text, str) or len(text) > max_length:
        raise InvalidRequest(f"invalid description: at most {max_length} characters expected")
    if not all(_printable(c) or c.isspace() for c in text):
        raise InvalidRequest("invalid description: printable characters only")
    return text


def hostname_for(name: str, index: int | None = None) -> str:
    """The guest's hostname from its display name (Nova's sanitize_hostname): lower case ASCII letters,
    digits and '-', at most 63 characters; `index` (1-based) suffixes a member of a multi-create."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    label = re.sub(r"[^a-z0-9-]+", "-", ascii_name.lower()).strip("-")
    suffix = f"-{index}" if index is not None else ""
    label = label[:63 - len(suffix)].strip("-")
    return (label or "server") + suffix


def image_cache_name(image: Image) -> str:
    return f"sha256-{image.sha256[:40]}.{image.disk_format}"  # by content: a re-registered file is a new name


def image_ref(image: Image) -> dict[str, str]:
    """What a playbook's image module call needs to cache the image on a host."""
    return {"name": image_cache_name(image), "src": image.file_path, "sha256": image.sha256,
            "format": image.disk_format}


# -- lookups --------------------------------------------------------------------------------------


def find_instance(session: Any, key: str, project_id: str | None = None) -> Instance:
    """An instance by uuid, or by name (unique among live instances, within the project if given)."""
    inst = session.get(Instance, key)
    if inst is not None and inst.deleted_at is None:
        return inst
    query = select(Instance).where(Instance.name == key, Instance.deleted_at.is_(None))
    if project_id:
        query = query.where(Instance.project_id == project_id)
    rows = session.scalars(query).all()
    if not rows:
        raise NotFound(f"server {key} not found", server=key)
    if len(rows) > 1:
        raise InvalidRequest(f"server name {key} is ambiguous ({', '.join(r.uuid for r in rows)}): use the id")
    return rows[0]


def project_for(session: Any, key: str | None) -> Project:
    if key:
        return store_api.get_project(session, key)
    row = session.scalars(select(Project).where(Project.name == DEFAULT_PROJECT)).first()
    if row is None:
        row = Project(name=DEFAULT_PROJECT, description="created by kvmfleet for requests without --project")
        session.add(row)
        session.flush()
    return row


# -- instance data for the playbooks --------------------------------------------------------------


def domain_spec(session: Any, inst: Instance, image: Image) -> dict[str, Any]:
    project = session.get(Project, inst.project_id)
    group = session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None
    from kvmfleet.compute import nics as nic_ops

    macs = list(inst.config.get("macs") or [])
    networks = instance_networks(inst)
    nics = nic_ops.nic_specs(session, inst, networks, macs)
    root: dict[str, Any] = {"image": image_cache_name(image), "format": image.disk_format}
    if inst.root_gb:
        root["size_gb"] = inst.root_gb
    if inst.config.get("boot_volume"):
        from kvmfleet.compute.volume_ops import root_disk_of

        root.update(root_disk_of(session, inst) or {})
        root.pop("size_gb", None)
    return {
        "name": inst.domain_name, "uuid": inst.uuid, "vcpus": inst.vcpus, "memory_mb": inst.memory_mb,
        "root_disk": root,
        "disks": [{"size_gb": inst.ephemeral_gb}] if inst.ephemeral_gb else [],
        "nics": nics,
        "metadata": {"uuid": inst.uuid, "name": inst.name, "project": project.name if project else inst.project_id,
                     "flavor": inst.flavor_name, "image": image.name, "server_group": group.name if group else "",
                     "created_at": inst.created_at.isoformat() if inst.created_at else ""},
        "config_drive": {"hostname": inst.config.get("hostname") or hostname_for(inst.name),
                         "instance_id": inst.uuid, **nic_ops.seed(session, inst, networks, macs)},
        "image": image_ref(image),
    }


def instance_networks(inst: Instance) -> list[str]:
    """The networks of the instance's NICs, in order ("networks" since the API; "network" before)."""
    if "networks" in inst.config:
        return [str(n) for n in inst.config["networks"] or []]
    network = inst.config.get("network", DEFAULT_NETWORK)
    return [network] if network else []


def hosts_inventory(session: Any, names: Iterable[str]) -> dict[str, Any]:
    hosts = session.scalars(select(Host).where(Host.name.in_(sorted(set(names))))).all()
    return hostops.inventory(hosts)


def statuses(store: Any, uuids: list[str]) -> dict[str, str]:
    def read(session: Any) -> dict[str, str]:
        rows = {u: session.get(Instance, u) for u in uuids}
        return {u: row.status if row is not None else "DELETED" for u, row in rows.items()}

    return store.run_in_transaction(read)


def release(store: Any, uuid: str) -> list[str]:
    """Release the instance's allocations in a transaction of its own (retried when the store is busy)."""
    return store.run_in_transaction(lambda session: release_in(session, uuid))


def last_action(session: Any, uuid: str, name: str) -> Any:
    from kvmfleet.store.models import InstanceAction

    row = session.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == uuid,
                                                       InstanceAction.action == name)
                          .order_by(InstanceAction.id.desc())).first()
    if row is None:
        raise NotFound(f"no {name} action recorded for instance {uuid}")
    return row


def open_event(session: Any, action_id: int, name: str) -> int:
    from kvmfleet.store.models import InstanceActionEvent

    row = session.scalars(select(InstanceActionEvent).where(
        InstanceActionEvent.action_id == action_id, InstanceActionEvent.event == name,
        InstanceActionEvent.finish_time.is_(None)).order_by(InstanceActionEvent.id.desc())).first()
    if row is None:
        row = actions.start_event(session, action_id, name)
    return row.id


def item_outcome(result: executor.JobResult, host: str, uuid: str, task: str) -> tuple[bool, str, dict[str, Any]]:
    """Did instance `uuid` come up in this job? (ok, error message, the domain module's `domain`)."""
    hr = result.host(host)
    tr = hr.task_result(task)
    if tr is not None:
        for item in tr.result.get("results") or []:
            if (item.get("item") or {}).get("uuid") != uuid:
                continue
            if item.get("failed") or item.get("unreachable"):
                return False, str(item.get("msg") or "failed"), {}
            return True, "", item.get("domain") or {}
    error = hr.error or result.error_for(host) or "the host did not run the task"
    return False, error, {}


# -- operations on existing instances ---------------------------------------------------------


@dataclass
class Begun:
    """An operation recorded on an instance (task_state, action, first event): what its runner needs.
    Kept in the task row's params so another process can run or recover it."""

    uuid: str
    name: str
    host: str | None
    vm_state: VmState
    action_id: int
    event_id: int
    op: Operation
    op_name: str = ""

    def to_params(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "vm_state": str(self.vm_state), "action_id": self.action_id,
                "event_id": self.event_id, "op": self.op_name or self.op.action}

    @classmethod
    def from_params(cls, uuid: str, params: dict[str, Any]) -> Begun:
        op_name = params["op"]
        return cls(uuid, params["name"], params.get("host"), VmState(params["vm_state"]), int(params["action_id"]),
                   int(params["event_id"]), OPERATIONS[op_name], op_name)


def begin_in(session: Any, inst: Instance, op_name: str, event: str, *, request_id: str | None = None,
             user_id: str | None = None, extra: dict[str, Any] | None = None, check: bool = True) -> Begun:
    """Inside the caller's transaction: check the state (unless `check` is False: a delete is taken in any
    state) and record task_state + action + first event (compare-and-set on the states read)."""
    op = OPERATIONS[op_name]
    if check:
        op.check(inst.vm_state, inst.task_state, inst.name)
    try:
        store_api.save_instance(session, inst.uuid, {"task_state": op.task_state, **(extra or {})},
                                expected_task_state=inst.task_state, expected_vm_state=inst.vm_state)
    except Conflict as exc:
        raise OperationFailed(f"cannot {op.action} server {inst.name}: {exc.msg}") from exc
    action = actions.start_action(session, inst.uuid, ACTION_NAME.get(op_name, op.action),
                                  request_id or actions.new_request_id(), inst.project_id, user_id)
    ev = actions.start_event(session, action.id, event, host=inst.host)
    return Begun(inst.uuid, inst.name, inst.host, VmState(inst.vm_state), action.id, ev.id, op, op_name)


def begin(store: Any, key: str, op_name: str, event: str, project: str | None = None,
          extra: dict[str, Any] | None = None) -> Begun:
    """Check the state and record task_state + action + event in one committed transaction."""

    def record(session: Any) -> Begun:
        project_id = store_api.get_project(session, project).id if project else None
        return begin_in(session, find_instance(session, key, project_id), op_name, event, extra=extra)

    return store.run_in_transaction(record)


# The running task's cancel check (a lost lease, a shutdown past its grace): every job polls it.
current_cancel: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar("current_cancel",
                                                                                          default=None)


class TaskCancelled(Exception):
    """The running task's job was cancelled (its lease was lost, or the service stopped past its grace):
    the instance is left as it is, for recovery."""


def run_job(job: executor.Job) -> executor.JobResult:
    """executor.run, raising TaskCancelled when the job was cancelled."""
    result = executor.run(job)
    if result.status is executor.JobStatus.CANCELED:
        raise TaskCancelled(f"job {result.id} ({job.playbook}) was cancelled")
    return result


def new_job(playbook: str, inventory: dict[str, Any], extravars: dict[str, Any] | None = None,
        **kwargs: Any) -> executor.Job:
    """An executor job that honours the running task's cancellation."""
    kwargs.setdefault("cancel_callback", current_cancel.get())
    return executor.Job(playbook=playbook, inventory=inventory, extravars=extravars or {}, **kwargs)


def finish(store: Any, b: Begun, ok: bool, values: dict[str, Any], job_id: str | None = None,
            error: str | None = None) -> None:
    def record(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"task_state": None, **values}, expected_task_state=b.op.task_state)
        if error:
            store_api.set_fault(session, b.uuid, error)
        actions.finish_event(session, b.event_id, ok, job_id=job_id, error=error)
        actions.finish_action(session, b.action_id, error)

    store.run_in_transaction(record)


def unreachable(result: executor.JobResult, host: str) -> bool:
    from kvmfleet.executor import HostStatus

    return result.host(host).status is HostStatus.UNREACHABLE or (
        not result.host(host).tasks and result.status is not executor.JobStatus.SUCCESSFUL)


def fail_op(store: Any, b: Begun, result: executor.JobResult, what: str) -> None:
    """A failed operation: an unreachable host leaves the instance ERROR; otherwise the task is undone and
    the fault recorded (Nova reverts task_state and keeps vm_state)."""
    error = result.error_for(b.host or "") or "failed"
    message = f"{what} of server {b.name} on host {b.host} failed: {error}"
    if unreachable(result, b.host or ""):
        finish(store, b, False, {"vm_state": VmState.ERROR}, result.id, message)
    else:
        finish(store, b, False, {}, result.id, message)
    raise OperationFailed(message, instance=b.uuid)


def run_on_host(store: Any, b: Begun, playbook: str, extravars: dict[str, Any],
                 secret_vars: tuple[str, ...] = ()) -> executor.JobResult:
    with store.transaction() as session:
        inv = hosts_inventory(session, [b.host])
    if not inv["all"]["children"]["kvm_hosts"]["hosts"]:
        raise OperationFailed(f"host {b.host} of server {b.name} is not in the store")
    return run_job(new_job(playbook, inv, extravars, secret_vars=secret_vars))


def status_of(store: Any, uuid: str) -> str:
    with store.transaction() as session:
        return session.get(Instance, uuid).status
