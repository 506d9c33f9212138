"""The stable id of each project's ``default`` security group: uuid5 of the project (``group_id``).

kvmfleet.network.secgroups makes the group's row under this id (with Neutron's default rules) the first
time it is needed, so the id the servers API has always named stays the group's. The derived, read-only
view below (allow-everything rules on the provider network ``default``, whose host NAT filters nothing)
predates the rows; the Network API now serves the rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kvmfleet.network.model import NAMESPACE
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Project

DESCRIPTION = "Default security group (kvmfleet filters no traffic yet: everything is allowed)"


@dataclass(frozen=True)
class Rule:
    id: str
    security_group_id: str
    project_id: str
    direction: str  # ingress, egress
    ethertype: str  # IPv4, IPv6
    created_at: dt.datetime


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    description: str
    project_id: str
    rules: tuple[Rule, ...]
    created_at: dt.datetime


def group_id(project_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"security-group:{project_id}:default"))


def default_group(project: Project) -> SecurityGroup:
    gid = group_id(project.id)
    rules = tuple(Rule(id=str(uuid.uuid5(NAMESPACE, f"security-group-rule:{gid}:{d}:{e}")), security_group_id=gid,
                       project_id=project.id, direction=d, ethertype=e, created_at=project.created_at)
                  for d in ("egress", "ingress") for e in ("IPv4", "IPv6"))
    return SecurityGroup(id=gid, name="default", description=DESCRIPTION, project_id=project.id, rules=rules,
                         created_at=project.created_at)


def list_groups(session: Session, project_id: str | None) -> list[SecurityGroup]:
    """The default group of ``project_id`` (of every project when None: an admin's list)."""
    query = select(Project).order_by(Project.name)
    if project_id is not None:
        query = query.where(Project.id == project_id)
    return [default_group(p) for p in session.scalars(query).all()]


def get_group(session: Session, gid: str, project_id: str | None) -> SecurityGroup:
    for group in list_groups(session, project_id):
        if group.id == gid:
            return group
    raise NotFound(f"Security group {gid} does not exist", security_group=gid)


def list_rules(session: Session, project_id: str | None) -> list[Rule]:
    return [r for g in list_groups(session, project_id) for r in g.rules]


def get_rule(session: Session, rid: str, project_id: str | None) -> Rule:
    for rule in list_rules(session, project_id):
        if rule.id == rid:
            return rule
    raise NotFound(f"Security group rule {rid} does not exist", security_group_rule=rid)
