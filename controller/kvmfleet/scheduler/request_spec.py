"""What is being placed: Nova's RequestSpec, reduced to what kvmfleet's filters and weighers read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kvmfleet.scheduler.exceptions import InvalidRequest
from kvmfleet.scheduler.host_state import canonical_arch

SERVER_GROUP_POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


def _count(what: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequest(f"{what} must be an integer >= {minimum}, got {value!r}", field=what)
    return value


def _only(what: str, data: Mapping[str, Any], known: Iterable[str]) -> None:
    if not isinstance(data, Mapping):
        raise InvalidRequest(f"{what} must be a mapping, got {data!r}")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidRequest("{}: unknown key(s) {} (known: {})".format(what, ", ".join(unknown), ", ".join(known)))


@dataclass(slots=True)
class Flavor:
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    extra_specs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _count("flavor vcpus", self.vcpus, 1)
        _count("flavor memory_mb", self.memory_mb, 1)
        _count("flavor disk_gb", self.disk_gb, 0)
        self.extra_specs = {str(k): str(v) for k, v in (self.extra_specs or {}).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flavor:
        _only("flavor", data, ("name", "vcpus", "memory_mb", "disk_gb", "extra_specs"))
        return cls(**data)


@dataclass(slots=True)
class ImageMeta:
    """The image properties the scheduler uses (Glance's ``hw_architecture``, ``min_ram``, ``min_disk``)."""

    arch: str | None = None
    min_ram: int = 0
    min_disk: int = 0

    def __post_init__(self) -> None:
        self.arch = canonical_arch(self.arch)
        _count("image min_ram", self.min_ram)
        _count("image min_disk", self.min_disk)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageMeta:
        _only("image", data, ("arch", "min_ram", "min_disk"))
        return cls(**data)


@dataclass(slots=True)
class ServerGroup:
    """A server group and where its members already are.

    ``hosts`` maps host name -> number of members on it. The scheduler adds each instance it places
    (as Nova appends to ``instance_group.hosts``), so the members of one multi-create, or the later
    requests of a workload sharing this object, see each other.
    """

    name: str
    policy: str
    max_server_per_host: int | None = None
    hosts: dict[str, int] = field(default_factory=dict)
    label: str = ""  # shown in messages when ``name`` is an id

    def __post_init__(self) -> None:
        if self.policy not in SERVER_GROUP_POLICIES:
            raise InvalidRequest("server group {}: policy {!r} is not one of {}".format(self.name, self.policy, ", ".join(SERVER_GROUP_POLICIES)))
        if self.max_server_per_host is not None:
            if self.policy != "anti-affinity":
                raise InvalidRequest(f"server group {self.name}: max_server_per_host applies only to anti-affinity, not {self.policy}")
            _count("server group max_server_per_host", self.max_server_per_host, 1)
        # Own copy: placing members updates it, and must not change the caller's data.
        if isinstance(self.hosts, (list, tuple)):  # a plain list of member hosts, one entry per member
            counts: dict[str, int] = {}
            for host in self.hosts:
                counts[host] = counts.get(host, 0) + 1
            self.hosts = counts
        else:
            self.hosts = dict(self.hosts or {})
        for host, n in self.hosts.items():
            _count(f"server group {self.name} members on {host}", n, 1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerGroup:
        _only("server_group", data, ("name", "policy", "max_server_per_host", "hosts"))
        return cls(**data)

    def add_member(self, host: str) -> None:
        self.hosts[host] = self.hosts.get(host, 0) + 1

    def remove_member(self, host: str) -> None:
        left = self.hosts.get(host, 0) - 1
        if left > 0:
            self.hosts[host] = left
        else:
            self.hosts.pop(host, None)


@dataclass(slots=True)
class RequestSpec:
    flavor: Flavor
    image: ImageMeta | None = field(default_factory=ImageMeta)
    availability_zone: str | None = None
    project: str | None = None
    server_group: ServerGroup | None = None
    num_instances: int = 1
    ignore_hosts: frozenset[str] = frozenset()
    force_hosts: frozenset[str] | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.image is None:
            self.image = ImageMeta()
        _count("num_instances", self.num_instances, 1)
        self.ignore_hosts = frozenset(self.ignore_hosts or ())
        if self.force_hosts is not None:
            self.force_hosts = frozenset(self.force_hosts)
        # The compute API refuses these in Nova (FlavorMemoryTooSmall / FlavorDiskTooSmall); refuse here too.
        if self.image.min_ram and self.flavor.memory_mb < self.image.min_ram:
            raise InvalidRequest(f"flavor {self.flavor.name} has {self.flavor.memory_mb} MB of memory, "
                                 f"below the image's min_ram {self.image.min_ram} MB")
        if self.image.min_disk and self.flavor.disk_gb and self.flavor.disk_gb < self.image.min_disk:
            raise InvalidRequest(f"flavor {self.flavor.name} has a {self.flavor.disk_gb} GB disk, "
                                 f"below the image's min_disk {self.image.min_disk} GB")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestSpec:
        """Build from plain data (the shape used by test case files and the CLI)."""
        _only("request spec", data, ("flavor", "image", "availability_zone", "project", "server_group",
                                     "num_instances", "ignore_hosts", "force_hosts", "request_id"))
        if "flavor" not in data:
            raise InvalidRequest("request spec needs a flavor")
        args = dict(data)
        args["flavor"] = Flavor.from_dict(data["flavor"])
        if data.get("image") is not None:
            args["image"] = ImageMeta.from_dict(data["image"])
        else:
            args.pop("image", None)
        if data.get("server_group") is not None:
            args["server_group"] = ServerGroup.from_dict(data["server_group"])
        return cls(**args)

    def describe(self) -> str:
        """One phrase for messages: what was asked for."""
        f = self.flavor
        parts = [f"flavor {f.name} ({f.vcpus} vcpus, {f.memory_mb} MB RAM, {f.disk_gb} GB disk)"]
        if self.image.arch:
            parts.append(f"arch {self.image.arch}")
        if self.availability_zone:
            parts.append(f"availability zone {self.availability_zone}")
        if self.server_group is not None:
            parts.append(f"server group {self.server_group.label or self.server_group.name} "
                         f"({self.server_group.policy})")
        return ", ".join(parts)
