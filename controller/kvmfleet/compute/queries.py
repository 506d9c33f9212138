"""Reading servers the way Nova's compute API lists them: filters, sorting, marker paging, and the related
rows a server view needs (hosts, server groups, NICs), loaded once per page.

    q = ServerQuery(project_id=p, statuses=(vm_states, task_states), name="^web", limit=100, marker=uuid)
    instances = list_instances(session, q)          # NotFound-free; InvalidRequest for a bad marker
    inst = get_instance(session, uuid, project_id)  # NotFound outside the project (None: any project)
    rel = related(session, instances)               # rel.host(inst), rel.group_id(inst), rel.nics(inst)

Ownership is a lookup scope here, never a policy: another project's server is simply not found.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, false, func, or_, select, true

from kvmfleet.compute.errors import InvalidRequest
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Host, Instance, ServerGroup
from kvmfleet.store.states import STATUS_MAP, TaskState, VmState

# Nova's sort keys -> our columns (keys we have no column for sort as a no-op, as ignored keys do in Nova).
_SORT_COLUMNS: dict[str, Any] = {
    "created_at": Instance.created_at, "updated_at": Instance.updated_at, "launched_at": Instance.launched_at,
    "terminated_at": Instance.terminated_at, "display_name": Instance.name, "hostname": Instance.name,
    "display_description": Instance.description, "host": Instance.host, "node": Instance.node,
    "power_state": Instance.power_state, "task_state": Instance.task_state, "vm_state": Instance.vm_state,
    "uuid": Instance.uuid, "project_id": Instance.project_id, "user_id": Instance.user_id,
    "key_name": Instance.key_name, "availability_zone": Instance.availability_zone,
    "image_ref": Instance.image_id, "instance_type_id": Instance.flavor_id, "launch_index": Instance.launch_index,
    "locked": Instance.locked, "locked_by": Instance.locked,
}


@dataclass
class ServerQuery:
    """What GET /servers asked for, already authorised (admin-only filters dropped for others)."""

    project_id: str | None = None            # None: every project (an admin's all_tenants)
    user_id: str | None = None
    name: str | None = None                  # regular expression (re.search), as Nova
    vm_states: Sequence[str] | None = None    # from `status`
    task_states: Sequence[str | None] | None = None
    image: str | None = None
    flavor: str | None = None
    host: str | None = None
    node: str | None = None
    uuid: str | None = None
    reservation_id: str | None = None
    availability_zone: str | None = None
    key_name: str | None = None
    ip: str | None = None                    # regular expression over fixed IPv4 addresses
    ip6: str | None = None
    locked: bool | None = None
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    deleted: bool | None = False             # None: live and deleted (changes-since/before)
    tags: Sequence[str] | None = None        # servers carry no tags: any tag filter matches nothing
    not_tags: Sequence[str] | None = None
    sort_keys: Sequence[str] = ("created_at",)
    sort_dirs: Sequence[str] = ("desc",)
    limit: int | None = None
    marker: str | None = None


def states_for_statuses(statuses: Iterable[str]) -> tuple[list[str], list[str | None]]:
    """Nova's task_and_vm_state_from_status: the vm_states and task_states an API status list means
    ("default" among the task states: any task state)."""
    wanted = {s.lower() for s in statuses}
    vm_states: set[str] = set()
    task_states: set[str | None] = set()
    for vm_state, by_task in STATUS_MAP.items():
        for task, status in by_task.items():
            if status.lower() in wanted:
                vm_states.add(vm_state.value)
                task_states.add("default" if task == "default" else TaskState(task).value)
    return sorted(vm_states), sorted(task_states, key=lambda x: x or "")


def _regex(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidRequest(f"Invalid regular expression {pattern!r}: {exc}") from exc


def _where(q: ServerQuery) -> list[Any]:
    where: list[Any] = []
    if q.project_id is not None:
        where.append(Instance.project_id == q.project_id)
    if q.deleted is True:
        where.append(Instance.deleted_at.is_not(None))
    elif q.deleted is False:
        where.append(Instance.deleted_at.is_(None))
    changed = func.coalesce(Instance.updated_at, Instance.created_at)
    if q.changes_since is not None:
        where.append(changed >= q.changes_since)
    if q.changes_before is not None:
        where.append(changed <= q.changes_before)
    for value, column in ((q.user_id, Instance.user_id), (q.image, Instance.image_id),
                          (q.flavor, Instance.flavor_id), (q.host, Instance.host), (q.node, Instance.node),
                          (q.uuid, Instance.uuid), (q.reservation_id, Instance.reservation_id),
                          (q.availability_zone, Instance.availability_zone), (q.key_name, Instance.key_name)):
        if value is not None:
            where.append(column == value)
    if q.locked is not None:
        where.append(Instance.locked.is_(true()) if q.locked else Instance.locked.is_(false()))
    if q.vm_states is not None:
        where.append(Instance.vm_state.in_([VmState(v) for v in q.vm_states]))
    if q.task_states is not None and "default" not in q.task_states:
        tasks = [TaskState(t) for t in q.task_states if t is not None]
        where.append(or_(Instance.task_state.in_(tasks), Instance.task_state.is_(None))
                     if None in q.task_states else Instance.task_state.in_(tasks))
    if q.tags:
        where.append(false())
    return where


def _order(q: ServerQuery) -> list[tuple[Any, str]]:
    keys = list(q.sort_keys) or ["created_at"]
    dirs = list(q.sort_dirs) or ["desc"]
    order: list[tuple[Any, str]] = []
    for i, key in enumerate(keys):
        column = _SORT_COLUMNS.get(key)
        direction = (dirs[i] if i < len(dirs) else dirs[-1]).lower()
        if direction not in ("asc", "desc"):
            raise InvalidRequest(f"Invalid sort direction {direction!r}: use asc or desc")
        if column is not None and all(column is not c for c, _ in order):
            order.append((column, direction))
    if all(Instance.uuid is not c for c, _ in order):
        order.append((Instance.uuid, order[0][1] if order else "desc"))  # a total order: the marker is exact
    return order


def _after_marker(session: Any, order: list[tuple[Any, str]], marker: str, where: list[Any]) -> Any:
    """oslo.db's paginate_query criteria: rows strictly after the marker row in the sort order."""
    row = session.execute(select(*[c for c, _ in order]).where(Instance.uuid == marker, *where)).first()
    if row is None:
        raise InvalidRequest(f"marker [{marker}] not found")
    clauses = []
    for i, (column, direction) in enumerate(order):
        value = row[i]
        equal = [order[j][0] == row[j] if row[j] is not None else order[j][0].is_(None) for j in range(i)]
        if value is None:
            # NULLs sort first ascending (SQLite, and PostgreSQL with NULLS FIRST below): after a NULL come the
            # non-NULLs ascending; descending, nothing after a NULL but other NULLs (handled by the tie-break).
            step = column.is_not(None) if direction == "asc" else false()
        else:
            step = column > value if direction == "asc" else column < value
            if direction == "desc":
                step = or_(step, column.is_(None))
        clauses.append(and_(*equal, step))
    return or_(*clauses)


def list_instances(session: Any, q: ServerQuery) -> list[Instance]:
    """The instances matching the query, sorted, after the marker, at most `limit` of them."""
    where = _where(q)
    order = _order(q)
    stmt = select(Instance).where(*where)
    if q.marker:
        stmt = stmt.where(_after_marker(session, order, q.marker, where))
    stmt = stmt.order_by(*[c.asc().nulls_first() if d == "asc" else c.desc().nulls_last() for c, d in order])
    name_re, ip_re = _regex(q.name), _regex(q.ip)
    if q.ip6 is not None:
        return []  # no server has an IPv6 address
    if name_re is None and ip_re is None:
        if q.limit is not None:
            stmt = stmt.limit(q.limit)
        return list(session.scalars(stmt).all())
    out: list[Instance] = []
    rows = list(session.scalars(stmt).all())
    nics = related(session, rows).nics if ip_re is not None else None
    for inst in rows:
        if name_re is not None and not name_re.search(inst.name or ""):
            continue
        if ip_re is not None and not any(n.ip and ip_re.search(n.ip) for n in nics(inst)):  # type: ignore[misc]
            continue
        out.append(inst)
        if q.limit is not None and len(out) >= q.limit:
            break
    return out


def get_instance(session: Any, uuid: str, project_id: str | None = None, deleted: bool = False) -> Instance:
    """One instance by uuid, within `project_id` (None: any). NotFound with Nova's message otherwise."""
    inst = session.get(Instance, uuid)
    if (inst is None or (inst.deleted_at is not None and not deleted)
            or (project_id is not None and inst.project_id != project_id)):
        raise NotFound(f"Instance {uuid} could not be found.", instance_uuid=uuid)
    return inst


@dataclass
class Nic:
    """One NIC of a server as the views show it."""

    mac: str
    ip: str | None
    network_id: str | None
    network_name: str


@dataclass
class Related:
    hosts: dict[str, Host] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)       # server group id -> id (exists)
    ports: dict[str, list[Nic]] = field(default_factory=dict)
    volumes: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # uuid -> [(volume id, d_o_t)]
    security_groups: dict[str, list[str]] = field(default_factory=dict)  # uuid -> its tenant ports' group names

    def attached(self, inst: Instance) -> list[tuple[str, bool]]:
        return self.volumes.get(inst.uuid, [])

    def host(self, inst: Instance) -> Host | None:
        return self.hosts.get(inst.host) if inst.host else None

    def group_id(self, inst: Instance) -> str | None:
        return self.groups.get(inst.server_group_id) if inst.server_group_id else None

    def nics(self, inst: Instance) -> list[Nic]:
        return self.ports.get(inst.uuid, [])


def network_names(inst: Instance) -> list[str]:
    """The networks an instance was asked to have, one NIC each."""
    from kvmfleet.compute.common import instance_networks

    return instance_networks(inst)


def _nics_from_config(inst: Instance) -> list[Nic]:
    macs = (inst.config or {}).get("macs") or []
    return [Nic(mac=mac, ip=None, network_id=None, network_name=net)
            for mac, net in zip(macs, network_names(inst))]


def _nics(session: Any, instances: list[Instance]) -> tuple[dict[str, list[Nic]], dict[str, list[str]]]:
    try:
        from kvmfleet import network
    except ImportError:
        network = None
    ports_for = getattr(network, "ports_for", None)
    if ports_for is None:
        return {inst.uuid: _nics_from_config(inst) for inst in instances}, {}
    out: dict[str, list[Nic]] = {}
    for uuid, ports in ports_for(session, instances).items():
        out[uuid] = [Nic(mac=p.mac, ip=p.ip, network_id=p.network_id, network_name=p.network_name) for p in ports]
    groups = _tenant_nics(session, instances, out)
    return out, groups


def _tenant_nics(session: Any, instances: list[Instance], out: dict[str, list[Nic]]) -> dict[str, list[str]]:
    """Each instance's tenant ports (rows), in NIC order after its provider NICs' place, with their fixed IPs
    and security groups (one query each)."""
    from kvmfleet.store.network_models import IPAllocation, Network, Port, PortSecurityGroup, SecurityGroup

    uuids = [i.uuid for i in instances if i.deleted_at is None]
    if not uuids:
        return {}
    rows = session.execute(select(Port, Network.name).join(Network, Network.id == Port.network_id)
                           .where(Port.device_id.in_(uuids))).all()
    if not rows:
        return {}
    ids = [p.id for p, _ in rows]
    ips: dict[str, list[str]] = {}
    for port_id, address in session.execute(select(IPAllocation.port_id, IPAllocation.ip_address)
                                            .where(IPAllocation.port_id.in_(ids))).all():
        ips.setdefault(port_id, []).append(address)
    groups: dict[str, set[str]] = {}
    for device, name in session.execute(select(Port.device_id, SecurityGroup.name)
                                        .join(PortSecurityGroup, PortSecurityGroup.port_id == Port.id)
                                        .join(SecurityGroup, SecurityGroup.id == PortSecurityGroup.security_group_id)
                                        .where(Port.id.in_(ids))).all():
        groups.setdefault(device, set()).add(name)
    by_mac = {(p.device_id, p.mac_address.lower()): (p, name) for p, name in rows}
    for inst in instances:
        if inst.uuid not in uuids:
            continue
        nics = list(out.get(inst.uuid, []))
        for mac in (inst.config or {}).get("macs") or []:
            hit = by_mac.get((inst.uuid, str(mac).lower()))
            if hit is None:
                continue
            port, name = hit
            addresses = sorted(ips.get(port.id, [])) or [None]
            nics.extend(Nic(mac=port.mac_address, ip=a, network_id=port.network_id, network_name=name or port.network_id)
                        for a in addresses)
        out[inst.uuid] = nics
    return {uuid: sorted(names) for uuid, names in groups.items()}


def related(session: Any, instances: list[Instance]) -> Related:
    """The rows the views of these instances read, in four queries whatever the page size."""
    rel = Related()
    names = {i.host for i in instances if i.host}
    if names:
        rel.hosts = {h.name: h for h in session.scalars(select(Host).where(Host.name.in_(names))).all()}
    group_ids = {i.server_group_id for i in instances if i.server_group_id}
    if group_ids:
        rel.groups = {g: g for g in session.scalars(select(ServerGroup.id).where(ServerGroup.id.in_(group_ids)))}
    live = [i for i in instances if i.vm_state is not VmState.BUILDING]
    if live:
        rel.ports, rel.security_groups = _nics(session, live)
    if instances:
        from kvmfleet.store.volume_models import VolumeAttachment

        for uuid, volume_id, dot in session.execute(
                select(VolumeAttachment.instance_uuid, VolumeAttachment.volume_id,
                       VolumeAttachment.delete_on_termination)
                .where(VolumeAttachment.instance_uuid.in_([i.uuid for i in instances]))
                .order_by(VolumeAttachment.created_at)).all():
            rel.volumes.setdefault(uuid, []).append((volume_id, bool(dot)))
    return rel


def action_updated_at(action: Any) -> dt.datetime | None:
    """When an action last changed (Nova's instance_actions.updated_at): its latest event time, or its own."""
    times = [action.start_time, action.finish_time]
    for event in action.events:
        times += [event.start_time, event.finish_time]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def list_actions(session: Any, instance_uuid: str, *, limit: int | None = None, marker: str | None = None,
                 changes_since: dt.datetime | None = None, changes_before: dt.datetime | None = None) -> list[Any]:
    """An instance's actions newest first (Nova's actions_get), paged by request id."""
    from kvmfleet.store.models import InstanceAction

    rows = list(session.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == instance_uuid)
                                .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())).all())
    if changes_since is not None or changes_before is not None:
        rows = [a for a in rows if (u := action_updated_at(a)) is not None
                and (changes_since is None or u >= changes_since) and (changes_before is None or u <= changes_before)]
    if marker is not None:
        index = next((i for i, a in enumerate(rows) if a.request_id == marker), None)
        if index is None:
            raise InvalidRequest(f"Marker {marker} could not be found.")
        rows = rows[index + 1:]
    return rows[:limit] if limit is not None else rows


def get_action(session: Any, instance_uuid: str, request_id: str) -> Any:
    from kvmfleet.store.models import InstanceAction

    row = session.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == instance_uuid,
                                                       InstanceAction.request_id == request_id)
                          .order_by(InstanceAction.id.desc())).first()
    if row is None:
        raise NotFound(f"Action {request_id} not found", request_id=request_id)
    return row
