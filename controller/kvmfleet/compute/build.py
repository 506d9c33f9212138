"""Create and build: validate a request, persist its instances, then schedule, claim and build them.

Create: validate -> quota check + instance rows (BUILDING/SCHEDULING) committed -> scheduler with
alternates -> claim (compare-and-set; a lost race moves on to the next candidate) -> quota re-check ->
one executor job for all placed instances (instance_create.yml) -> ACTIVE, or fault + claim released +
retry on an alternate (bounded by scheduler max_attempts; the host's failed_builds count feeds the
BuildFailureWeigher) -> ERROR with the fault when every attempt failed; the playbook removes whatever a
failed build left on its host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import update

from kvmfleet import executor, quota
from kvmfleet.compute import actions, placement
from kvmfleet.compute.common import (
    CREATE_TASK,
    DEFAULT_NETWORK,
    GIB,
    MAX_USER_DATA,
    Progress,
    domain_spec,
    hostname_for,
    hosts_inventory,
    item_outcome,
    last_action,
    noop,
    open_event,
    project_for,
    release,
    statuses,
    validate_name,
)
from kvmfleet.compute.errors import InvalidRequest, NoValidHostFound
from kvmfleet.scheduler import NoValidHost
from kvmfleet.scheduler.claims import (
    Resources,
    release_in,
)
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import Conflict
from kvmfleet.store.models import Flavor, Host, Image, Instance, Project, ServerGroup, utcnow
from kvmfleet.store.states import PowerState, TaskState, VmState

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
    project = project_for(session, req.project)
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
        session.rollback()  # project_for may have added the default project: keep nothing
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
    progress = progress or noop
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
            action = last_action(session, inst.uuid, "create")
            builds[inst.uuid] = _Build(inst.uuid, action.id)
        spec = placement.request_spec(session, flavor, image, availability_zone=first.availability_zone,
                                      project_id=first.project_id, group=group, num_instances=len(insts),
                                      exclude_members=uuids)
        return image, group, resources, builds, spec, placement.host_states(session)

    image, group, resources, builds, spec, states = store.run_in_transaction(load)
    if image is None:
        for b in builds.values():
            _fail_build(store, b, "the instance's image was deleted before it was built")
        return statuses(store, uuids)
    for u in uuids:
        progress(u, "scheduling")
    try:
        selections = scheduler.select_destinations(spec, states, alternates=max_attempts - 1)
    except NoValidHost as exc:
        for b in builds.values():
            _fail_build(store, b, exc.msg, schedule_failed=True)
        return statuses(store, uuids)
    for b, sel in zip(builds.values(), selections):
        b.candidates = [sel.name] + [a.name for a in sel.alternates]

    def scheduled(session: Any) -> None:
        for b in builds.values():
            actions.finish_event(session, open_event(session, b.action_id, "schedule_instances"), True,
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
            return specs, user_data, hosts_inventory(session, specs)

        specs, user_data, inv = store.run_in_transaction(spawning)
        for b in placed:
            progress(b.uuid, f"building on {b.host} (attempt {attempt})")
        result = executor.run(executor.Job(
            playbook="instance_create.yml", inventory=inv, timeout=timeout,
            extravars={"kvmfleet_instances": specs, "kvmfleet_user_data": user_data},
            secret_vars=("kvmfleet_user_data",), forks=min(50, max(5, len(specs)))))
        retry: list[_Build] = []
        for b in placed:
            ok, error, domain = item_outcome(result, b.host, b.uuid, CREATE_TASK)
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
    return statuses(store, uuids)


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
        release(store, b.uuid)
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
    release(store, b.uuid)

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
    release(store, b.uuid)

    def failed(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"vm_state": VmState.ERROR, "task_state": None,
                                                  "power_state": PowerState.NOSTATE, "host": None, "node": None},
                                expected_task_state=(TaskState.SCHEDULING, TaskState.SPAWNING))
        store_api.set_fault(session, b.uuid, message)
        if schedule_failed:
            actions.finish_event(session, open_event(session, b.action_id, "schedule_instances"), False,
                                 error=message)
        actions.finish_action(session, b.action_id, message)

    store.run_in_transaction(failed)
