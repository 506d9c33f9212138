"""Count-based quotas per project (Nova's instances, cores, ram), counted from the store, never reserved.

Usage is counted from instances that are not deleted: instances = their number, cores = sum of vcpus,
ram = sum of memory_mb; during a resize (``new_flavor`` set) an instance counts the larger of its two
flavors, so a pending resize cannot be used to exceed a limit.

Races: ``check()`` first bumps the project's generation (``UPDATE projects SET generation=generation+1``),
which holds the project's row lock until the transaction ends (on SQLite, BEGIN IMMEDIATE serialises
writers). The caller creates the instance row (or records the new flavor) in the SAME transaction and
commits; a concurrent check for the same project waits for that commit and then counts the new row. So
of several requests racing for the last unit exactly one wins. After the claim commits, ``recheck()``
counts again with no delta (limits may have been lowered meanwhile); the caller rolls back if it raises.

Limits: a project's own limit (table quotas), else the operator default (table quota_defaults), else
the configuration default (config.quota). -1 means unlimited.

The rest of Nova's quota set (COUNTED) is counted where it is used: ``check_key_pairs`` (per user),
``check_server_groups`` (per project), ``check_server_group_members`` (per group, when members are
created), ``check_metadata_items`` (per server); ``detail()`` gives every resource's limit and use as
Nova's quota detail does. ``limits()``/``default_limits()`` keep to instances/cores/ram; ``all_limits()``
and ``all_default_limits()`` give ALL_RESOURCES.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kvmfleet.config import get_settings
from kvmfleet.store.api import get_project
from kvmfleet.store.errors import InvalidInput, NotFound, StoreError
from kvmfleet.store.models import Instance, KeyPair, Project, Quota, QuotaDefault, ServerGroup

RESOURCES = ("instances", "cores", "ram")
# Counted per project (server groups), per user (key pairs) or per server / group (metadata items, group
# members), checked by the functions below; with RESOURCES they are Nova's quota set at 2.57.
COUNTED = ("key_pairs", "server_groups", "server_group_members", "metadata_items")
# Shown by the API before 2.57 (injected files) and 2.36 (nova-network), never enforced: Nova's defaults.
LEGACY = {"injected_files": 5, "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
          "fixed_ips": -1, "floating_ips": -1, "security_groups": -1, "security_group_rules": -1}
ALL_RESOURCES = RESOURCES + COUNTED + tuple(LEGACY)
UNLIMITED = -1


class OverQuota(StoreError):
    """Requested usage exceeds a limit. ``over`` lists EVERY resource over its limit as
    {resource, requested, used, limit}."""

    def __init__(self, project: str, over: list[dict[str, Any]]) -> None:
        names = ", ".join(o["resource"] for o in over)
        parts = "; ".join(f"{o['resource']}: requested {o['requested']}, used {o['used']}, limit {o['limit']}"
                          for o in over)
        super().__init__(f"Quota exceeded for {names} in project {project}: {parts}", project=project, over=over)
        self.over = over


def _project(session: Session, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(session, project)


def _validate_limits(values: Mapping[str, int | None]) -> dict[str, int]:
    out = {}
    for name, value in values.items():
        if name not in ALL_RESOURCES:
            raise InvalidInput(f"unknown quota resource {name!r} (known: {', '.join(ALL_RESOURCES)})")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
            raise InvalidInput(f"quota {name}: limit must be an integer >= -1 (-1 = unlimited), got {value!r}")
        out[name] = value
    return out


def all_default_limits(session: Session) -> dict[str, int]:
    """Every resource's default (ALL_RESOURCES): operator defaults over configuration defaults."""
    limits = {**get_settings().quota.as_dict(), **LEGACY}
    for row in session.scalars(select(QuotaDefault)).all():
        if row.resource in limits:
            limits[row.resource] = row.hard_limit
    return limits


def default_limits(session: Session) -> dict[str, int]:
    """The instances/cores/ram limits a project without its own gets."""
    defaults = all_default_limits(session)
    return {name: defaults[name] for name in RESOURCES}


def all_limits(session: Session, project: Project | str) -> dict[str, int]:
    """A project's effective limit of every resource (ALL_RESOURCES)."""
    proj = _project(session, project)
    result = all_default_limits(session)
    for row in session.scalars(select(Quota).where(Quota.project_id == proj.id)).all():
        if row.resource in result:
            result[row.resource] = row.hard_limit
    return result


def limits(session: Session, project: Project | str) -> dict[str, int]:
    """A project's effective instances/cores/ram limits."""
    every = all_limits(session, project)
    return {name: every[name] for name in RESOURCES}


def usage(session: Session, project: Project | str) -> dict[str, int]:
    """Current usage counted from the project's instances that are not deleted."""
    proj = _project(session, project)
    live = (Instance.project_id == proj.id, Instance.deleted_at.is_(None))
    count, cores, ram = session.execute(
        select(func.count(Instance.uuid), func.coalesce(func.sum(Instance.vcpus), 0),
               func.coalesce(func.sum(Instance.memory_mb), 0)).where(*live)).one()
    cores, ram = int(cores), int(ram)
    for vcpus, memory_mb, new in session.execute(
            select(Instance.vcpus, Instance.memory_mb, Instance.new_flavor).where(*live,
                                                                                   Instance.new_flavor.is_not(None))):
        if isinstance(new, Mapping):  # a JSON null is not a resize in progress
            cores += max(0, int(new.get("vcpus", 0)) - vcpus)
            ram += max(0, int(new.get("memory_mb", 0)) - memory_mb)
    return {"instances": int(count), "cores": cores, "ram": ram}


def lock(session: Session, project: Project | str) -> Project:
    """Take the project's quota lock for the rest of the transaction (bumps its generation)."""
    proj = _project(session, project)
    result = session.execute(update(Project).where(Project.id == proj.id)
                             .values(generation=Project.generation + 1).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise NotFound(f"project {proj.id} not found", project=proj.id)
    return proj


def check(session: Session, project: Project | str, deltas: Mapping[str, int], *, take_lock: bool = True
          ) -> dict[str, dict[str, int]]:
    """Raise OverQuota if adding ``deltas`` (e.g. {"instances": 1, "cores": 2, "ram": 512}) to the project's
    usage exceeds a limit, listing every resource over. Negative or zero deltas never fail (except that a
    zero delta fails if usage is already over, which is what recheck relies on). Create the instance row in
    the same transaction before committing. Returns {resource: {limit, used, requested}}."""
    for name, value in deltas.items():
        if name not in RESOURCES:
            raise InvalidInput(f"unknown quota resource {name!r} (known: {', '.join(RESOURCES)})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"quota delta {name} must be an integer, got {value!r}")
    proj = lock(session, project) if take_lock else _project(session, project)
    hard = limits(session, proj)
    used = usage(session, proj)
    report = {name: {"limit": hard[name], "used": used[name], "requested": int(deltas.get(name, 0))}
              for name in RESOURCES}
    over = [{"resource": name, **report[name]} for name in RESOURCES
            if name in deltas and deltas[name] >= 0 and hard[name] != UNLIMITED
            and used[name] + deltas[name] > hard[name]]
    if over:
        raise OverQuota(proj.name, [{k: o[k] for k in ("resource", "requested", "used", "limit")} for o in over])
    return report


def recheck(session: Session, project: Project | str) -> dict[str, dict[str, int]]:
    """Count again with no delta (after the claim commits): OverQuota if usage now exceeds a limit."""
    return check(session, project, {name: 0 for name in RESOURCES})


def set_limits(session: Session, project: Project | str, **values: int | None) -> dict[str, int]:
    """Set the project's own limits (None leaves a resource unchanged). Returns the effective limits."""
    proj = _project(session, project)
    for name, value in _validate_limits(values).items():
        row = session.scalars(select(Quota).where(Quota.project_id == proj.id, Quota.resource == name)).first()
        if row is None:
            session.add(Quota(project_id=proj.id, resource=name, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return limits(session, proj)


def reset_limits(session: Session, project: Project | str) -> dict[str, int]:
    """Drop the project's own limits: it falls back to the defaults."""
    proj = _project(session, project)
    session.execute(delete(Quota).where(Quota.project_id == proj.id))
    return limits(session, proj)


def set_default_limits(session: Session, **values: int | None) -> dict[str, int]:
    """Set operator defaults for every project without its own limit (Nova's quota class 'default')."""
    for name, value in _validate_limits(values).items():
        row = session.get(QuotaDefault, name)
        if row is None:
            session.add(QuotaDefault(resource=name, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return default_limits(session)


def _over(proj: Project, resource: str, requested: int, used: int, limit: int) -> None:
    if requested >= 0 and limit != UNLIMITED and used + requested > limit:
        raise OverQuota(proj.name, [{"resource": resource, "requested": requested, "used": used, "limit": limit}])


def count_key_pairs(session: Session, user_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(KeyPair).where(KeyPair.user_id == user_id)) or 0)


def count_server_groups(session: Session, project: Project | str) -> int:
    proj = _project(session, project)
    return int(session.scalar(select(func.count()).select_from(ServerGroup)
                              .where(ServerGroup.project_id == proj.id)) or 0)


def count_server_group_members(session: Session, group_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(Instance).where(
        Instance.server_group_id == group_id, Instance.deleted_at.is_(None))) or 0)


def check_key_pairs(session: Session, project: Project | str, user_id: str, adding: int = 1) -> None:
    """OverQuota if ``user_id`` may not hold ``adding`` more key pairs (Nova counts key pairs per user
    against the project's key_pairs limit). Takes the project's quota lock; create in the same transaction."""
    proj = lock(session, project)
    _over(proj, "key_pairs", adding, count_key_pairs(session, user_id), all_limits(session, proj)["key_pairs"])


def check_server_groups(session: Session, project: Project | str, adding: int = 1) -> None:
    """OverQuota if the project may not have ``adding`` more server groups. Takes the quota lock."""
    proj = lock(session, project)
    _over(proj, "server_groups", adding, count_server_groups(session, proj), all_limits(session, proj)["server_groups"])


def check_server_group_members(session: Session, project: Project | str, group_id: str, adding: int) -> None:
    """OverQuota if the server group may not take ``adding`` more members (server_group_members). Call it
    where the members are created, after the project's quota lock (``check``) is taken."""
    proj = _project(session, project)
    _over(proj, "server_group_members", adding, count_server_group_members(session, group_id),
          all_limits(session, proj)["server_group_members"])


def check_metadata_items(session: Session, project: Project | str, count: int) -> None:
    """OverQuota if a server would hold ``count`` metadata items (metadata_items is per server)."""
    proj = _project(session, project)
    _over(proj, "metadata_items", count, 0, all_limits(session, proj)["metadata_items"])


def detail(session: Session, project: Project | str, user_id: str | None = None,
           missing_ok: bool = False) -> dict[str, dict[str, int]]:
    """{resource: {limit, in_use, reserved}} for ALL_RESOURCES, as Nova's quota detail: instances, cores,
    ram and server_groups counted for the project, key_pairs for ``user_id`` (0 without one: key pairs
    belong to users), 0 for the per-server and per-group resources and the legacy ones; reserved is
    always 0 (counted, never reserved). With ``missing_ok`` an unknown project id gets the defaults and
    no usage (as Nova answers for a project it has never seen)."""
    used = {name: 0 for name in ALL_RESOURCES}
    try:
        proj = _project(session, project)
    except NotFound:
        if not missing_ok:
            raise
        hard = all_default_limits(session)
    else:
        hard = all_limits(session, proj)
        used.update(usage(session, proj))
        used["server_groups"] = count_server_groups(session, proj)
    if user_id:
        used["key_pairs"] = count_key_pairs(session, user_id)
    return {name: {"limit": hard[name], "in_use": used[name], "reserved": 0} for name in ALL_RESOURCES}


def update_limits(session: Session, project: Project | str, values: Mapping[str, int], force: bool = False
                  ) -> dict[str, int]:
    """Nova's quota-set update: every new limit is checked first (>= what the project uses, unless
    ``force``; -1 is unlimited), then all are set. InvalidInput names the first one refused."""
    proj = lock(session, project)
    in_use = {name: d["in_use"] for name, d in detail(session, proj).items()}
    checked = _validate_limits(values)
    if not force:
        for name, limit in checked.items():
            if limit != UNLIMITED and limit < in_use.get(name, 0):
                raise InvalidInput(f"Quota limit {limit} for {name} must be greater than or equal to already used "
                                   f"and reserved {in_use[name]}.", resource=name)
    set_limits(session, proj, **checked)
    return all_limits(session, proj)


def flavor_deltas(flavor: Any, count: int = 1) -> dict[str, int]:
    """Quota deltas for ``count`` new instances of a flavor (object or dict with vcpus, memory_mb)."""
    get = flavor.get if isinstance(flavor, Mapping) else lambda k: getattr(flavor, k)
    return {"instances": count, "cores": int(get("vcpus")) * count, "ram": int(get("memory_mb")) * count}
