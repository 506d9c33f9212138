"""Volumes (revision 0005): Cinder's volumes and Nova's volume attachments, in Cinder's terms.

A volume lives in a libvirt storage pool (its ``volume_type`` names the backend: a pool per host, or a
pool every host sees). ``host`` is the host whose local pool holds it (None for a shared pool).
``status`` is Cinder's: creating, available, reserved, attaching, in-use, detaching, extending, deleting,
error, error_deleting, error_extending, maintenance (moving between hosts). ``op_owner`` is the
"<hostname>:<pid>:<worker>" running the volume's current operation, so a service that starts again
re-drives what a dead one left half done (every host step is idempotent).

An attachment ties one volume to one instance (no multi-attach): ``device`` is what Nova reports
(/dev/vdb), ``serial`` what the guest sees (/dev/disk/by-id/virtio-<serial>).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kvmfleet.store.models import Base, Project, new_uuid, utcnow


class Volume(Base):
    """A block storage volume (Cinder's volume)."""

    __tablename__ = "volumes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str | None] = mapped_column(String(255), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    size_gb: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="creating")
    volume_type: Mapped[str] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    availability_zone: Mapped[str] = mapped_column(String(255), default="nova")
    image_id: Mapped[str | None] = mapped_column(String(36), default=None)  # created from this image
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    op_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    op_params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what the operation under way needs
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(default=None, onupdate=utcnow)

    project: Mapped[Project] = relationship()
    attachment: Mapped[VolumeAttachment | None] = relationship(back_populates="volume", uselist=False,
                                                               viewonly=True)

    __table_args__ = (Index("ix_volumes_project", "project_id"), Index("ix_volumes_status", "status"))

    @property
    def pool_path_name(self) -> str:
        """The volume's file name in its pool (tenant names never reach a host)."""
        return f"volume-{self.id}"

    @property
    def serial(self) -> str:
        """What the guest sees as the disk's serial (virtio takes 20 characters): /dev/disk/by-id/virtio-<serial>."""
        return self.id[:20]


class VolumeAttachment(Base):
    """A volume attached to a server (Nova's block device mapping of a volume)."""

    __tablename__ = "volume_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"))
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"))
    device: Mapped[str | None] = mapped_column(String(64), default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    boot_index: Mapped[int | None] = mapped_column(Integer, default=None)
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, default=False)
    attached_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    volume: Mapped[Volume] = relationship(back_populates="attachment")

    __table_args__ = (UniqueConstraint("volume_id", name="uq_volume_attachments_volume_id"),
                      Index("ix_volume_attachments_instance", "instance_uuid"))
