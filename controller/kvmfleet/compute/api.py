"""The instance lifecycle: one function per operation (Nova's compute API + conductor + compute manager).

Every operation first checks the instance's state, then records its task_state, action and first event
in one committed transaction (compare-and-set on task_state), and only then runs the executor
(principles 3 and 8). The outcome is recorded with another compare-and-set on the task_state the
operation set, so a concurrent operation can never be overwritten.

Create: validate -> quota check + instance rows (BUILDING/SCHEDULING) committed -> scheduler with
alternates -> claim (compare-and-set; a lost race moves on to the next candidate) -> quota re-check ->
one executor job for all placed instances (instance_create.yml) -> ACTIVE, or fault + claim released +
retry on an alternate (bounded by scheduler max_attempts; the host's failed_builds count feeds the
BuildFailureWeigher) -> ERROR with the fault when every attempt failed; the playbook removes whatever a
failed build left on its host.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from kvmfleet import executor, quota
from kvmfleet.compute import actions, placement
from kvmfleet.compute import hosts as hostops
from kvmfleet.compute.errors import InvalidRequest, NoValidHostFound, OperationFailed
from kvmfleet.compute.states import OPERATIONS, Operation
from kvmfleet.scheduler import NoValidHost
from kvmfleet.scheduler.claims import (
    ClaimConflict,
    InsufficientResources,
    Resources,
    move_claim,
    release_in,
    revert_move,
)
from kvmfleet.scheduler.claims import confirm_move as confirm_move_claim
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import Conflict, NotFound
from kvmfleet.store.models import Flavor, Host, Image, Instance, Project, ServerGroup, utcnow
from kvmfleet.store.states import PowerState, TaskState, VmState

Progress = Callable[[str, str], None]  # (instance uuid, message)
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
MAX_USER_DATA = 65535  # Nova's limit on user_data (bytes)
DEFAULT_PROJECT = "default"
DEFAULT_NETWORK = "default"
GIB = 1024 ** 3
CREATE_TASK = "Define and start instances"
REBUILD_TASK = "Define and start on a fresh root disk"
DELETE_TASK = "Remove instances"


def _noop(_uuid: str, _msg: str) -> None:
    return None


def validate_name(name: str, what: str = "server name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidRequest(f"invalid {what} {name!r}: 1-64 characters of [A-Za-z0-9._-], "
                             "not starting with '-' or '.'")
    return name


def hostname_for(name: str) -> str:
    """A DNS label from the user's name (Nova sanitises display names the same way)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "server"


def image_cache_name(image: Image) -> str:
    return f"sha256-{image.sha256[:40]}.{image.disk_format}"  # by content: a re-registered file is a new name


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


def _project(session: Any, key: str | None) -> Project:
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
    network = inst.config.get("network", DEFAULT_NETWORK)
    macs = list(inst.config.get("macs") or [])
    nics = []
    if network:
        nic: dict[str, Any] = {"network": network}
        if macs:
            nic["mac"] = macs[0]
        nics.append(nic)
    root: dict[str, Any] = {"image": image_cache_name(image), "format": image.disk_format}
    if inst.root_gb:
        root["size_gb"] = inst.root_gb
    return {
        "name": inst.domain_name, "uuid": inst.uuid, "vcpus": inst.vcpus, "memory_mb": inst.memory_mb,
        "root_disk": root,
        "disks": [{"size_gb": inst.ephemeral_gb}] if inst.ephemeral_gb else [],
        "nics": nics,
        "metadata": {"uuid": inst.uuid, "name": inst.name, "project": project.name if project else inst.project_id,
                     "flavor": inst.flavor_name, "image": image.name, "server_group": group.name if group else "",
                     "created_at": inst.created_at.isoformat() if inst.created_at else ""},
        "config_drive": {"hostname": inst.config.get("hostname") or hostname_for(inst.name),
                         "instance_id": inst.uuid},
        "image": {"name": image_cache_name(image), "src": image.file_path, "sha256": image.sha256,
                  "format": image.disk_format},
    }


def _hosts_inventory(session: Any, names: Iterable[str]) -> dict[str, Any]:
    hosts = session.scalars(select(Host).where(Host.name.in_(sorted(set(names))))).all()
    return hostops.inventory(hosts)


# -- create ---------------------------------------------------------------------------------------


@dataclass
class CreateRequest:
    name: str
    flavor: str
    image: str
    project: str | None = None
    server_group: str | None = None
    count: int = 1
    availability_zone: str | None = None
    user_data: str | None = None
    network: str | None = DEFAULT_NETWORK
    user_id: str | None = None


@dataclass
class _Validated:
    project: Project
    flavor: Flavor
    image: Image
    group: ServerGroup | None
    names: list[str]


def _validate(session: Any, req: CreateRequest) -> _Validated:
    validate_name(req.name)
    if isinstance(req.count, bool) or not isinstance(req.count, int) or req.count < 1:
        raise InvalidRequest(f"count must be a positive integer, got {req.count!r}")
    if req.availability_zone is not None:
        validate_name(req.availability_zone, "availability zone")
    if req.network:
        validate_name(req.network, "network name")
    if req.user_data is not None and len(req.user_data.encode()) > MAX_USER_DATA:
        raise InvalidRequest(f"user data is {len(req.user_data.encode())} bytes, the limit is {MAX_USER_DATA}")
    project = _project(session, req.project)
    if not project.enabled:
        raise InvalidRequest(f"project {project.name} is disabled")
    flavor = store_api.get_flavor(session, req.flavor)
    if flavor.disabled:
        raise InvalidRequest(f"flavor {flavor.name} is disabled")
    image = store_api.get_image(session, req.image)
    if image.status != "active":
        raise InvalidRequest(f"image {image.name} is {image.status}, not active")
    if not Path(image.file_path).is_file():
        raise InvalidRequest(f"image {image.name}: file {image.file_path} is missing on the controller")
    if flavor.root_gb and image.virtual_size and flavor.root_gb * GIB < image.virtual_size:
        raise InvalidRequest(f"flavor {flavor.name}'s {flavor.root_gb} GB root disk is smaller than image "
                             f"{image.name} ({image.virtual_size / GIB:.2f} GB)")
    if image.min_ram and flavor.memory_mb < image.min_ram:
        raise InvalidRequest(f"flavor {flavor.name} has {flavor.memory_mb} MB, image {image.name} needs "
                             f"{image.min_ram} MB")
    group = store_api.get_server_group(session, req.server_group, project.id) if req.server_group else None
    names = [req.name] if req.count == 1 else [f"{req.name}-{i}" for i in range(1, req.count + 1)]
    return _Validated(project, flavor, image, group, names)


def dry_run(store: Any, req: CreateRequest) -> dict[str, Any]:
    """The scheduler's explanation for one instance of the request; nothing is stored."""
    session = store.session()
    try:
        v = _validate(session, req)
        spec = placement.request_spec(session, v.flavor.as_dict(), v.image, availability_zone=req.availability_zone,
                                      project_id=v.project.id, group=v.group)
        states = placement.host_states(session)
        explanation = placement.make_scheduler().explain(spec, states).to_dict()
    finally:
        session.rollback()  # _project may have added the default project: keep nothing
        session.close()
    weighed = explanation.get("weighed") or []
    explanation["chosen"] = weighed[0]["host"] if weighed else None
    explanation["quota"] = None
    return explanation


def _schedulable(session: Any, v: _Validated, req: CreateRequest) -> None:
    """Refuse, before anything is stored, a request the scheduler cannot place now (every member of it).
    Nothing is claimed here: the build schedules again and claims, so capacity taken meanwhile by a
    concurrent request still ends that build in ERROR with No valid host (Nova's late NoValidHost)."""
    spec = placement.request_spec(session, v.flavor.as_dict(), v.image, availability_zone=req.availability_zone,
                                  project_id=v.project.id, group=v.group, num_instances=len(v.names))
    try:
        placement.make_scheduler().select_destinations(spec, placement.host_states(session), alternates=0)
    except NoValidHost as exc:
        raise NoValidHostFound(exc.msg + " Nothing was created.", filter=exc.filter_name) from exc


def create(store: Any, req: CreateRequest) -> tuple[str, list[str]]:
    """Validate and persist the request: instance rows in BUILDING/SCHEDULING, each with its create action
    and schedule event, committed before any host is touched. Returns (request id, instance uuids)."""
    request_id = actions.new_request_id()

    def persist(session: Any) -> list[str]:
        v = _validate(session, req)
        quota.check(session, v.project, quota.flavor_deltas(v.flavor, req.count))
        _schedulable(session, v, req)
        uuids = []
        for name in v.names:
            config: dict[str, Any] = {"hostname": hostname_for(name), "network": req.network or "",
                                      "request_id": request_id}
            if req.user_data is not None:
                config["user_data"] = req.user_data
            inst = Instance(name=name, project_id=v.project.id, user_id=req.user_id, image_id=v.image.id,
                            availability_zone=req.availability_zone, server_group_id=v.group.id if v.group else None,
                            vm_state=VmState.BUILDING, task_state=TaskState.SCHEDULING,
                            power_state=PowerState.NOSTATE, config=config, **v.flavor.as_instance_fields())
            session.add(inst)
            session.flush()
            action = actions.start_action(session, inst.uuid, "create", request_id, v.project.id, req.user_id)
            actions.start_event(session, action.id, "schedule_instances")
            uuids.append(inst.uuid)
        return uuids

    return request_id, store.run_in_transaction(persist)


@dataclass
class _Build:
    uuid: str
    action_id: int
    candidates: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    host: str | None = None
    event_id: int | None = None


def build(store: Any, uuids: list[str], progress: Progress | None = None, timeout: int | None = None) -> dict[str, str]:
    """Schedule, claim and build persisted instances (all from one create request). Returns
    {uuid: final status}. Never raises for a failed build: the instance records the fault. If the build
    itself breaks (the store unreachable or locked for too long), the instances it left mid-task are put
    in ERROR with their claims released, as far as the store lets us, and the error is raised."""
    try:
        return _build(store, uuids, progress, timeout)
    except Exception as exc:
        _abandon(store, uuids, f"build interrupted: {type(exc).__name__}: {exc}"[:1000])
        raise


def _abandon(store: Any, uuids: list[str], message: str) -> None:
    from sqlalchemy.exc import OperationalError

    def abandon(session: Any, uuid: str) -> None:
        inst = session.get(Instance, uuid)
        if inst is None or inst.task_state not in (TaskState.SCHEDULING, TaskState.SPAWNING):
            return
        release_in(session, uuid)
        store_api.save_instance(session, uuid, {"vm_state": VmState.ERROR, "task_state": None,
                                                "host": None, "node": None}, expected_task_state=inst.task_state)
        store_api.set_fault(session, uuid, message)

    for uuid in uuids:
        try:
            store.run_in_transaction(lambda session, uuid=uuid: abandon(session, uuid))
        except (OperationalError, Conflict):
            continue  # as far as the store lets us: the next instance may still be put right


def _build(store: Any, uuids: list[str], progress: Progress | None, timeout: int | None) -> dict[str, str]:
    progress = progress or _noop
    sf = store.session_factory
    scheduler = placement.make_scheduler()
    max_attempts = scheduler.config.max_attempts

    def load(session: Any) -> tuple[Any, ...]:
        insts = [store_api.get_instance(session, u) for u in uuids]
        first = insts[0]
        image = session.get(Image, first.image_id) if first.image_id else None
        group = session.get(ServerGroup, first.server_group_id) if first.server_group_id else None
        flavor = {"name": first.flavor_name, "vcpus": first.vcpus, "memory_mb": first.memory_mb,
                  "root_gb": first.root_gb, "ephemeral_gb": first.ephemeral_gb, "swap": first.swap,
                  "extra_specs": dict(first.flavor_extra_specs or {})}
        resources = Resources.from_flavor(flavor)
        builds = {}
        for inst in insts:
            action = _last_action(session, inst.uuid, "create")
            builds[inst.uuid] = _Build(inst.uuid, action.id)
        spec = placement.request_spec(session, flavor, image, availability_zone=first.availability_zone,
                                      project_id=first.project_id, group=group, num_instances=len(insts),
                                      exclude_members=uuids)
        return image, group, resources, builds, spec, placement.host_states(session)

    image, group, resources, builds, spec, states = store.run_in_transaction(load)
    if image is None:
        for b in builds.values():
            _fail_build(store, b, "the instance's image was deleted before it was built")
        return _statuses(store, uuids)
    for u in uuids:
        progress(u, "scheduling")
    try:
        selections = scheduler.select_destinations(spec, states, alternates=max_attempts - 1)
    except NoValidHost as exc:
        for b in builds.values():
            _fail_build(store, b, exc.msg, schedule_failed=True)
        return _statuses(store, uuids)
    for b, sel in zip(builds.values(), selections):
        b.candidates = [sel.name] + [a.name for a in sel.alternates]

    def scheduled(session: Any) -> None:
        for b in builds.values():
            actions.finish_event(session, _open_event(session, b.action_id, "schedule_instances"), True,
                                 details={"candidates": b.candidates})

    store.run_in_transaction(scheduled)

    pending = list(builds.values())
    attempt = 0
    while pending:
        attempt += 1
        placed: list[_Build] = []
        for b in pending:
            host, rest, refused = placement.claim_first(sf, b.uuid, b.candidates, resources, group, skip=b.tried)
            b.errors.extend(refused)
            b.candidates = rest
            if host is None:
                reason = "; ".join(b.errors[-3:]) or "no candidate host left"
                _fail_build(store, b, f"No valid host was found: {reason}")
                continue
            b.host = host
            placed.append(b)
        placed = _recheck_quota(store, placed)
        if not placed:
            break

        def spawning(session: Any, placed: list[_Build] = placed, attempt: int = attempt) -> tuple[Any, ...]:
            for b in placed:
                store_api.save_instance(session, b.uuid, {"task_state": TaskState.SPAWNING},
                                        expected_task_state=TaskState.SCHEDULING)
                b.event_id = actions.start_event(session, b.action_id, "compute__do_build_and_run_instance",
                                                 host=b.host, details={"attempt": attempt}).id
            specs: dict[str, list[dict[str, Any]]] = {}
            user_data: dict[str, str] = {}
            for b in placed:
                inst = session.get(Instance, b.uuid)
                specs.setdefault(b.host, []).append(domain_spec(session, inst, image))
                if inst.config.get("user_data") is not None:
                    user_data[b.uuid] = inst.config["user_data"]
            return specs, user_data, _hosts_inventory(session, specs)

        specs, user_data, inv = store.run_in_transaction(spawning)
        for b in placed:
            progress(b.uuid, f"building on {b.host} (attempt {attempt})")
        result = executor.run(executor.Job(
            playbook="instance_create.yml", inventory=inv, timeout=timeout,
            extravars={"kvmfleet_instances": specs, "kvmfleet_user_data": user_data},
            secret_vars=("kvmfleet_user_data",), forks=min(50, max(5, len(specs)))))
        retry: list[_Build] = []
        for b in placed:
            ok, error, domain = _item_outcome(result, b.host, b.uuid, CREATE_TASK)
            if ok:
                _build_succeeded(store, b, result.id, domain)
                progress(b.uuid, f"ACTIVE on {b.host}")
                continue
            b.errors.append(f"{b.host}: {error}")
            b.tried.append(b.host)
            _build_attempt_failed(store, b, result.id, error)
            if b.candidates and attempt < max_attempts:
                progress(b.uuid, f"build on {b.host} failed ({error}); retrying on another host")
                retry.append(b)
            else:
                why = "Exceeded maximum number of retries. " if attempt >= max_attempts and b.candidates else ""
                _fail_build(store, b, f"Build of instance {b.uuid} failed: {why}{b.errors[-1]}")
                progress(b.uuid, f"ERROR: {error}")
        pending = retry
    return _statuses(store, uuids)


def _statuses(store: Any, uuids: list[str]) -> dict[str, str]:
    return store.run_in_transaction(lambda session: {u: session.get(Instance, u).status for u in uuids})


def _release(store: Any, uuid: str) -> list[str]:
    """Release the instance's allocations in a transaction of its own (retried when the store is busy)."""
    return store.run_in_transaction(lambda session: release_in(session, uuid))


def _last_action(session: Any, uuid: str, name: str) -> Any:
    from kvmfleet.store.models import InstanceAction

    row = session.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == uuid,
                                                       InstanceAction.action == name)
                          .order_by(InstanceAction.id.desc())).first()
    if row is None:
        raise NotFound(f"no {name} action recorded for instance {uuid}")
    return row


def _open_event(session: Any, action_id: int, name: str) -> int:
    from kvmfleet.store.models import InstanceActionEvent

    row = session.scalars(select(InstanceActionEvent).where(
        InstanceActionEvent.action_id == action_id, InstanceActionEvent.event == name,
        InstanceActionEvent.finish_time.is_(None)).order_by(InstanceActionEvent.id.desc())).first()
    if row is None:
        row = actions.start_event(session, action_id, name)
    return row.id


def _item_outcome(result: executor.JobResult, host: str, uuid: str, task: str) -> tuple[bool, str, dict[str, Any]]:
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


def _recheck_quota(store: Any, placed: list[_Build]) -> list[_Build]:
    """Re-count after the claims committed; if a limit was lowered meanwhile the claims roll back."""
    if not placed:
        return placed

    def recheck(session: Any) -> str | None:
        project_id = session.get(Instance, placed[0].uuid).project_id
        try:
            quota.recheck(session, project_id)
        except quota.OverQuota as exc:
            return exc.msg
        return None

    message = store.run_in_transaction(recheck)
    if message is None:
        return placed
    for b in placed:
        _release(store, b.uuid)
        _fail_build(store, b, message)
    return []


def _build_succeeded(store: Any, b: _Build, job_id: str, domain: dict[str, Any]) -> None:
    def succeeded(session: Any) -> None:
        inst = session.get(Instance, b.uuid)
        config = dict(inst.config)
        macs = [n.get("mac") for n in domain.get("nics") or [] if n.get("mac")]
        if macs:
            config["macs"] = macs
        power = PowerState.from_libvirt(str(domain.get("state") or "running"))
        store_api.save_instance(session, b.uuid, {
            "vm_state": VmState.ACTIVE, "task_state": None, "power_state": power,
            "launched_at": utcnow(), "config": config}, expected_task_state=TaskState.SPAWNING)
        session.execute(update(Host).where(Host.name == b.host).values(failed_builds=0))
        actions.finish_event(session, b.event_id, True, job_id=job_id)
        actions.finish_action(session, b.action_id)

    store.run_in_transaction(succeeded)


def _build_attempt_failed(store: Any, b: _Build, job_id: str, error: str) -> None:
    _release(store, b.uuid)

    def attempt_failed(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"task_state": TaskState.SCHEDULING, "host": None, "node": None},
                                expected_task_state=TaskState.SPAWNING)
        store_api.set_fault(session, b.uuid, f"Build on {b.host} failed: {error}")
        session.execute(update(Host).where(Host.name == b.host).values(failed_builds=Host.failed_builds + 1))
        actions.finish_event(session, b.event_id, False, job_id=job_id, error=error)

    store.run_in_transaction(attempt_failed)
    b.host = None


def _fail_build(store: Any, b: _Build, message: str, schedule_failed: bool = False) -> None:
    """ERROR with the fault; nothing held (the claim was released, the playbook removed the domain)."""
    _release(store, b.uuid)

    def failed(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"vm_state": VmState.ERROR, "task_state": None,
                                                  "power_state": PowerState.NOSTATE, "host": None, "node": None},
                                expected_task_state=(TaskState.SCHEDULING, TaskState.SPAWNING))
        store_api.set_fault(session, b.uuid, message)
        if schedule_failed:
            actions.finish_event(session, _open_event(session, b.action_id, "schedule_instances"), False,
                                 error=message)
        actions.finish_action(session, b.action_id, message)

    store.run_in_transaction(failed)


# -- operations on existing instances ---------------------------------------------------------


@dataclass
class _Begun:
    uuid: str
    name: str
    host: str | None
    vm_state: VmState
    action_id: int
    event_id: int
    op: Operation


def _begin(store: Any, key: str, op_name: str, event: str, project: str | None = None,
           extra: dict[str, Any] | None = None) -> _Begun:
    """Check the state and record task_state + action + event in one committed transaction."""
    op = OPERATIONS[op_name]

    def begin(session: Any) -> _Begun:
        project_id = store_api.get_project(session, project).id if project else None
        inst = find_instance(session, key, project_id)
        op.check(inst.vm_state, inst.task_state, inst.name)
        try:
            store_api.save_instance(session, inst.uuid, {"task_state": op.task_state, **(extra or {})},
                                    expected_task_state=inst.task_state, expected_vm_state=inst.vm_state)
        except Conflict as exc:
            raise OperationFailed(f"cannot {op.action} server {inst.name}: {exc.msg}") from exc
        action = actions.start_action(session, inst.uuid, "reboot" if op_name == "reboot_hard" else op.action,
                                      actions.new_request_id(), inst.project_id)
        ev = actions.start_event(session, action.id, event, host=inst.host)
        return _Begun(inst.uuid, inst.name, inst.host, VmState(inst.vm_state), action.id, ev.id, op)

    return store.run_in_transaction(begin)


def _finish(store: Any, b: _Begun, ok: bool, values: dict[str, Any], job_id: str | None = None,
            error: str | None = None) -> None:
    def finish(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"task_state": None, **values}, expected_task_state=b.op.task_state)
        if error:
            store_api.set_fault(session, b.uuid, error)
        actions.finish_event(session, b.event_id, ok, job_id=job_id, error=error)
        actions.finish_action(session, b.action_id, error)

    store.run_in_transaction(finish)


def _unreachable(result: executor.JobResult, host: str) -> bool:
    from kvmfleet.executor import HostStatus

    return result.host(host).status is HostStatus.UNREACHABLE or (
        not result.host(host).tasks and result.status is not executor.JobStatus.SUCCESSFUL)


def _fail_op(store: Any, b: _Begun, result: executor.JobResult, what: str) -> None:
    """A failed operation: an unreachable host leaves the instance ERROR; otherwise the task is undone and
    the fault recorded (Nova reverts task_state and keeps vm_state)."""
    error = result.error_for(b.host or "") or "failed"
    message = f"{what} of server {b.name} on host {b.host} failed: {error}"
    if _unreachable(result, b.host or ""):
        _finish(store, b, False, {"vm_state": VmState.ERROR}, result.id, message)
    else:
        _finish(store, b, False, {}, result.id, message)
    raise OperationFailed(message, instance=b.uuid)


def _run_on_host(store: Any, b: _Begun, playbook: str, extravars: dict[str, Any],
                 secret_vars: tuple[str, ...] = ()) -> executor.JobResult:
    with store.transaction() as session:
        inv = _hosts_inventory(session, [b.host])
    if not inv["all"]["children"]["kvm_hosts"]["hosts"]:
        raise OperationFailed(f"host {b.host} of server {b.name} is not in the store")
    return executor.run(executor.Job(playbook=playbook, inventory=inv, extravars=extravars, secret_vars=secret_vars))


def power_action(store: Any, key: str, op_name: str, project: str | None = None,
                 stop_timeout: int = 60) -> str:
    """start, stop, reboot, reboot_hard, pause, unpause, suspend, resume. Returns the new status."""
    op = OPERATIONS[op_name]
    b = _begin(store, key, op_name, f"compute_{op.playbook_action}_instance", project)
    if b.host is None:
        _finish(store, b, False, {}, error=f"server {b.name} has no host")
        raise OperationFailed(f"cannot {op.action} server {b.name}: it has no host (it was never built)")
    result = _run_on_host(store, b, "instance_action.yml", {
        "kvmfleet_action": op.playbook_action, "kvmfleet_stop_timeout": stop_timeout,
        "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid}]}})
    if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
        _fail_op(store, b, result, op.action)
    _finish(store, b, True, {"vm_state": op.done_vm_state, "power_state": op.done_power_state}, result.id)
    return _status(store, b.uuid)


def _status(store: Any, uuid: str) -> str:
    with store.transaction() as session:
        return session.get(Instance, uuid).status


def delete(store: Any, key: str, project: str | None = None) -> None:
    """Delete one server (see delete_many)."""
    failed = delete_many(store, [key], project)
    if failed:
        raise OperationFailed(failed[0])


def delete_many(store: Any, keys: list[str], project: str | None = None) -> list[str]:
    """Delete servers in one executor job: each domain and its disks go from its host, then the allocation
    is released and the row soft-deleted. A server whose host fails or cannot be reached is left ERROR with
    the fault (its domain may still exist there). Returns the error messages of the servers not deleted."""
    begun = [_begin(store, key, "delete", "compute_terminate_instance", project) for key in keys]
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
        inv = store.run_in_transaction(lambda session: _hosts_inventory(session, specs))
        result = executor.run(executor.Job(playbook="instance_delete.yml", inventory=inv,
                                           extravars={"kvmfleet_instances": specs},
                                           forks=min(50, max(5, len(specs)))))
    errors = []
    for b in begun:
        if b.host is not None and result is not None:
            failed = None
            for host in on_hosts[b.uuid]:
                ok, error, _ = _item_outcome(result, host, b.uuid, DELETE_TASK)
                if not ok:
                    failed = (host, error)
                    break
            if failed:
                message = f"delete of server {b.name} on host {failed[0]} failed: {failed[1]}"
                values = {"vm_state": VmState.ERROR} if _unreachable(result, failed[0]) else {}
                _finish(store, b, False, values, result.id, message)
                errors.append(message)
                continue
        _release(store, b.uuid)
        now = utcnow()
        job_id = result.id if result and b.host else None

        def deleted(session: Any, b: _Begun = b, now: Any = now, job_id: str | None = job_id) -> None:
            actions.finish_event(session, b.event_id, True, job_id=job_id)
            actions.finish_action(session, b.action_id)
            store_api.save_instance(session, b.uuid, {"vm_state": VmState.DELETED, "task_state": None,
                                                      "power_state": PowerState.NOSTATE, "terminated_at": now,
                                                      "deleted_at": now}, expected_task_state=TaskState.DELETING)

        store.run_in_transaction(deleted)
    return errors


# -- resize ---------------------------------------------------------------------------------------


ROOT_DISK_FILE = "disk"  # the domain module's names for an instance's disks in its instance dir
EPHEMERAL_DISK_FILE = "disk.eph0"


def _resize_disks(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The instance's disks a resize carries, each with the size it grows to ({file, size_gb?})."""
    disks: list[dict[str, Any]] = [{"file": ROOT_DISK_FILE}]
    if new["root_gb"] and new["root_gb"] > old["root_gb"]:
        disks[0]["size_gb"] = new["root_gb"]
    if old["ephemeral_gb"]:
        disks.append({"file": EPHEMERAL_DISK_FILE})
        if new["ephemeral_gb"] > old["ephemeral_gb"]:
            disks[1]["size_gb"] = new["ephemeral_gb"]
    return disks


def resize(store: Any, key: str, flavor_key: str, project: str | None = None) -> str:
    """Cold resize (Nova's resize): stop, new flavor, grow the disks, start again (if it was running), then
    VERIFY_RESIZE until confirm or revert. The same host is kept when the new flavor fits there: the disks
    grow in place and each grown disk's original is kept beside it for a revert. Otherwise the scheduler
    picks another host (server group policy honoured) and the instance moves there in one job
    (instance_resize.yml: stop on the source, define on the destination, copy the root and ephemeral disks
    there, start); a destination that fails is cleaned up and the next alternate tried (bounded by the
    scheduler's max_attempts). The old allocation stays held on the source as a migration allocation until
    confirm. Disks never shrink, and a resize does not add an ephemeral disk the server does not have."""
    with store.transaction() as session:
        new = store_api.get_flavor(session, flavor_key)
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        if new.id == inst.flavor_id:
            raise InvalidRequest(f"server {inst.name} already has flavor {new.name}")
        if new.disabled:
            raise InvalidRequest(f"flavor {new.name} is disabled")
        for what, have, want in (("root", inst.root_gb, new.root_gb),
                                 ("ephemeral", inst.ephemeral_gb, new.ephemeral_gb)):
            if want < have:
                raise InvalidRequest(f"flavor {new.name}'s {want} GB {what} disk is smaller than the server's "
                                     f"{have} GB (disks cannot shrink)")
        if new.ephemeral_gb and not inst.ephemeral_gb:
            raise InvalidRequest(f"flavor {new.name} has a {new.ephemeral_gb} GB ephemeral disk and server "
                                 f"{inst.name} has none: a resize grows the disks a server has, it adds none")
        OPERATIONS["resize"].check(inst.vm_state, inst.task_state, inst.name)
        deltas = {"cores": max(new.vcpus - inst.vcpus, 0), "ram": max(new.memory_mb - inst.memory_mb, 0)}
        quota.check(session, inst.project_id, deltas)
        old = {"flavor_id": inst.flavor_id, "flavor_name": inst.flavor_name, "vcpus": inst.vcpus,
               "memory_mb": inst.memory_mb, "root_gb": inst.root_gb, "ephemeral_gb": inst.ephemeral_gb,
               "swap": inst.swap, "flavor_extra_specs": dict(inst.flavor_extra_specs or {}),
               "vm_state": str(inst.vm_state), "source_host": inst.host}
        new_fields = new.as_instance_fields()
    disks = _resize_disks(old, new_fields)
    grow = [d for d in disks if "size_gb" in d]
    # grown_in_place is read only after an in-place resize: a move leaves the source's disks as they were.
    b = _begin(store, key, "resize", "compute_resize_instance", project,
               extra={"old_flavor": {**old, "grown_in_place": [d["file"] for d in grow]}, "new_flavor": new_fields})
    source = b.host
    resources = Resources.from_flavor(new_fields)
    alternates: list[str] = []
    try:
        if source is None:
            raise ClaimConflict(f"server {b.name} has no host (it was never built)")
        try:
            move_claim(store.session_factory, b.uuid, source, resources)
            dest = source
        except InsufficientResources as exc:
            refused = [f"{source}: {exc.msg}"]
            alternates = _resize_candidates(store, b, new_fields)
            dest = _claim_resize_dest(store, b, alternates, resources, refused)
    except (ClaimConflict, NoValidHost) as exc:
        message = f"resize of server {b.name} to {new.name}: {exc.msg}"
        _finish(store, b, False, {"old_flavor": None, "new_flavor": None}, error=message)
        raise OperationFailed(message) from exc
    with store.transaction() as session:
        store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_MIGRATING},
                                expected_task_state=TaskState.RESIZE_PREP)
    b.op = Operation("resize", None, TaskState.RESIZE_MIGRATING, None, None)
    start = b.vm_state is VmState.ACTIVE
    if dest == source:
        result = _run_on_host(store, b, "instance_resize.yml", {
            "kvmfleet_start": start,
            "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid, "vcpus": new.vcpus,
                                             "memory_mb": new.memory_mb, "grow": grow}]}})
        if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            revert_move(store.session_factory, b.uuid)
            try:
                _fail_op(store, b, result, "resize")
            finally:
                with store.transaction() as session:
                    store_api.save_instance(session, b.uuid, {"old_flavor": None, "new_flavor": None})
    else:
        failures: list[str] = []  # "<host>: <error>" of each destination that failed, in order
        max_attempts = placement.make_scheduler().config.max_attempts
        while True:
            try:
                result = _migrate(store, b, source, dest, new_fields, disks, start, failures,
                                  final=len(failures) + 1 >= max_attempts or not alternates)
                break
            except _DestinationFailed as exc:
                failures.append(exc.msg)
                dest = _claim_resize_dest(store, b, alternates, resources, list(failures), failed=True)
    power = PowerState.RUNNING if start else PowerState.SHUTDOWN
    _finish(store, b, True, {"vm_state": VmState.RESIZED, "power_state": power, **new_fields}, result.id)
    return _status(store, b.uuid)


class _DestinationFailed(OperationFailed):
    """A resize move failed on its destination, which cleaned up after itself: another may be tried."""


def _resize_candidates(store: Any, b: _Begun, new_fields: dict[str, Any]) -> list[str]:
    """The new flavor does not fit on the source: the scheduler's hosts for it, best first (same filters as a
    build, server group policy honoured, the moving instance not counted as a member, the source left out).
    NoValidHost when there is none."""
    scheduler = placement.make_scheduler()
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        image = session.get(Image, inst.image_id) if inst.image_id else None
        group = session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None
        flavor = {"name": new_fields["flavor_name"], "vcpus": new_fields["vcpus"],
                  "memory_mb": new_fields["memory_mb"], "root_gb": new_fields["root_gb"],
                  "ephemeral_gb": new_fields["ephemeral_gb"], "swap": new_fields["swap"],
                  "extra_specs": dict(new_fields.get("flavor_extra_specs") or {})}
        spec = placement.request_spec(session, flavor, image, availability_zone=inst.availability_zone,
                                      project_id=inst.project_id, group=group, exclude_members=[b.uuid],
                                      ignore_hosts=[b.host] if b.host else [])
        states = placement.host_states(session)
    if image is None:
        raise NoValidHost("the instance's image was deleted: it cannot be rebuilt on another host")
    sel = scheduler.select_destinations(spec, states, alternates=scheduler.config.max_attempts - 1)[0]
    return [sel.name] + [a.name for a in sel.alternates]


def _claim_resize_dest(store: Any, b: _Begun, candidates: list[str], resources: Resources, refused: list[str],
                       failed: bool = False) -> str:
    """Move-claim on the first candidate that takes it (consumed from `candidates`); NoValidHost naming why
    each host was refused when none does. `failed`: a retry after destinations failed (named in `refused`):
    when no candidate is left the instance is ERROR on its source and OperationFailed is raised."""
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        group = session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None
    while candidates:
        host = candidates.pop(0)
        if host == b.host:
            continue
        with store.transaction() as session:
            why = placement.violates_group(session, group, b.uuid, host)
        if why:
            refused.append(f"{host}: {why}")
            continue
        try:
            move_claim(store.session_factory, b.uuid, host, resources)
            return host
        except ClaimConflict as exc:
            refused.append(f"{host}: {exc.msg}")
    if failed:
        message = f"resize of server {b.name} failed on every destination tried: " + "; ".join(refused)
        _finish(store, b, False, {"vm_state": VmState.ERROR, "old_flavor": None, "new_flavor": None},
                error=message)
        raise OperationFailed(message, instance=b.uuid)
    raise NoValidHost("No valid host was found for the resize: " + "; ".join(refused))


def _migrate(store: Any, b: _Begun, source: str, dest: str, new_fields: dict[str, Any],
             disks: list[dict[str, Any]], start: bool, failures: list[str], final: bool) -> executor.JobResult:
    """One instance_resize.yml job moving the instance from source to dest with the new flavor. On success
    the instance points at dest (task resize_migrated, then resize_finish). On failure the destination
    claim is dropped; a failure on the destination (which removed what it made) raises _DestinationFailed
    unless `final`; otherwise the instance is ERROR with the fault on its source and OperationFailed is
    raised."""
    import shutil

    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        image = session.get(Image, inst.image_id)
        spec = domain_spec(session, inst, image)
        spec.update({"vcpus": new_fields["vcpus"], "memory_mb": new_fields["memory_mb"],
                     "disks": [{"size_gb": new_fields["ephemeral_gb"]}] if new_fields["ephemeral_gb"] else []})
        spec["metadata"]["flavor"] = new_fields["flavor_name"]
        if new_fields["root_gb"]:
            spec["root_disk"]["size_gb"] = new_fields["root_gb"]
        user_data = {b.uuid: inst.config["user_data"]} if inst.config.get("user_data") is not None else {}
        inv = _hosts_inventory(session, [source, dest])
    from kvmfleet.config import get_settings

    job = executor.Job(playbook="instance_resize.yml", inventory=inv, extravars={})
    transfer = executor.jobs_dir() / job.id / "transfer"
    job.extravars.update({
        "kvmfleet_instances": {},
        "kvmfleet_migration": {"source": source, "dest": dest, "transfer_dir": str(transfer), "start": start,
                               "instance": spec, "disks": disks, "transfer": get_settings().resize_transfer},
        "kvmfleet_user_data": user_data})
    job.secret_vars = ("kvmfleet_user_data",)
    try:
        result = executor.run(job)
    finally:
        shutil.rmtree(transfer, ignore_errors=True)  # copies of the guest's disks: never kept
    failed_on = next((h for h in (source, dest) if not result.host(h).ok), None)
    if failed_on is None and result.status is executor.JobStatus.SUCCESSFUL:
        with store.transaction() as session:
            store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_MIGRATED, "host": dest,
                                                      "node": dest}, expected_task_state=TaskState.RESIZE_MIGRATING)
            store_api.save_instance(session, b.uuid, {"task_state": TaskState.RESIZE_FINISH},
                                    expected_task_state=TaskState.RESIZE_MIGRATED)
        b.host = dest
        b.op = Operation("resize", None, TaskState.RESIZE_FINISH, None, None)
        return result
    where = failed_on or dest
    error = result.error_for(where) or "failed"
    message = f"resize of server {b.name} from {source} to {dest} failed on {where}: {error}"
    if failures:
        message += f" (destinations that failed before: {'; '.join(failures)})"
    revert_move(store.session_factory, b.uuid)
    with store.transaction() as session:
        ev = actions.start_event(session, b.action_id, "compute_finish_resize", host=dest)
        actions.finish_event(session, ev.id, False, job_id=result.id, error=message)
    if where == dest and not final:  # an unreachable destination's leftovers are reaped by host refresh
        raise _DestinationFailed(f"{dest}: {error}", instance=b.uuid)
    _finish(store, b, False, {"vm_state": VmState.ERROR, "old_flavor": None, "new_flavor": None}, result.id,
            message)
    raise OperationFailed(message, instance=b.uuid)


def confirm_resize(store: Any, key: str, project: str | None = None) -> str:
    """Keep the new flavor: after a move, the source domain and its disks go, then the source hold; after an
    in-place resize, the originals kept for a revert go."""
    b = _begin(store, key, "confirmResize", "compute_confirm_resize", project)
    with store.transaction() as session:
        old = dict(session.get(Instance, b.uuid).old_flavor or {})
    back = VmState(old.get("vm_state") or "active")
    source = old.get("source_host")
    job_id = None
    if source and source != b.host:
        with store.transaction() as session:
            inv = _hosts_inventory(session, [source])
        result = executor.run(executor.Job(playbook="instance_delete.yml", inventory=inv, extravars={
            "kvmfleet_instances": {source: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid}]}}))
        job_id = result.id
        if not result.host(source).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            message = (f"confirm resize of server {b.name}: removing it from the source host {source} failed: "
                       f"{result.error_for(source) or 'failed'}")
            _finish(store, b, False, {}, result.id, message)
            raise OperationFailed(message, instance=b.uuid)
    elif old.get("grown_in_place"):
        result = _run_on_host(store, b, "instance_resize_confirm.yml", {
            "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid,
                                             "kept": list(old["grown_in_place"])}]}})
        job_id = result.id
        if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            _fail_op(store, b, result, "confirm resize (removing the disks kept for a revert)")
    confirm_move_claim(store.session_factory, b.uuid)
    _finish(store, b, True, {"vm_state": back, "old_flavor": None, "new_flavor": None}, job_id)
    return _status(store, b.uuid)


def revert_resize(store: Any, key: str, project: str | None = None) -> str:
    """Back to the old flavor: after a move, the destination domain and its disks go first, then the
    instance starts again on its source (whose domain kept the old flavor and disks) and the destination
    claim goes; after an in-place resize, the grown disks are replaced by the originals kept beside them."""
    b = _begin(store, key, "revertResize", "compute_revert_resize", project)
    with store.transaction() as session:
        old = dict(session.get(Instance, b.uuid).old_flavor or {})
    back = VmState(old.pop("vm_state", "active"))
    source = old.pop("source_host", None) or b.host
    restore = list(old.pop("grown_in_place", None) or [])
    if source != b.host:
        result = _run_on_host(store, b, "instance_delete.yml", {
            "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid}]}})
        if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
            _fail_op(store, b, result, "revert resize (removing the resized copy)")
        with store.transaction() as session:
            store_api.save_instance(session, b.uuid, {"host": source, "node": source},
                                    expected_task_state=TaskState.RESIZE_REVERTING)
        b.host = source
        restore = []  # the source's disks were never changed
    result = _run_on_host(store, b, "instance_resize.yml", {
        "kvmfleet_start": back is VmState.ACTIVE,
        "kvmfleet_instances": {b.host: [{"name": f"kvmfleet-{b.uuid}", "uuid": b.uuid, "vcpus": old["vcpus"],
                                         "memory_mb": old["memory_mb"], "restore": restore}]}})
    if not result.host(b.host).ok or result.status is not executor.JobStatus.SUCCESSFUL:
        _fail_op(store, b, result, "revert resize")
    revert_move(store.session_factory, b.uuid)
    power = PowerState.RUNNING if back is VmState.ACTIVE else PowerState.SHUTDOWN
    _finish(store, b, True, {"vm_state": back, "power_state": power, "old_flavor": None, "new_flavor": None,
                             **old}, result.id)
    return _status(store, b.uuid)


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
    b = _begin(store, key, "rebuild", "compute_rebuild_instance", project)
    if b.host is None:
        _finish(store, b, False, {}, error="no host")
        raise OperationFailed(f"cannot rebuild server {b.name}: it has no host (it was never built)")
    with store.transaction() as session:
        inst = session.get(Instance, b.uuid)
        spec = domain_spec(session, inst, image)
        spec["state"] = "stopped" if b.vm_state is VmState.STOPPED else "running"
        user_data = {b.uuid: inst.config["user_data"]} if inst.config.get("user_data") is not None else {}
    result = _run_on_host(store, b, "instance_rebuild.yml", {
        "kvmfleet_instances": {b.host: [spec]}, "kvmfleet_user_data": user_data},
        secret_vars=("kvmfleet_user_data",))
    ok, error, _domain = _item_outcome(result, b.host, b.uuid, REBUILD_TASK)
    if not ok:
        # The old root disk is gone once the rebuild started: the instance is ERROR until rebuilt again.
        message = f"rebuild of server {b.name} on host {b.host} failed: {error}"
        _finish(store, b, False, {"vm_state": VmState.ERROR, "power_state": PowerState.NOSTATE}, result.id, message)
        raise OperationFailed(message)
    stopped = spec["state"] == "stopped"
    _finish(store, b, True, {"vm_state": VmState.STOPPED if stopped else VmState.ACTIVE, "image_id": image.id,
                             "power_state": PowerState.SHUTDOWN if stopped else PowerState.RUNNING}, result.id)
    return _status(store, b.uuid)


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


# -- read-only ------------------------------------------------------------------------------------


def console_log(store: Any, key: str, lines: int = 50, project: str | None = None) -> str:
    with store.transaction() as session:
        inst = find_instance(session, key, store_api.get_project(session, project).id if project else None)
        if inst.host is None:
            raise OperationFailed(f"server {inst.name} has no host")
        host, uuid, name = inst.host, inst.uuid, inst.name
        inv = _hosts_inventory(session, [host])
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


__all__ = [
    "CreateRequest",
    "build",
    "confirm_resize",
    "console_log",
    "create",
    "delete",
    "dry_run",
    "find_instance",
    "list_servers",
    "power_action",
    "rebuild",
    "resize",
    "revert_resize",
    "server_events",
    "show_server",
]
