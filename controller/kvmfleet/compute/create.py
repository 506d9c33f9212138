"""Create: validate a request and persist its instances (BUILDING/SCHEDULING, each with its create action),
committed before any host is touched; kvmfleet.compute.build then schedules, claims and builds them.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvmfleet import quota
from kvmfleet.compute import actions, nics, placement
from kvmfleet.compute.common import (
    DEFAULT_NETWORK,
    GIB,
    MAX_USER_DATA,
    hostname_for,
    project_for,
    validate_description,
    validate_display_name,
    validate_name,
)
from kvmfleet.compute.errors import InvalidRequest, NoValidHostFound
from kvmfleet.scheduler import NoValidHost
from kvmfleet.store import api as store_api
from kvmfleet.store.models import Flavor, Image, Instance, Project, ServerGroup
from kvmfleet.store.states import PowerState, TaskState, VmState

MAX_METADATA_ITEMS = 128  # Nova's default metadata_items quota
NETWORKS_AUTO = "auto"
NETWORKS_NONE = "none"


@dataclass
class CreateRequest:
    """One create request (the CLI's `server create`, the API's POST /servers).

    ``count`` is how many servers (the CLI's --count, the API's max_count); with ``min_count`` set, as many
    as quota and scheduling allow are built, at least min_count (Nova's multi-create). Members of a
    multi-create are named NAME-1..NAME-N and share ``reservation_id``. ``networks``: None (the legacy
    ``network`` field decides, "default" unless cleared), "auto" (the default network), "none" (no NIC) or
    a list of network names, one NIC each. ``requested_host`` (admins' ``zone:host``) restricts the
    scheduler to that host. ``request_id`` (the API's req-<uuid>) is recorded on the actions."""

    name: str
    flavor: str
    image: str
    project: str | None = None
    server_group: str | None = None
    count: int = 1
    min_count: int | None = None
    availability_zone: str | None = None
    requested_host: str | None = None
    user_data: str | None = None
    network: str | None = DEFAULT_NETWORK
    networks: str | list[Any] | None = None
    admin: bool = False  # the caller may name another project's port, a MAC...
    security_groups: list[str] | None = None  # of the ports the create makes (None: the project's default)
    metadata: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    key_name: str | None = None
    reservation_id: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    boot_volume: dict[str, Any] | None = None  # boot from volume: {size, delete_on_termination}


@dataclass
class _Validated:
    project: Project
    flavor: Flavor
    image: Image
    group: ServerGroup | None
    min_count: int
    max_count: int
    networks: list[Any]


def _counts(req: CreateRequest) -> tuple[int, int]:
    for what, value in (("count", req.count), ("min_count", req.min_count)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidRequest(f"{what} must be a positive integer, got {value!r}")
    low = req.min_count if req.min_count is not None else req.count
    if low > req.count:
        raise InvalidRequest(f"min_count {low} is greater than max_count {req.count}")
    return low, req.count


def _networks(req: CreateRequest) -> list[str]:
    nets = req.networks
    if nets is None:
        return [validate_name(req.network, "network name")] if req.network else []
    if nets == NETWORKS_AUTO:
        return [DEFAULT_NETWORK]
    if nets == NETWORKS_NONE:
        return []
    if isinstance(nets, str) or not isinstance(nets, list):
        raise InvalidRequest(f"networks must be 'auto', 'none' or a list of network names, got {nets!r}")
    return nics.check_request(nets)


def _metadata(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise InvalidRequest("metadata must be a mapping of strings")
    if len(data) > MAX_METADATA_ITEMS:
        raise InvalidRequest(f"metadata has {len(data)} items, the limit is {MAX_METADATA_ITEMS}")
    for key, value in data.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255 or not isinstance(value, str) or len(value) > 255:
            raise InvalidRequest("metadata keys must be 1-255 characters and values 0-255 characters of text")
    return dict(data)


def _validate(session: Any, req: CreateRequest) -> _Validated:
    validate_display_name(req.name)
    validate_description(req.description)
    low, high = _counts(req)
    if req.availability_zone is not None:
        validate_name(req.availability_zone, "availability zone")
    if req.requested_host is not None:
        validate_name(req.requested_host, "host name")
        store_api.get_host(session, req.requested_host)
    networks = _networks(req)
    if req.count > 1 and any(isinstance(n, dict) and n.get("port_id") for n in networks):
        raise InvalidRequest("Unable to launch multiple instances with a single configured port ID. Please "
                             "launch your instance one by one with different ports.")
    _metadata(req.metadata)
    if req.user_data is not None and len(req.user_data.encode()) > MAX_USER_DATA:
        raise InvalidRequest(f"user data is {len(req.user_data.encode())} bytes, the limit is {MAX_USER_DATA}")
    project = project_for(session, req.project)
    if not project.enabled:
        raise InvalidRequest(f"project {project.name} is disabled")
    if req.key_name is not None:
        _key_pair(session, req)
    flavor = store_api.get_flavor(session, req.flavor)
    if flavor.disabled:
        raise InvalidRequest(f"flavor {flavor.name} is disabled")
    image = store_api.get_image(session, req.image)
    if image.status != "active":
        raise InvalidRequest(f"image {image.name} is {image.status}, not active")
    if not image.file_path or not Path(image.file_path).is_file():
        raise InvalidRequest(f"image {image.name}: file {image.file_path} is missing on the controller")
    if flavor.root_gb and image.virtual_size and flavor.root_gb * GIB < image.virtual_size:
        raise InvalidRequest(f"flavor {flavor.name}'s {flavor.root_gb} GB root disk is smaller than image "
                             f"{image.name} ({image.virtual_size / GIB:.2f} GB)")
    if image.min_ram and flavor.memory_mb < image.min_ram:
        raise InvalidRequest(f"flavor {flavor.name} has {flavor.memory_mb} MB, image {image.name} needs "
                             f"{image.min_ram} MB")
    group = store_api.get_server_group(session, req.server_group, project.id) if req.server_group else None
    return _Validated(project, flavor, image, group, low, high, networks)


def _key_pair(session: Any, req: CreateRequest) -> Any:
    """Nova looks the key pair up among the requesting user's own (400 when it is not there)."""
    from sqlalchemy import select

    from kvmfleet.store.models import KeyPair

    query = select(KeyPair).where(KeyPair.name == req.key_name)
    if req.user_id is not None:
        query = query.where(KeyPair.user_id == req.user_id)
    row = session.scalars(query).first()
    if row is None:
        raise InvalidRequest("Invalid key_name provided.", key_name=req.key_name)
    return row


def _spec(session: Any, v: _Validated, req: CreateRequest, num_instances: int = 1) -> Any:
    return placement.request_spec(session, v.flavor.as_dict(), v.image, availability_zone=req.availability_zone,
                                  project_id=v.project.id, group=v.group, num_instances=num_instances,
                                  force_hosts=[req.requested_host] if req.requested_host else None)


def dry_run(store: Any, req: CreateRequest) -> dict[str, Any]:
    """The scheduler's explanation for one instance of the request; nothing is stored."""
    session = store.session()
    try:
        v = _validate(session, req)
        spec = _spec(session, v, req)
        states = placement.host_states(session)
        explanation = placement.make_scheduler().explain(spec, states).to_dict()
    finally:
        session.rollback()  # project_for may have added the default project: keep nothing
        session.close()
    weighed = explanation.get("weighed") or []
    explanation["chosen"] = weighed[0]["host"] if weighed else None
    explanation["quota"] = None
    return explanation


def _quota_count(session: Any, v: _Validated) -> int:
    """How many of the request quota lets us build (Nova's _check_num_instances_quota): max_count when it
    fits, else as many as fit if that is at least min_count; else OverQuota (for min_count)."""
    quota.check(session, v.project, quota.flavor_deltas(v.flavor, v.min_count))  # locks the project's quota
    if v.max_count == v.min_count:
        return v.max_count
    hard, used = quota.limits(session, v.project), quota.usage(session, v.project)
    per = quota.flavor_deltas(v.flavor, 1)
    fit = v.max_count
    for name, each in per.items():
        if hard[name] != quota.UNLIMITED and each > 0:
            fit = min(fit, (hard[name] - used[name]) // each)
    return max(fit, v.min_count)


def _schedulable(session: Any, v: _Validated, req: CreateRequest, count: int) -> int:
    """Refuse, before anything is stored, a request the scheduler cannot place now; with min_count, the
    largest number from `count` down to min_count it can place. Nothing is claimed here: the build
    schedules again and claims, so capacity taken meanwhile by a concurrent request still ends that build
    in ERROR with No valid host (Nova's late NoValidHost)."""
    scheduler = placement.make_scheduler()
    states = placement.host_states(session)
    for n in range(count, v.min_count - 1, -1):
        try:
            scheduler.select_destinations(_spec(session, v, req, n), states, alternates=0)
            return n
        except NoValidHost as exc:
            if n == v.min_count:
                raise NoValidHostFound(exc.msg + " Nothing was created.", filter=exc.filter_name) from exc
    raise AssertionError("unreachable")  # the loop returns or raises


def new_reservation_id() -> str:
    return "r-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def persist_create(session: Any, req: CreateRequest, request_id: str) -> list[str]:
    """Inside the caller's transaction: validate, check quota and schedulability, add the instance rows
    (BUILDING/SCHEDULING) with their create action and schedule event. Returns the uuids."""
    v = _validate(session, req)
    count = _schedulable(session, v, req, _quota_count(session, v))
    reservation_id = req.reservation_id or new_reservation_id()
    uuids = []
    for index in range(count):
        name = req.name if count == 1 else f"{req.name}-{index + 1}"
        config: dict[str, Any] = {"hostname": hostname_for(req.name, index + 1 if count > 1 else None),
                                  "networks": v.networks, "request_id": request_id}
        if req.requested_host:
            config["requested_host"] = req.requested_host
        if req.user_data is not None:
            config["user_data"] = req.user_data
        if req.boot_volume:
            config["boot_volume"] = True
        inst = Instance(name=name, project_id=v.project.id, user_id=req.user_id, image_id=v.image.id,
                        availability_zone=req.availability_zone, server_group_id=v.group.id if v.group else None,
                        vm_state=VmState.BUILDING, task_state=TaskState.SCHEDULING,
                        power_state=PowerState.NOSTATE, config=config, metadata_=dict(req.metadata or {}),
                        description=req.description, key_name=req.key_name, reservation_id=reservation_id,
                        launch_index=index, **v.flavor.as_instance_fields())
        session.add(inst)
        session.flush()
        nics.allocate(session, inst, v.networks, admin=req.admin, security_groups=req.security_groups)  # MACs, ports and the key pair's key
        if req.boot_volume:
            from kvmfleet.compute.volumes import record_boot_volume

            record_boot_volume(session, inst, size=req.boot_volume["size"],
                               delete_on_termination=bool(req.boot_volume.get("delete_on_termination")),
                               type_name=req.boot_volume.get("volume_type"))
        action = actions.start_action(session, inst.uuid, "create", request_id, v.project.id, req.user_id)
        actions.start_event(session, action.id, "schedule_instances")
        uuids.append(inst.uuid)
    return uuids


def create(store: Any, req: CreateRequest) -> tuple[str, list[str]]:
    """Validate and persist the request: instance rows in BUILDING/SCHEDULING, each with its create action
    and schedule event, committed before any host is touched. Returns (request id, instance uuids)."""
    request_id = req.request_id or actions.new_request_id()
    return request_id, store.run_in_transaction(lambda session: persist_create(session, req, request_id))


