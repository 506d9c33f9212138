"""Network quotas (Neutron's): limits per project, usage counted from the rows, enforced at create.

Counted, never reserved, like kvmfleet.quota: ``check(session, project_id, resource)`` takes the project's
quota lock (kvmfleet.quota.lock: its row lock until the transaction ends), counts, and raises Neutron's
OverQuota (409) when one more would exceed the limit; the caller creates the row in the same transaction.
Ports count the tenant ports and the ports of servers on the provider network ``default``.

Limits: Neutron's [quotas] defaults, or the project's own (rows of table quotas named after Neutron's
resources: network, subnet, port, security_group, security_group_rule; set by PUT /network/v2.0/quotas).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kvmfleet import quota as quota_mod
from kvmfleet.network.errors import BadInput, OverQuota
from kvmfleet.store.models import Quota
from kvmfleet.store.network_models import Network, Port, SecurityGroup, SecurityGroupRule, Subnet

# Neutron's [quotas] defaults.
DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50, "security_group": 10,
            "security_group_rule": 100, "rbac_policy": 10, "subnetpool": -1}
COUNTED = {"network": Network, "subnet": Subnet, "port": Port, "security_group": SecurityGroup,
           "security_group_rule": SecurityGroupRule}
SETTABLE = tuple(COUNTED)


def default_limits() -> dict[str, int]:
    return dict(DEFAULTS)


def limits(session: Session | None = None, project_id: str | None = None) -> dict[str, int]:
    """The project's limits (Neutron's defaults without a session or project)."""
    out = dict(DEFAULTS)
    if session is not None and project_id:
        for row in session.scalars(select(Quota).where(Quota.project_id == project_id,
                                                       Quota.resource.in_(SETTABLE))).all():
            out[row.resource] = row.hard_limit
    return out


def _count(session: Session, project_id: str, resource: str) -> int:
    model = COUNTED[resource]
    used = int(session.scalar(select(func.count()).select_from(model).where(model.project_id == project_id)) or 0)
    if resource == "port":
        from kvmfleet.network import model as derived

        used += len(derived.list_ports(session, project_id))
    return used


def usage(session: Session, project_id: str) -> dict[str, int]:
    used = dict.fromkeys(DEFAULTS, 0)
    for resource in COUNTED:
        used[resource] = _count(session, project_id, resource)
    return used


def details(session: Session, project_id: str) -> dict[str, dict[str, Any]]:
    used = usage(session, project_id)
    return {k: {"limit": v, "used": used[k], "reserved": 0} for k, v in limits(session, project_id).items()}


def check(session: Session, project_id: str, resource: str, adding: int = 1) -> None:
    """OverQuota (409) unless the project may have ``adding`` more of ``resource``. Takes the quota lock."""
    quota_mod.lock(session, project_id)
    limit = limits(session, project_id)[resource]
    if limit < 0 or adding <= 0:
        return
    used = _count(session, project_id, resource)
    if used + adding > limit:
        raise OverQuota(project_id, [{"resource": resource, "requested": adding, "used": used, "limit": limit}])


def update(session: Session, project_id: str, values: dict[str, Any]) -> dict[str, int]:
    """Set the project's own limits (Neutron's quota update): -1 is unlimited."""
    for name, value in values.items():
        if name not in SETTABLE:
            raise BadInput(f"Unrecognized attribute(s) '{name}'")
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise BadInput(f"Invalid input for {name}. Reason: '{value}' is not an integer >= -1.")
    for name, value in values.items():
        row = session.scalars(select(Quota).where(Quota.project_id == project_id, Quota.resource == name)).first()
        if row is None:
            session.add(Quota(project_id=project_id, resource=name, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return limits(session, project_id)


def reset(session: Session, project_id: str) -> None:
    session.execute(delete(Quota).where(Quota.project_id == project_id, Quota.resource.in_(SETTABLE)))
