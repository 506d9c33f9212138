"""Create and delete the tenant-facing resources (projects, flavors, server groups) with validation, so the
CLI, the REST API and the lifecycle share one set of rules. All run inside the caller's transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, update

from kvmfleet.store.api import get_flavor, get_project, get_server_group
from kvmfleet.store.errors import AlreadyExists, InUse, InvalidInput
from kvmfleet.store.models import Flavor, Image, Instance, Project, ServerGroup
from kvmfleet.store.states import ServerGroupPolicy

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")

# Nova-like flavors sized for the tiny test image (16 MiB qcow2, boots in ~3 s under TCG). Ids follow
# Nova's classic flavorids (1-5) and devstack's m1.nano/m1.micro (42/84).
DEFAULT_FLAVORS: tuple[dict[str, Any], ...] = (
    {"id": "42", "name": "m1.nano", "vcpus": 1, "memory_mb": 128, "root_gb": 1},
    {"id": "84", "name": "m1.micro", "vcpus": 1, "memory_mb": 256, "root_gb": 1},
    {"id": "1", "name": "m1.tiny", "vcpus": 1, "memory_mb": 512, "root_gb": 1},
    {"id": "2", "name": "m1.small", "vcpus": 1, "memory_mb": 2048, "root_gb": 20},
    {"id": "3", "name": "m1.medium", "vcpus": 2, "memory_mb": 4096, "root_gb": 40},
    {"id": "4", "name": "m1.large", "vcpus": 4, "memory_mb": 8192, "root_gb": 80},
    {"id": "5", "name": "m1.xlarge", "vcpus": 8, "memory_mb": 16384, "root_gb": 160},
)


def validate_name(value: Any, what: str) -> str:
    """1-64 characters of [A-Za-z0-9._-], not starting with '-' or '.' (the collection's rule)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(f"invalid {what} name {value!r}: use 1-64 characters of A-Z a-z 0-9 . _ -, "
                           "not starting with '-' or '.'", name=value)
    return value


def _non_negative(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def create_project(session: Any, name: str, description: str = "", enabled: bool = True,
                   domain_id: str = "default", project_id: str | None = None) -> Project:
    """A project (a Keystone project in ``domain_id``). Names are unique across domains here (the CLI
    finds projects by name alone) and follow the collection's rule: they reach the hosts' metadata."""
    validate_name(name, "project")
    if session.scalars(select(Project).where(Project.name == name)).first() is not None:
        raise AlreadyExists(f"project {name} already exists", project=name)
    if project_id is not None and session.get(Project, project_id) is not None:
        raise AlreadyExists(f"project id {project_id} already exists", project=project_id)
    extra = {"id": project_id} if project_id is not None else {}
    project = Project(name=name, description=description or "", enabled=enabled, domain_id=domain_id, **extra)
    session.add(project)
    session.flush()
    return project


def delete_project(session: Any, key: str) -> Project:
    """Delete a project with no live instances and no images; its server groups, quotas and the records
    of its deleted instances go with it."""
    project = get_project(session, key)
    live = session.execute(select(func.count(Instance.uuid)).where(Instance.project_id == project.id,
                                                                   Instance.deleted_at.is_(None))).scalar_one()
    if live:
        raise InUse(f"project {project.name} still has {live} instance(s): delete them first", project=project.name)
    images = session.execute(select(func.count(Image.id)).where(Image.project_id == project.id,
                                                                Image.status != "deleted")).scalar_one()
    if images:
        raise InUse(f"project {project.name} still owns {images} image(s): delete them first", project=project.name)
    # deleted images that servers still name outlive their project, without an owner
    session.execute(update(Image).where(Image.project_id == project.id).values(project_id=None))
    session.execute(delete(Instance).where(Instance.project_id == project.id))
    session.execute(delete(ServerGroup).where(ServerGroup.project_id == project.id))
    session.delete(project)
    session.flush()
    return project


def parse_properties(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; a pair without '=' or with an empty key is an error naming it."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"invalid property {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def create_flavor(session: Any, name: str, *, vcpus: int, memory_mb: int, root_gb: int = 0, ephemeral_gb: int = 0,
                  swap: int = 0, extra_specs: Mapping[str, str] | None = None, flavor_id: str | None = None,
                  description: str | None = None, is_public: bool = True) -> Flavor:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidInput(f"invalid flavor name {name!r}: 1-255 characters")
    _non_negative(vcpus, "vcpus", 1)
    _non_negative(memory_mb, "ram (MiB)", 1)
    _non_negative(root_gb, "disk (GiB)")
    _non_negative(ephemeral_gb, "ephemeral (GiB)")
    _non_negative(swap, "swap (MiB)")
    if flavor_id is not None:
        validate_name(flavor_id, "flavor id")
    if session.scalars(select(Flavor).where(Flavor.name == name)).first() is not None:
        raise AlreadyExists(f"flavor {name} already exists", flavor=name)
    if flavor_id is not None and session.get(Flavor, flavor_id) is not None:
        raise AlreadyExists(f"flavor id {flavor_id} already exists", flavor=flavor_id)
    kwargs = {"id": flavor_id} if flavor_id is not None else {}
    flavor = Flavor(name=name, vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb, ephemeral_gb=ephemeral_gb,
                    swap=swap, extra_specs=dict(extra_specs or {}), description=description, is_public=is_public,
                    **kwargs)
    session.add(flavor)
    session.flush()
    return flavor


def create_default_flavors(session: Any) -> list[Flavor]:
    """Create the DEFAULT_FLAVORS that do not exist yet (by name or id); returns those created."""
    created = []
    for spec in DEFAULT_FLAVORS:
        exists = session.scalars(select(Flavor).where(Flavor.name == spec["name"])).first()
        if exists is None and session.get(Flavor, spec["id"]) is None:
            created.append(create_flavor(session, spec["name"], vcpus=spec["vcpus"], memory_mb=spec["memory_mb"],
                                         root_gb=spec["root_gb"], flavor_id=spec["id"]))
    return created


def delete_flavor(session: Any, key: str) -> Flavor:
    """Delete a flavor. Instances keep their copy of its fields (as in Nova)."""
    flavor = get_flavor(session, key)
    session.delete(flavor)
    session.flush()
    return flavor


def create_server_group(session: Any, name: str, policy: str | ServerGroupPolicy, project: str,
                        max_server_per_host: int | None = None, user_id: str | None = None) -> ServerGroup:
    validate_name(name, "server group")
    try:
        pol = ServerGroupPolicy(policy)
    except ValueError:
        raise InvalidInput(f"invalid server group policy {policy!r} (one of: "
                           f"{', '.join(p.value for p in ServerGroupPolicy)})") from None
    if max_server_per_host is not None:
        if pol is not ServerGroupPolicy.ANTI_AFFINITY:
            raise InvalidInput("max_server_per_host is only valid with the anti-affinity policy")
        _non_negative(max_server_per_host, "max_server_per_host", 1)
    proj = get_project(session, project)
    if session.scalars(select(ServerGroup).where(ServerGroup.project_id == proj.id,
                                                 ServerGroup.name == name)).first() is not None:
        raise AlreadyExists(f"server group {name} already exists in project {proj.name}", server_group=name)
    group = ServerGroup(name=name, policy=pol, project_id=proj.id, max_server_per_host=max_server_per_host,
                        user_id=user_id)
    session.add(group)
    session.flush()
    return group


def delete_server_group(session: Any, key: str, project: str | None = None) -> ServerGroup:
    """Delete a server group; its members simply leave it (as in Nova)."""
    project_id = get_project(session, project).id if project else None
    group = get_server_group(session, key, project_id)
    session.delete(group)
    session.flush()
    return group
