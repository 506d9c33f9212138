"""Rebuild an empty store from the hosts (DESIGN.md principle 1): `kvmfleet db rebuild --from-hosts`.

The hosts of an inventory are imported, their host_facts gathered in ONE executor job (the playbook a
host refresh runs), and every kvmfleet domain found becomes an instance again: uuid, name, project,
flavor, image and server group from the domain's kvmfleet metadata; host, power state, vCPUs, memory,
disk sizes, NICs (networks and MACs) from the facts. Allocations are claimed on the hosts the domains
are on, so host usage and quota usage (counted from the instances) are exact again.

What the metadata names is resolved by name in the store; what the store no longer has is resolved as
follows, and every such item is in the report:

- a project is created with that name (``projects_created``; its id is new, limits are the defaults);
- a flavor is recorded under its name from the domain's sizes (vCPUs, memory, root and ephemeral disk
  capacities, no swap), with extra spec ``kvmfleet:recovered=true`` (``flavors_created``); a known flavor
  whose sizes differ from the domain's gives the instance the domain's sizes (``flagged``);
- a server group is created in the instance's project; its policy is not in the metadata, so a soft one
  is inferred from where its members are (soft-affinity when they share one host, else
  soft-anti-affinity), flagged (``server_groups_created``); create it beforehand to keep the policy;
- an image is only looked up (by name, among images not deleted): register the images again before
  rebuilding. An instance whose image is unknown is recovered without one (stop, start and delete work;
  a rebuild or a live migration needs the image) and listed in ``unresolved``.

Also unresolved (and not recovered): a domain without a uuid in its metadata, a uuid found on several
hosts none of which runs it alone (an interrupted migration), a uuid the store keeps as deleted, and
every domain of a host that did not answer. The store is filled only when it has no live instances.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet import executor
from kvmfleet.compute import hosts as hostops
from kvmfleet.compute.common import DEFAULT_PROJECT, GIB, hostname_for
from kvmfleet.compute.create import new_reservation_id
from kvmfleet.scheduler.claims import InsufficientResources, Resources, claim_in
from kvmfleet.store.errors import InvalidInput
from kvmfleet.store.models import Allocation, Flavor, Host, Image, Instance, Project, ServerGroup, utcnow
from kvmfleet.store.resources import create_flavor, create_project, create_server_group
from kvmfleet.store.states import AllocationKind, HostState, PowerState, ServerGroupPolicy, VmState

RECOVERED_SPEC = "kvmfleet:recovered"
# The vm_state a recovered instance gets from its power state (Nova's power-state sync semantics).
VM_STATE_FOR = {PowerState.RUNNING: VmState.ACTIVE, PowerState.SHUTDOWN: VmState.STOPPED,
                PowerState.CRASHED: VmState.STOPPED, PowerState.PAUSED: VmState.PAUSED,
                PowerState.SUSPENDED: VmState.SUSPENDED}


@dataclass
class RebuildReport:
    job_id: str = ""
    hosts: list[str] = field(default_factory=list)
    down: dict[str, str] = field(default_factory=dict)  # host -> why it gave no facts
    instances: list[dict[str, Any]] = field(default_factory=list)
    projects_created: list[str] = field(default_factory=list)
    flavors_created: list[dict[str, Any]] = field(default_factory=list)
    server_groups_created: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)     # resolved, but not as the store had it
    unresolved: list[dict[str, Any]] = field(default_factory=list)  # could not be resolved at all

    @property
    def ok(self) -> bool:
        return not self.unresolved and not self.down

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "hosts": self.hosts, "down": self.down, "instances": self.instances,
                "projects_created": self.projects_created, "flavors_created": self.flavors_created,
                "server_groups_created": self.server_groups_created, "flagged": self.flagged,
                "unresolved": self.unresolved, "ok": self.ok}


@dataclass
class _Found:
    """One kvmfleet domain to recover: the host it is on and its host_facts entry."""

    host: str
    dom: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any]:
        if not isinstance(self.dom.get("metadata"), dict):
            self.dom["metadata"] = {}
        return self.dom["metadata"]

    @property
    def uuid(self) -> str:
        return str(self.meta.get("uuid") or "")

    @property
    def power(self) -> PowerState:
        return PowerState.from_libvirt(str(self.dom.get("power_state") or "").lower())

    def sizes(self) -> dict[str, int]:
        """The flavor sizes the domain shows: vCPUs, memory, root and ephemeral disks (GiB, rounded up)."""
        capacities = self.dom.get("disk_capacities") or {}
        owned = [str(p) for p in self.meta.get("disks") or self.dom.get("disks") or []]
        root = next((p for p in owned if Path(p).name == "disk"), None)
        ephemeral = [p for p in owned if Path(p).name.startswith("disk.eph")]

        def gib(path: str | None) -> int:
            size = capacities.get(path) if path else None
            return math.ceil(int(size) / GIB) if size else 0

        return {"vcpus": int(self.dom.get("vcpus") or 0), "memory_mb": int(self.dom.get("memory_mb") or 0),
                "root_gb": gib(root), "ephemeral_gb": sum(gib(p) for p in ephemeral), "swap": 0}


def ensure_empty(session: Session) -> None:
    live = session.scalar(select(func.count()).select_from(Instance).where(Instance.deleted_at.is_(None)))
    if live:
        raise InvalidInput(f"the store already has {live} instance(s): `db rebuild --from-hosts` only fills a "
                           "store that has none (point KVMFLEET_DATABASE_URL at an empty one)")


def rebuild_from_hosts(store: Any, inventory: str | Path, timeout: int = 300) -> RebuildReport:
    """Import the inventory's hosts, gather their facts in one job and re-create the instances, their
    allocations, and the projects, flavors and server groups they name. InvalidInput when the store has
    live instances already (nothing is changed then)."""
    with store.transaction() as session:
        ensure_empty(session)
        names = [r.host.name for r in hostops.import_inventory(session, inventory)]
        inv = hostops.inventory(session.scalars(select(Host).where(Host.name.in_(names)).order_by(Host.name)))
    result = executor.run(executor.Job(playbook="host_refresh.yml", inventory=inv, extravars={},
                                       forks=min(50, max(5, len(names))), timeout=timeout))
    facts: dict[str, dict[str, Any]] = {}
    report = RebuildReport(job_id=result.id, hosts=sorted(names))
    for name in names:
        hr = result.host(name)
        got = (hr.result_of("host_facts") or {}).get("host_facts") if hr.ok else None
        if got:
            facts[name] = got
        else:
            report.down[name] = result.error_for(name) or "no host_facts result"
    now = utcnow()

    def fill(session: Session) -> RebuildReport:
        ensure_empty(session)  # again, under the write lock: a concurrent create would have won
        out = RebuildReport(job_id=report.job_id, hosts=report.hosts, down=dict(report.down))
        for host in session.scalars(select(Host).where(Host.name.in_(names))).all():
            if host.name in facts:
                hostops._apply_facts(host, facts[host.name], now)
            else:
                host.state = HostState.DOWN
                out.unresolved.append({"host": host.name, "what": "host",
                                       "detail": f"gave no facts ({out.down[host.name]}): its instances, if "
                                                 "any, are not recovered"})
        session.flush()
        _Rebuild(session, out).run(_choose(facts, out))
        return out

    return store.run_in_transaction(fill)


def _choose(facts: Mapping[str, dict[str, Any]], report: RebuildReport) -> list[_Found]:
    """One domain per instance uuid: the only copy, or the only running one of several."""
    by_uuid: dict[str, list[_Found]] = {}
    for host in sorted(facts):
        for dom in facts[host].get("instances") or []:
            found = _Found(host, dom)
            if not found.uuid:
                report.unresolved.append({"host": host, "domain": dom.get("domain"), "what": "domain",
                                          "detail": "its kvmfleet metadata has no instance uuid"})
                continue
            by_uuid.setdefault(found.uuid, []).append(found)
    chosen = []
    for uuid, copies in sorted(by_uuid.items()):
        running = [c for c in copies if c.power is PowerState.RUNNING]
        if len(copies) == 1 or len(running) == 1:
            pick = copies[0] if len(copies) == 1 else running[0]
            chosen.append(pick)
            for other in copies:
                if other is not pick:
                    report.flagged.append({"instance": uuid, "what": "copy", "host": other.host,
                                           "detail": f"a {other.power.value} copy is also on {other.host}; the "
                                                     f"running one on {pick.host} was recovered, that one left alone"})
            continue
        report.unresolved.append({"instance": uuid, "what": "copies", "detail": "found on hosts "
                                  f"{', '.join(c.host for c in copies)} ({', '.join(c.power.value for c in copies)}):"
                                  " not recovered, decide which copy is the server and remove the other"})
    return chosen


def _created_at(text: Any) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(str(text))  # Python 3.11+ reads a trailing Z
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class _Rebuild:
    """The rows for the chosen domains, inside the caller's transaction."""

    def __init__(self, session: Session, report: RebuildReport) -> None:
        self.session = session
        self.report = report

    def flag(self, uuid: str, what: str, detail: str) -> None:
        self.report.flagged.append({"instance": uuid, "what": what, "detail": detail})

    def run(self, chosen: list[_Found]) -> None:
        keep = []
        for found in chosen:
            if self.session.get(Instance, found.uuid) is not None:
                self.report.unresolved.append({"instance": found.uuid, "what": "uuid", "host": found.host,
                                               "detail": "the store keeps a deleted instance with this uuid"})
            else:
                keep.append(found)
        groups = self._groups(keep)
        for found in keep:
            self._instance(found, groups)

    def project(self, key: str) -> Project:
        row = self.session.scalars(select(Project).where(Project.name == key)).first() or self.session.get(Project, key)
        if row is None:
            row = create_project(self.session, key, description="recreated by kvmfleet db rebuild --from-hosts")
            self.report.projects_created.append(key)
        return row

    def _groups(self, found: list[_Found]) -> dict[tuple[str, str], ServerGroup]:
        members: dict[tuple[str, str], list[_Found]] = {}
        for f in found:
            if f.meta.get("server_group"):
                members.setdefault((self._project_name(f), str(f.meta["server_group"])), []).append(f)
        groups = {}
        for (project_name, name), group_members in sorted(members.items()):
            project = self.project(project_name)
            row = self.session.scalars(select(ServerGroup).where(ServerGroup.project_id == project.id,
                                                                 ServerGroup.name == name)).first()
            if row is None:
                hosts = {m.host for m in group_members}
                policy = (ServerGroupPolicy.SOFT_AFFINITY if len(group_members) > 1 and len(hosts) == 1
                          else ServerGroupPolicy.SOFT_ANTI_AFFINITY)
                row = create_server_group(self.session, name, policy, project.id)
                self.report.server_groups_created.append(
                    {"name": name, "project": project.name, "id": row.id, "policy": policy.value,
                     "detail": f"policy inferred from {len(group_members)} member(s) on {len(hosts)} host(s)"})
            groups[(project_name, name)] = row
        return groups

    def _project_name(self, found: _Found) -> str:
        name = str(found.meta.get("project") or "")
        if not name:
            self.flag(found.uuid, "project", f"no project in the metadata: put in project {DEFAULT_PROJECT}")
            found.meta["project"] = name = DEFAULT_PROJECT
        return name

    def flavor_fields(self, found: _Found) -> dict[str, Any]:
        sizes = found.sizes()
        if sizes["vcpus"] < 1 or sizes["memory_mb"] < 1:
            raise InvalidInput(f"domain {found.dom.get('domain')} on {found.host} reports no vCPUs or memory")
        name = str(found.meta.get("flavor") or "") or (
            f"recovered-{sizes['vcpus']}c-{sizes['memory_mb']}m-{sizes['root_gb'] + sizes['ephemeral_gb']}g")
        flavor = self.session.scalars(select(Flavor).where(Flavor.name == name)).first()
        if flavor is None:
            flavor = create_flavor(self.session, name, **sizes, extra_specs={RECOVERED_SPEC: "true"},
                                   description=f"recorded by kvmfleet db rebuild --from-hosts from the sizes of "
                                               f"server {found.uuid} on host {found.host}")
            self.report.flavors_created.append({**flavor.as_dict(), "recovered": True,
                                                "detail": f"unknown flavor: recorded from server {found.uuid}"})
        fields = flavor.as_instance_fields()
        differ = [k for k in ("vcpus", "memory_mb", "root_gb", "ephemeral_gb")
                  if sizes[k] and fields[k] != sizes[k] and not (k == "root_gb" and not fields[k])]
        if differ:  # the host is the truth: the instance gets the sizes its domain has
            self.flag(found.uuid, "flavor", f"flavor {name} differs from the domain in "
                      + ", ".join(f"{k} ({fields[k]} vs {sizes[k]})" for k in differ) + ": the domain's kept")
            fields.update({k: sizes[k] for k in differ})
        return fields

    def image_id(self, found: _Found) -> str | None:
        name = str(found.meta.get("image") or "")
        rows = self.session.scalars(select(Image).where(Image.name == name, Image.status != "deleted")).all()
        if len(rows) == 1:
            return rows[0].id
        why = (f"{len(rows)} images are named {name}" if rows
               else f"image {name or '(none named)'} is not registered")
        self.report.unresolved.append({"instance": found.uuid, "what": "image", "host": found.host,
                                       "detail": f"{why}: recovered without an image (register it and set it, "
                                                 "or rebuild and live migration will refuse)"})
        return None

    def _instance(self, found: _Found, groups: Mapping[tuple[str, str], ServerGroup]) -> None:
        meta, dom = found.meta, found.dom
        try:
            fields = self.flavor_fields(found)
        except InvalidInput as exc:
            self.report.unresolved.append({"instance": found.uuid, "what": "flavor", "host": found.host,
                                           "detail": f"{exc.msg}: not recovered"})
            return
        project = self.project(self._project_name(found))
        group = groups.get((project.name, str(meta.get("server_group") or "")))
        name = str(meta.get("name") or "")
        if not name:
            name = str(dom.get("domain") or found.uuid)
            self.flag(found.uuid, "name", f"no name in the metadata: named {name}")
        power = found.power
        vm_state = VM_STATE_FOR.get(power, VmState.ERROR)
        nics = dom.get("nics") or []
        networks = [str(n["network"]) for n in nics if n.get("network")]
        if len(networks) != len(nics):
            self.flag(found.uuid, "nics", "a NIC not on a libvirt network (a bridge) is not recorded")
        config: dict[str, Any] = {"hostname": hostname_for(name), "networks": networks,
                                  "macs": [str(n["mac"]) for n in nics if n.get("network") and n.get("mac")],
                                  "recovered_from_host": found.host}
        created = _created_at(meta.get("created_at")) or utcnow()
        inst = Instance(uuid=found.uuid, name=name, project_id=project.id, image_id=self.image_id(found),
                        host=found.host, node=found.host, server_group_id=group.id if group else None,
                        vm_state=vm_state, task_state=None, power_state=power, config=config,
                        reservation_id=new_reservation_id(), created_at=created, launched_at=created, **fields)
        if vm_state is VmState.ERROR:
            inst.fault_message = f"recovered from host {found.host} in power state {power.value}"
            inst.fault_created_at = utcnow()
        self.session.add(inst)
        self.session.flush()
        inst.task_state = None  # a None given to the constructor yields to the column's default (SCHEDULING)
        self.session.flush()
        self._allocate(inst)
        self.report.instances.append({"id": inst.uuid, "name": name, "host": found.host, "project": project.name,
                                      "flavor": inst.flavor_name, "image": meta.get("image") or None,
                                      "server_group": group.name if group else None,
                                      "vm_state": vm_state.value, "power_state": power.value})

    def _allocate(self, inst: Instance) -> None:
        resources = Resources.from_flavor(inst)
        try:
            claim_in(self.session, inst.uuid, inst.host or "", resources)
        except InsufficientResources as exc:
            # The domain holds the resources whatever the capacity says: record them, and say so.
            host = self.session.scalars(select(Host).where(Host.name == inst.host)).one()
            self.session.add(Allocation(instance_uuid=inst.uuid, host_id=host.id, kind=AllocationKind.INSTANCE,
                                        **resources.as_dict()))
            self.session.flush()
            self.flag(inst.uuid, "allocation", f"{exc.msg}; allocated anyway (the domain is there)")
