"""Build: schedule, claim and build persisted instances (kvmfleet.compute.create persisted them).

Create: validate -> quota check + instance rows (BUILDING/SCHEDULING) committed -> scheduler with
alternates -> claim (compare-and-set; a lost race moves on to the next candidate) -> quota re-check ->
one executor job for all placed instances (instance_create.yml) -> ACTIVE, or fault + claim released +
retry on an alternate (bounded by scheduler max_attempts; the host's failed_builds count feeds the
BuildFailureWeigher) -> ERROR with the fault when every attempt failed; the playbook removes whatever a
failed build left on its host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from kvmfleet import executor, quota
from kvmfleet.compute import actions, nics, placement, volume_ops
from kvmfleet.compute.common import (
    CREATE_TASK,
    Progress,
    TaskCancelled,
    current_cancel,
    domain_spec,
    hosts_inventory,
    item_outcome,
    last_action,
    noop,
    open_event,
    release,
    run_job,
    statuses,
)
from kvmfleet.network import reconcile
from kvmfleet.scheduler import NoValidHost
from kvmfleet.scheduler.claims import Resources, release_in
from kvmfleet.store import api as store_api
from kvmfleet.store.errors import Conflict, NotFound, UnexpectedTaskState
from kvmfleet.store.models import Host, Image, Instance, ServerGroup, utcnow
from kvmfleet.store.states import PowerState, TaskState, VmState


@dataclass
class _Request:
    """The instances of one create request a build takes on, with what scheduling them needs."""

    key: str
    image: Image | None
    group: ServerGroup | None
    flavor: dict[str, Any]
    availability_zone: str | None
    project_id: str
    requested_host: str | None
    builds: list[_Build] = field(default_factory=list)

    @property
    def resources(self) -> Resources:
        return Resources.from_flavor(self.flavor)


@dataclass
class _Build:
    uuid: str
    action_id: int
    request: _Request
    candidates: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    host: str | None = None
    event_id: int | None = None
    boot_volume: bool = False  # booted from a volume the build makes first


Cancel = Callable[[], bool]


def build(store: Any, uuids: list[str], progress: Progress | None = None, timeout: int | None = None,
          cancel: Cancel | None = None) -> dict[str, str]:
    """Schedule, claim and build persisted instances (of one create request, or of several requests that
    arrived together: each request is scheduled on its own, then every placed instance goes into ONE
    executor job per attempt). Returns {uuid: final status}. Never raises for a failed build: the
    instance records the fault. An instance another operation took over meanwhile (a delete, a
    reset-state) is left to it. If the build itself breaks (the store unreachable or locked for too long),
    the instances it left mid-task are put in ERROR with their claims released, as far as the store lets
    us, and the error is raised. `cancel` is polled while the executor job runs (a lost task lease)."""
    try:
        return _build(store, uuids, progress or noop, timeout, cancel)
    except TaskCancelled:
        raise  # the instances stay as they are: recovery decides them against their hosts
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
        except (OperationalError, Conflict, NotFound):
            continue  # as far as the store lets us: the next instance may still be put right


def _load(session: Any, uuids: list[str]) -> list[_Request]:
    """The instances still waiting to be scheduled, by request (one request spec each)."""
    requests: dict[str, _Request] = {}
    for uuid in uuids:
        inst = session.get(Instance, uuid)
        if inst is None or inst.deleted_at is not None or inst.task_state is not TaskState.SCHEDULING:
            continue  # deleted or taken over before we started
        key = str(inst.config.get("request_id") or inst.reservation_id or inst.uuid)
        req = requests.get(key)
        if req is None:
            req = requests[key] = _Request(
                key=key, image=session.get(Image, inst.image_id) if inst.image_id else None,
                group=session.get(ServerGroup, inst.server_group_id) if inst.server_group_id else None,
                flavor={"name": inst.flavor_name, "vcpus": inst.vcpus, "memory_mb": inst.memory_mb,
                        "root_gb": inst.root_gb, "ephemeral_gb": inst.ephemeral_gb, "swap": inst.swap,
                        "extra_specs": dict(inst.flavor_extra_specs or {})},
                availability_zone=inst.availability_zone, project_id=inst.project_id,
                requested_host=inst.config.get("requested_host"))
        req.builds.append(_Build(inst.uuid, last_action(session, inst.uuid, "create").id, req))
    return list(requests.values())


def _build(store: Any, uuids: list[str], progress: Progress, timeout: int | None,
           cancel: Cancel | None) -> dict[str, str]:
    scheduler = placement.make_scheduler()
    max_attempts = scheduler.config.max_attempts
    requests = store.run_in_transaction(lambda session: _load(session, uuids))
    placed: list[_Build] = []
    for req in requests:  # one after the other: each is scheduled seeing the claims before it
        placed += _schedule_and_claim(store, scheduler, req, progress)
    attempt = 1
    while placed:
        placed = _recheck_quota(store, placed)
        if not placed:
            break
        retry = _spawn(store, placed, attempt, max_attempts, progress, timeout, cancel)
        attempt += 1
        placed = [b for b in retry if _claim(store, b)]
    return statuses(store, uuids)


def _schedule_and_claim(store: Any, scheduler: Any, req: _Request, progress: Progress) -> list[_Build]:
    if req.image is None:
        for b in req.builds:
            _fail_build(store, b, "the instance's image was deleted before it was built")
        return []
    for b in req.builds:
        progress(b.uuid, "scheduling")

    def load(session: Any) -> tuple[Any, Any]:
        spec = placement.request_spec(
            session, req.flavor, req.image, availability_zone=req.availability_zone, project_id=req.project_id,
            group=req.group, num_instances=len(req.builds), exclude_members=[b.uuid for b in req.builds],
            force_hosts=[req.requested_host] if req.requested_host else None)
        return spec, placement.host_states(session)

    spec, states = store.run_in_transaction(load)
    try:
        selections = scheduler.select_destinations(spec, states, alternates=scheduler.config.max_attempts - 1)
    except NoValidHost as exc:
        for b in req.builds:
            _fail_build(store, b, exc.msg, schedule_failed=True)
        return []
    for b, sel in zip(req.builds, selections):
        b.candidates = [sel.name] + [a.name for a in sel.alternates]

    def scheduled(session: Any) -> None:
        for b in req.builds:
            actions.finish_event(session, open_event(session, b.action_id, "schedule_instances"), True,
                                 details={"candidates": b.candidates})

    store.run_in_transaction(scheduled)
    return [b for b in req.builds if _claim(store, b)]


def _claim(store: Any, b: _Build) -> bool:
    """Claim on the first candidate left that takes it; False (the instance ERROR, or taken over)."""
    try:
        host, rest, refused = placement.claim_first(store.session_factory, b.uuid, b.candidates,
                                                    b.request.resources, b.request.group, skip=b.tried)
    except (UnexpectedTaskState, NotFound):
        return False  # deleted or reset meanwhile: not ours any more, and nothing was claimed
    b.errors.extend(refused)
    b.candidates = rest
    if host is None:
        reason = "; ".join(b.errors[-3:]) or "no candidate host left"
        _fail_build(store, b, f"No valid host was found: {reason}")
        return False
    b.host = host
    return True


def _spawn(store: Any, placed: list[_Build], attempt: int, max_attempts: int, progress: Progress,
           timeout: int | None, cancel: Cancel | None) -> list[_Build]:
    """One executor job building every placed instance; returns those to retry on another host."""

    def spawning(session: Any) -> tuple[Any, ...]:
        live: list[_Build] = []
        specs: dict[str, list[dict[str, Any]]] = {}
        user_data: dict[str, str] = {}
        for b in placed:
            try:
                store_api.save_instance(session, b.uuid, {"task_state": TaskState.SPAWNING},
                                        expected_task_state=TaskState.SCHEDULING)
            except (UnexpectedTaskState, NotFound):
                continue
            b.event_id = actions.start_event(session, b.action_id, "compute__do_build_and_run_instance",
                                             host=b.host, details={"attempt": attempt}).id
            inst = session.get(Instance, b.uuid)
            b.boot_volume = bool(inst.config.get("boot_volume"))
            specs.setdefault(b.host, []).append(domain_spec(session, inst, b.request.image))
            if inst.config.get("user_data") is not None:
                user_data[b.uuid] = inst.config["user_data"]
            live.append(b)
        return live, specs, user_data, hosts_inventory(session, specs) if specs else None

    live, specs, user_data, inv = store.run_in_transaction(spawning)
    for b in placed:
        if b not in live:
            _lost(store, b)
    if not live:
        return []
    for b in list(live):
        progress(b.uuid, f"building on {b.host} (attempt {attempt})")
        if b.boot_volume:
            try:
                volume_ops.make_boot_volume(store, b.uuid, b.host)
            except volume_ops.StepFailed as exc:
                live.remove(b)
                specs[b.host] = [s for s in specs[b.host] if s["uuid"] != b.uuid]
                if not specs[b.host]:
                    del specs[b.host]
                _fail_build(store, b, f"Build of instance {b.uuid} failed: its boot volume: {exc.msg}")
                progress(b.uuid, f"ERROR: boot volume: {exc.msg}")
    if not live:
        return []
    live = _networks_first(store, live, specs, progress)
    if not live:
        return []
    result = run_job(executor.Job(
        playbook="instance_create.yml", inventory=inv, timeout=timeout, cancel_callback=cancel or current_cancel.get(),
        extravars={"kvmfleet_instances": specs, "kvmfleet_user_data": user_data},
        secret_vars=("kvmfleet_user_data",), forks=min(50, max(5, len(specs)))))
    retry: list[_Build] = []
    for b in live:
        ok, error, domain = item_outcome(result, b.host, b.uuid, CREATE_TASK)
        try:
            if ok:
                _build_succeeded(store, b, result.id, domain)
                if b.boot_volume:
                    volume_ops.boot_volume_in_use(store, b.uuid, b.host)
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
        except (UnexpectedTaskState, NotFound):
            _lost(store, b)  # a delete (which waits for this build) removes what the host holds
    return retry


def _networks_first(store: Any, live: list[_Build], specs: dict[str, list[dict[str, Any]]],
                    progress: Progress) -> list[_Build]:
    """The tenant networks and port filters on the hosts before their guests start there; a build on a host
    where they could not be made fails (its claim released, nothing defined)."""
    hosts = nics.tenant_hosts(specs)
    if not hosts:
        return live
    try:
        reconcile.converge(store, hosts)
        return live
    except reconcile.ConvergeFailed as exc:
        failed = exc.errors
    kept = []
    for b in live:
        if b.host not in failed:
            kept.append(b)
            continue
        specs[b.host] = [s for s in specs[b.host] if s["uuid"] != b.uuid]
        if not specs[b.host]:
            del specs[b.host]
        message = f"Build of instance {b.uuid} failed: its networks on host {b.host}: {failed[b.host]}"
        _fail_build(store, b, message)
        progress(b.uuid, f"ERROR: {message}")
    return kept


def _lost(store: Any, b: _Build) -> None:
    """Another operation took the instance over. A deleted instance holds nothing: its claim goes."""

    def release_if_deleted(session: Any) -> None:
        inst = session.get(Instance, b.uuid)
        if inst is None or inst.deleted_at is not None:
            release_in(session, b.uuid)

    store.run_in_transaction(release_if_deleted)


def _recheck_quota(store: Any, placed: list[_Build]) -> list[_Build]:
    """Re-count after the claims committed; if a limit was lowered meanwhile the project's claims roll back."""
    if not placed:
        return placed

    def recheck(session: Any) -> dict[str, str]:
        over = {}
        for project_id in sorted({b.request.project_id for b in placed}):
            try:
                quota.recheck(session, project_id)
            except quota.OverQuota as exc:
                over[project_id] = exc.msg
        return over

    over = store.run_in_transaction(recheck)
    kept = []
    for b in placed:
        message = over.get(b.request.project_id)
        if message is None:
            kept.append(b)
            continue
        release(store, b.uuid)
        try:
            _fail_build(store, b, message)
        except (UnexpectedTaskState, NotFound):
            _lost(store, b)
    return kept


def _build_succeeded(store: Any, b: _Build, job_id: str, domain: dict[str, Any]) -> None:
    def succeeded(session: Any) -> None:
        inst = session.get(Instance, b.uuid)
        config = dict(inst.config)
        macs = [n.get("mac") for n in domain.get("nics") or [] if n.get("mac")]
        if macs:
            config["macs"] = macs
        nics.mark_bound(session, b.uuid, b.host, active=str(domain.get("state") or "running") == "running")
        power = PowerState.from_libvirt(str(domain.get("state") or "running"))
        store_api.save_instance(session, b.uuid, {
            "vm_state": VmState.ACTIVE, "task_state": None, "power_state": power,
            "launched_at": utcnow(), "config": config}, expected_task_state=TaskState.SPAWNING)
        session.execute(update(Host).where(Host.name == b.host).values(failed_builds=0))
        actions.finish_event(session, b.event_id, True, job_id=job_id)
        actions.finish_action(session, b.action_id)

    store.run_in_transaction(succeeded)


def _build_attempt_failed(store: Any, b: _Build, job_id: str, error: str) -> None:
    def attempt_failed(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"task_state": TaskState.SCHEDULING, "host": None, "node": None},
                                expected_task_state=TaskState.SPAWNING)
        release_in(session, b.uuid)  # with the instance's own compare-and-set: never another task's claim
        store_api.set_fault(session, b.uuid, f"Build on {b.host} failed: {error}")
        session.execute(update(Host).where(Host.name == b.host).values(failed_builds=Host.failed_builds + 1))
        actions.finish_event(session, b.event_id, False, job_id=job_id, error=error)

    store.run_in_transaction(attempt_failed)
    b.host = None


def _fail_build(store: Any, b: _Build, message: str, schedule_failed: bool = False) -> None:
    """ERROR with the fault; nothing held (the claim was released, the playbook removed the domain)."""

    def failed(session: Any) -> None:
        store_api.save_instance(session, b.uuid, {"vm_state": VmState.ERROR, "task_state": None,
                                                  "power_state": PowerState.NOSTATE, "host": None, "node": None},
                                expected_task_state=(TaskState.SCHEDULING, TaskState.SPAWNING))
        release_in(session, b.uuid)
        store_api.set_fault(session, b.uuid, message)
        if schedule_failed:
            actions.finish_event(session, open_event(session, b.action_id, "schedule_instances"), False,
                                 error=message)
        actions.finish_action(session, b.action_id, message)

    try:
        store.run_in_transaction(failed)
    except (UnexpectedTaskState, NotFound):
        _lost(store, b)
