"""The store's tables (SQLAlchemy 2 typed ORM), named in Nova's terms.

Timestamps are timezone-aware UTC on the Python side (stored naive UTC, so SQLite and PostgreSQL agree).
Enums are stored as their string values (VARCHAR, no native enum types) so new values need no migration.
Instances are soft-deleted: ``deleted_at`` set and vm_state ``deleted``; everything else is deleted for real.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid as uuidlib
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kvmfleet.store.states import AllocationKind, HostState, PowerState, ServerGroupPolicy, TaskState, VmState

# Stable constraint names so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC; returns aware UTC. Naive input is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


def _str_enum(cls: type[enum.Enum], length: int = 40) -> Enum:
    return Enum(cls, native_enum=False, create_constraint=False, length=length,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


def _ratio_default(kind: str):
    def default() -> float:
        from kvmfleet.config import get_settings  # read at insert time: the ratio a new host starts with

        return float(getattr(get_settings(), f"{kind}_allocation_ratio"))
    return default


def _reserved_default(kind: str):
    def default() -> int:
        from kvmfleet.config import get_settings

        return int(getattr(get_settings(), f"reserved_host_{kind}"))
    return default


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dt.datetime: UTCDateTime(),
        dict[str, Any]: MutableDict.as_mutable(JSON()),
        list[Any]: MutableList.as_mutable(JSON()),
    }


class Project(Base):
    """A tenant (Keystone project). ``generation`` is bumped by quota checks to serialise them."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: uuidlib.uuid4().hex)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # Keystone: the owning domain (revision 0003); "default" is the Default domain's id.
    domain_id: Mapped[str] = mapped_column(String(64), default="default", server_default=text("'default'"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    quotas: Mapped[list[Quota]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Flavor(Base):
    """Nova flavor. ``id`` is the user-visible flavorid (Nova's ``flavorid``)."""

    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(String(255), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)  # MiB, as in Nova
    extra_specs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("vcpus > 0", name="vcpus_positive"),
        CheckConstraint("memory_mb > 0", name="memory_positive"),
        CheckConstraint("root_gb >= 0 AND ephemeral_gb >= 0 AND swap >= 0", name="disks_not_negative"),
    )

    def as_instance_fields(self) -> dict[str, Any]:
        """The flavor fields an instance copies at build time."""
        return {"flavor_id": self.id, "flavor_name": self.name, "vcpus": self.vcpus, "memory_mb": self.memory_mb,
                "root_gb": self.root_gb, "ephemeral_gb": self.ephemeral_gb, "swap": self.swap,
                "flavor_extra_specs": dict(self.extra_specs or {})}

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "vcpus": self.vcpus, "memory_mb": self.memory_mb,
                "root_gb": self.root_gb, "ephemeral_gb": self.ephemeral_gb, "swap": self.swap,
                "extra_specs": dict(self.extra_specs or {})}


class Image(Base):
    """A registered guest image (a Glance image whose data is a file on the controller)."""

    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # Glance: names are optional display names, not unique (lookups by name skip deleted images).
    name: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    file_path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)  # bytes of the file
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    disk_format: Mapped[str] = mapped_column(String(16), default="qcow2")
    arch: Mapped[str] = mapped_column(String(32), default="x86_64")
    min_ram: Mapped[int] = mapped_column(Integer, default=0)  # MiB
    min_disk: Mapped[int] = mapped_column(Integer, default=0)  # GiB
    status: Mapped[str] = mapped_column(String(32), default="active")  # Glance: queued/active/deactivated...
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), default=None)
    # Glance v2 fields (revision 0003). file_path is "" while the image is queued (no data yet).
    visibility: Mapped[str] = mapped_column(String(16), default="public", server_default=text("'public'"))
    protected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    container_format: Mapped[str] = mapped_column(String(16), default="bare", server_default=text("'bare'"))
    checksum: Mapped[str | None] = mapped_column(String(32), default=None)  # md5, Glance's legacy checksum
    os_hash_algo: Mapped[str | None] = mapped_column(String(16), default=None)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), default=None)
    tags: Mapped[list[Any]] = mapped_column(MutableList.as_mutable(JSON()), default=list,
                                            server_default=text("'[]'"))
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)


aggregate_hosts = Table(
    "aggregate_hosts",
    Base.metadata,
    Column("aggregate_id", ForeignKey("aggregates.id", ondelete="CASCADE"), primary_key=True),
    Column("host_id", ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
)


class Host(Base):
    """A compute host (Nova's compute node + service). Capacity: (total - reserved) * allocation_ratio.

    ``generation`` is bumped by every claim and release on this host (compare-and-set, see
    kvmfleet.scheduler.claims); ``facts`` is the last ``host_facts`` result.
    """

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    address: Mapped[str | None] = mapped_column(String(255), default=None)
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[HostState] = mapped_column(_str_enum(HostState, 16), default=HostState.DOWN)
    cpu_allocation_ratio: Mapped[float] = mapped_column(Float, default=_ratio_default("cpu"))
    ram_allocation_ratio: Mapped[float] = mapped_column(Float, default=_ratio_default("ram"))
    disk_allocation_ratio: Mapped[float] = mapped_column(Float, default=_ratio_default("disk"))
    reserved_host_memory_mb: Mapped[int] = mapped_column(Integer, default=_reserved_default("memory_mb"))
    reserved_host_disk_gb: Mapped[int] = mapped_column(Integer, default=_reserved_default("disk_gb"))
    reserved_host_cpus: Mapped[int] = mapped_column(Integer, default=_reserved_default("cpus"))
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    local_gb: Mapped[int] = mapped_column(Integer, default=0)
    arch: Mapped[str | None] = mapped_column(String(32), default=None)
    cpu_model: Mapped[str | None] = mapped_column(String(255), default=None)
    virt_types: Mapped[list[Any]] = mapped_column(default=list)
    hypervisor_type: Mapped[str | None] = mapped_column(String(64), default=None)
    hypervisor_version: Mapped[str | None] = mapped_column(String(64), default=None)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    facts: Mapped[dict[str, Any] | None] = mapped_column(MutableDict.as_mutable(JSON()), default=None)
    failed_builds: Mapped[int] = mapped_column(Integer, default=0)
    # Nova's service forced_down (revision 0003): an operator fenced the host; it counts as down.
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Ansible connection vars (ansible_user, ansible_ssh_private_key_file, ansible_ssh_common_args,
    # ansible_python_interpreter...): paths and options, never a password or key material.
    connection: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict,
                                                       server_default=text("'{}'"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    aggregates: Mapped[list[Aggregate]] = relationship(secondary=aggregate_hosts, back_populates="hosts")
    allocations: Mapped[list[Allocation]] = relationship(viewonly=True)

    @property
    def capacity(self) -> dict[str, float]:
        """Schedulable totals: (total - reserved) * ratio, per resource (Placement's formula)."""
        return {
            "vcpus": (self.vcpus - self.reserved_host_cpus) * self.cpu_allocation_ratio,
            "memory_mb": (self.memory_mb - self.reserved_host_memory_mb) * self.ram_allocation_ratio,
            "disk_gb": (self.local_gb - self.reserved_host_disk_gb) * self.disk_allocation_ratio,
        }


class Aggregate(Base):
    """A host aggregate; ``metadata_`` (column ``metadata``) is its key/value metadata."""

    __tablename__ = "aggregates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None)  # revision 0003

    hosts: Mapped[list[Host]] = relationship(secondary=aggregate_hosts, back_populates="aggregates")

    @property
    def availability_zone(self) -> str | None:
        return (self.metadata_ or {}).get("availability_zone")


class ServerGroup(Base):
    """Nova server group (one policy, API microversion 2.64 shape). Members are instances pointing here."""

    __tablename__ = "server_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    policy: Mapped[ServerGroupPolicy] = mapped_column(_str_enum(ServerGroupPolicy, 32))
    max_server_per_host: Mapped[int | None] = mapped_column(Integer, default=None)  # anti-affinity rule
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    project: Mapped[Project] = relationship()
    members: Mapped[list[Instance]] = relationship(
        primaryjoin="and_(ServerGroup.id == Instance.server_group_id, "
        "Instance.deleted_at.is_(None))", viewonly=True)

    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_server_groups_project_name"),
        CheckConstraint("max_server_per_host IS NULL OR max_server_per_host > 0", name="max_server_per_host"),
    )


class Instance(Base):
    """A server. Flavor fields are copied at build time (Nova's instance.flavor); ``old_flavor`` and
    ``new_flavor`` hold the other side during a resize. ``config`` holds build inputs (user_data,
    hostname, ...) — it may contain secrets: never log it."""

    __tablename__ = "instances"

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255))  # Nova display_name
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    flavor_id: Mapped[str | None] = mapped_column(ForeignKey("flavors.id", ondelete="SET NULL"), default=None)
    flavor_name: Mapped[str] = mapped_column(String(255))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)
    flavor_extra_specs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(MutableDict.as_mutable(JSON()), default=None)
    new_flavor: Mapped[dict[str, Any] | None] = mapped_column(MutableDict.as_mutable(JSON()), default=None)
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)  # host name, Nova's instance.host
    node: Mapped[str | None] = mapped_column(String(255), default=None)
    availability_zone: Mapped[str | None] = mapped_column(String(255), default=None)
    vm_state: Mapped[VmState] = mapped_column(_str_enum(VmState), default=VmState.BUILDING)
    task_state: Mapped[TaskState | None] = mapped_column(_str_enum(TaskState), default=TaskState.SCHEDULING)
    power_state: Mapped[PowerState] = mapped_column(_str_enum(PowerState, 16), default=PowerState.NOSTATE)
    fault_message: Mapped[str | None] = mapped_column(Text, default=None)
    fault_details: Mapped[str | None] = mapped_column(Text, default=None)
    fault_created_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    server_group_id: Mapped[str | None] = mapped_column(ForeignKey("server_groups.id", ondelete="SET NULL"),
                                                        default=None)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Nova API fields (revision 0003): server metadata (user key/values, not secret), description,
    # key pair name, reservation id and launch index of a multi-create, locked.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", MutableDict.as_mutable(JSON()), default=dict,
                                                      server_default=text("'{}'"))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    key_name: Mapped[str | None] = mapped_column(String(255), default=None)
    reservation_id: Mapped[str | None] = mapped_column(String(255), default=None)
    launch_index: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    launched_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    project: Mapped[Project] = relationship()
    flavor: Mapped[Flavor | None] = relationship()
    image: Mapped[Image | None] = relationship()
    server_group: Mapped[ServerGroup | None] = relationship()
    allocations: Mapped[list[Allocation]] = relationship(viewonly=True)
    actions: Mapped[list[InstanceAction]] = relationship(back_populates="instance",
                                                         order_by="InstanceAction.id")

    __table_args__ = (
        Index("ix_instances_project_deleted", "project_id", "deleted_at"),
        Index("ix_instances_host", "host"),
    )

    @property
    def domain_name(self) -> str:
        """The libvirt domain name the controller gives this instance (tenant names never reach libvirt)."""
        return f"kvmfleet-{self.uuid}"

    @property
    def status(self) -> str:
        from kvmfleet.store.states import api_status

        return api_status(self.vm_state, self.task_state)

    @property
    def fault(self) -> dict[str, Any] | None:
        if self.fault_message is None:
            return None
        return {"message": self.fault_message, "details": self.fault_details, "created": self.fault_created_at}


class Allocation(Base):
    """Resources an instance holds on a host. One ``instance`` row per placed instance; during a move a
    ``migration`` row keeps the source side until confirm/revert. Written only by scheduler.claims."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    kind: Mapped[AllocationKind] = mapped_column(_str_enum(AllocationKind, 16), default=AllocationKind.INSTANCE)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    instance: Mapped[Instance] = relationship()
    host: Mapped[Host] = relationship()

    __table_args__ = (
        UniqueConstraint("instance_uuid", "kind", name="uq_allocations_instance_kind"),
        CheckConstraint("vcpus >= 0 AND memory_mb >= 0 AND disk_gb >= 0", name="not_negative"),
    )


class QuotaDefault(Base):
    """Operator-set default limit for every project (Nova's default quota class). Absent: config default."""

    __tablename__ = "quota_defaults"

    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class Quota(Base):
    """A project's own limit for one resource; -1 is unlimited."""

    __tablename__ = "quotas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(String(64))
    hard_limit: Mapped[int] = mapped_column(Integer)

    project: Mapped[Project] = relationship(back_populates="quotas")

    __table_args__ = (UniqueConstraint("project_id", "resource", name="uq_quotas_project_resource"),)


class InstanceAction(Base):
    """One user-visible operation on an instance (Nova instance action): create, delete, start, stop,
    reboot, pause, unpause, suspend, resume, resize, confirmResize, revertResize, rebuild, ..."""

    __tablename__ = "instance_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(36), default=None)
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    start_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)

    instance: Mapped[Instance] = relationship(back_populates="actions")
    events: Mapped[list[InstanceActionEvent]] = relationship(back_populates="action", order_by="InstanceActionEvent.id",
                                                             cascade="all, delete-orphan")


class InstanceActionEvent(Base):
    """A step of an action (compute__do_build_and_run_instance, schedule_instances, ...). ``result`` is
    Success/Error; ``job_id`` names the executor job that did the step."""

    __tablename__ = "instance_action_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("instance_actions.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(default=None)
    result: Mapped[str | None] = mapped_column(String(32), default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(MutableDict.as_mutable(JSON()), default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)

    action: Mapped[InstanceAction] = relationship(back_populates="events")


class Migration(Base):
    """A move of an instance between hosts (Nova's migrations table, revision 0004): a live migration, a
    cold migration or resize to another host, an evacuation. ``status`` follows Nova's values per type
    (live: queued -> preparing -> running -> completed | failed | error | cancelled; cold: pre-migrating ->
    migrating -> finished -> confirmed | reverted | error; evacuation: accepted -> done | failed).
    The byte counters are libvirt's job statistics of a live migration, as its job reported them last."""

    __tablename__ = "migrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"), index=True)
    migration_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    source_compute: Mapped[str | None] = mapped_column(String(255), default=None)
    source_node: Mapped[str | None] = mapped_column(String(255), default=None)
    dest_compute: Mapped[str | None] = mapped_column(String(255), default=None)
    dest_node: Mapped[str | None] = mapped_column(String(255), default=None)
    dest_host: Mapped[str | None] = mapped_column(String(255), default=None)  # the destination's address
    old_flavor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    new_flavor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    project_id: Mapped[str | None] = mapped_column(String(36), default=None)
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    memory_total: Mapped[int | None] = mapped_column(BigInteger, default=None)
    memory_processed: Mapped[int | None] = mapped_column(BigInteger, default=None)
    memory_remaining: Mapped[int | None] = mapped_column(BigInteger, default=None)
    disk_total: Mapped[int | None] = mapped_column(BigInteger, default=None)
    disk_processed: Mapped[int | None] = mapped_column(BigInteger, default=None)
    disk_remaining: Mapped[int | None] = mapped_column(BigInteger, default=None)
    downtime_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    __table_args__ = (Index("ix_migrations_status_type", "status", "migration_type"),)


INSTANCE_ACTIONS = ("create", "delete", "start", "stop", "reboot", "pause", "unpause", "suspend", "resume",
                    "resize", "confirmResize", "revertResize", "rebuild", "migrate", "live-migration", "evacuate")


# -- identity (Keystone v3, revision 0003) ---------------------------------------------------------


class Domain(Base):
    """A Keystone domain; ``default`` (name Default) is made by ``kvmfleet identity bootstrap``."""

    __tablename__ = "domains"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: uuidlib.uuid4().hex)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    """A Keystone user; ``password_hash`` is bcrypt, never the password."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: uuidlib.uuid4().hex)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    default_project_id: Mapped[str | None] = mapped_column(String(64), default=None)
    email: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    password_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_users_domain_name"),)


class Role(Base):
    """A Keystone role (admin, member, reader, manager, service, or one an admin made)."""

    __tablename__ = "roles"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=lambda: uuidlib.uuid4().hex)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    domain_id: Mapped[str | None] = mapped_column(String(64), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RoleAssignment(Base):
    """A role a user holds on a project (or on a domain)."""

    __tablename__ = "role_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), default=None)
    domain_id: Mapped[str | None] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), default=None)

    __table_args__ = (
        UniqueConstraint("role_id", "user_id", "project_id", "domain_id", name="uq_role_assignments_target"),
        CheckConstraint("(project_id IS NULL) <> (domain_id IS NULL)", name="one_target"),
    )


class Token(Base):
    """An issued token, random and stored by its SHA-256 (the token itself is never stored): a restart
    accepts only tokens it issued, and a revoked one stays revoked until it expires."""

    __tablename__ = "tokens"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), default=None)
    domain_id: Mapped[str | None] = mapped_column(String(64), default=None)  # domain-scoped token
    methods: Mapped[list[Any]] = mapped_column(default=list)
    audit_id: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


# -- key pairs (Nova os-keypairs, revision 0003) --------------------------------------------------


class KeyPair(Base):
    """A user's public key (Nova keeps key pairs per user); the private key of a generated pair is
    returned once and never stored."""

    __tablename__ = "key_pairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64), default=None)
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_key_pairs_user_name"),)


# -- durable tasks (revision 0003) ----------------------------------------------------------------


class Task(Base):
    """A persisted unit of work (principle 8): committed before the API answers 202, run by one worker.

    ``state``: queued -> running -> done | failed. ``owner`` is "<hostname>:<pid>:<worker>"; the owner
    renews ``lease_expires_at`` while it runs, and a running task whose lease ran out (its owner died)
    is recovered. ``batch`` groups tasks to run as one executor job (a create request's instances).
    ``params`` never holds a secret (user data stays in the instance's config)."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    instance_uuid: Mapped[str | None] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"),
                                                      default=None, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    batch: Mapped[str | None] = mapped_column(String(64), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    owner_pid: Mapped[int | None] = mapped_column(Integer, default=None)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_tasks_state_created", "state", "created_at"),)


# -- volumes (0005), console tokens (0006) and networks (0007), in modules of their own; imported here so
# Base.metadata has them -------------------------------------------------------------------------------------

from kvmfleet.store import console_models as _console_models  # noqa: F401
from kvmfleet.store import network_models as _network_models  # noqa: F401
from kvmfleet.store import volume_models as _volume_models  # noqa: F401
