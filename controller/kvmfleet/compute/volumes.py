"""Volumes (Cinder's job) in the store: create, extend, delete, attach and detach are recorded here,
checked and committed (status creating / extending / deleting / attaching / detaching) before anything
touches a host; kvmfleet.compute.volume_ops then runs the host side and settles the status.

Placement: a volume of a local type lives on one host, chosen when it is created (the up, enabled host
holding the fewest volume gigabytes, or the host of the server it is created for); it attaches only to
servers on that host, and attaching it to a server elsewhere first moves it there (status maintenance),
which needs it detached. A volume of a shared type has no host: it attaches wherever its server runs.

Quotas (Cinder's, counted, never reserved): ``volumes`` (how many) and ``gigabytes`` (their sizes) per
project; limits from the quotas table (resource volumes / gigabytes), else quota_defaults, else the
``volume.quota`` configuration. The check takes the project's row lock (kvmfleet.quota.lock) and the
volume row is created in the same transaction, so of concurrent creates for the last gigabytes only one
wins.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kvmfleet import quota
from kvmfleet.compute.common import find_instance
from kvmfleet.compute.errors import InvalidInstanceState, InvalidRequest
from kvmfleet.config import VolumeType, get_settings
from kvmfleet.store.errors import NotFound
from kvmfleet.store.models import Host, Image, Instance, Quota, QuotaDefault
from kvmfleet.store.states import HostState, VmState
from kvmfleet.store.volume_models import Volume, VolumeAttachment

RESOURCES = ("volumes", "gigabytes")
MAX_SIZE_GB = 16384
# Cinder answers InvalidVolume (400) for an operation the volume's status does not allow
BUSY = ("creating", "attaching", "detaching", "extending", "deleting", "maintenance", "reserved")
RUNNABLE = tuple(b for b in BUSY if b != "reserved")  # reserved: a boot volume its server's build makes
# Cinder: a volume can be deleted when available, error, error_restoring, error_extending (and in-use never)
DELETABLE = ("available", "error", "error_extending", "error_deleting")
# Nova's attach/detach work in these server states (vm_state), with no task under way
ATTACHABLE_VM_STATES = (VmState.ACTIVE, VmState.PAUSED, VmState.STOPPED, VmState.SUSPENDED)
DEVICE = re.compile(r"^/dev/(vd[b-z])$")


def volume_type(name: str | None) -> VolumeType:
    settings = get_settings().volume
    name = name or settings.default_type
    vt = settings.types.get(name)
    if vt is None:
        raise NotFound(f"Volume type with name {name} could not be found.", volume_type=name)
    return vt


def find_volume(session: Session, key: str, project_id: str | None = None) -> Volume:
    """A volume by id, or by name (unique within the project if given); another project's is not found."""
    row = session.get(Volume, key)
    if row is not None and (project_id is None or row.project_id == project_id):
        return row
    query = select(Volume).where(Volume.name == key)
    if project_id:
        query = query.where(Volume.project_id == project_id)
    rows = session.scalars(query).all()
    if not rows:
        raise NotFound(f"Volume {key} could not be found.", volume=key)
    if len(rows) > 1:
        raise InvalidRequest(f"volume name {key} is ambiguous ({', '.join(r.id for r in rows)}): use the id")
    return rows[0]


# -- quotas ------------------------------------------------------------------------------------------


def limits(session: Session, project_id: str) -> dict[str, int]:
    settings = get_settings().volume
    out = {"volumes": settings.volumes, "gigabytes": settings.gigabytes}
    for row in session.scalars(select(QuotaDefault).where(QuotaDefault.resource.in_(RESOURCES))).all():
        out[row.resource] = row.hard_limit
    for row in session.scalars(select(Quota).where(Quota.project_id == project_id,
                                                   Quota.resource.in_(RESOURCES))).all():
        out[row.resource] = row.hard_limit
    return out


def usage(session: Session, project_id: str) -> dict[str, int]:
    count, gigabytes = session.execute(select(func.count(), func.coalesce(func.sum(Volume.size_gb), 0))
                                       .where(Volume.project_id == project_id)).one()
    return {"volumes": int(count), "gigabytes": int(gigabytes)}


def check_quota(session: Session, project_id: str, deltas: dict[str, int]) -> None:
    """OverQuota (Cinder's VolumeSizeExceedsAvailableQuota / VolumeLimitExceeded, 413) when adding
    ``deltas`` to the project's usage passes a limit. Takes the project's row lock first."""
    proj = quota.lock(session, project_id)
    hard, used = limits(session, project_id), usage(session, project_id)
    over = [{"resource": name, "requested": deltas[name], "used": used[name], "limit": hard[name]}
            for name in RESOURCES if deltas.get(name, 0) > 0 and hard[name] != quota.UNLIMITED
            and used[name] + deltas[name] > hard[name]]
    if over:
        raise quota.OverQuota(proj.name, over)


def set_limits(session: Session, project_id: str, **values: int | None) -> dict[str, int]:
    for name, value in values.items():
        if value is None:
            continue
        if name not in RESOURCES or isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise InvalidRequest(f"quota {name}: limit must be an integer >= -1, got {value!r}")
        row = session.scalars(select(Quota).where(Quota.project_id == project_id, Quota.resource == name)).first()
        if row is None:
            session.add(Quota(project_id=project_id, resource=name, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return limits(session, project_id)


# -- placement ---------------------------------------------------------------------------------------


def _usable_hosts(session: Session) -> list[Host]:
    return list(session.scalars(select(Host).where(Host.enabled.is_(True), Host.forced_down.is_(False),
                                                   Host.state == HostState.UP).order_by(Host.name)).all())


def place(session: Session, vt: VolumeType) -> str | None:
    """The host a new local volume goes to: the usable host holding the fewest volume gigabytes."""
    if vt.shared:
        return None
    hosts = _usable_hosts(session)
    if not hosts:
        raise InvalidRequest("No valid host was found: no compute host is up and enabled to hold the volume")
    held = dict(session.execute(select(Volume.host, func.coalesce(func.sum(Volume.size_gb), 0))
                                .where(Volume.volume_type == vt.name).group_by(Volume.host)).all())
    return min(hosts, key=lambda h: (held.get(h.name, 0), h.name)).name


def runner_host(session: Session, vol: Volume) -> str:
    """The host that runs the volume's host steps: its own, or (shared pools) any usable host."""
    if vol.host:
        return vol.host
    hosts = _usable_hosts(session)
    if not hosts:
        raise InvalidRequest(f"no compute host is up to reach the shared pool of volume {vol.id}")
    return hosts[0].name


# -- recording operations ----------------------------------------------------------------------------


def _size(value: Any, what: str = "size") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise InvalidRequest(f"Invalid input received: {what} must be an integer, got {value!r}") from None
    if not 1 <= value <= MAX_SIZE_GB:
        raise InvalidRequest(f"Invalid input received: {what} must be an integer between 1 and {MAX_SIZE_GB} "
                             f"(GiB), got {value}")
    return value


def record_create(session: Session, *, project_id: str, user_id: str | None, size: Any, name: str | None = None,
                  description: str | None = None, type_name: str | None = None, image_id: str | None = None,
                  metadata: dict[str, str] | None = None, host: str | None = None) -> Volume:
    """Check and store a new volume (status creating). ``host``: place it there (boot from volume puts
    the volume on its server's host). Raises with nothing stored."""
    size_gb = _size(size)
    vt = volume_type(type_name)
    if image_id is not None:
        image = session.get(Image, image_id)
        if image is None or (image.visibility not in ("public", "community")
                             and image.project_id not in (None, project_id)):
            raise InvalidRequest(f"Invalid input received: image {image_id} could not be found.")
        if image.status != "active":
            raise InvalidRequest(f"Invalid input received: image {image_id} is not active ({image.status})")
        min_gb = max(int(image.min_disk or 0), -(-int(image.virtual_size or image.size or 0) // 1024 ** 3))
        if size_gb < min_gb:
            raise InvalidRequest(f"Invalid input received: size {size_gb} GiB is smaller than image {image_id} "
                                 f"needs ({min_gb} GiB)")
    check_quota(session, project_id, {"volumes": 1, "gigabytes": size_gb})
    vol = Volume(name=name, description=description, project_id=project_id, user_id=user_id, size_gb=size_gb,
                 status="creating", volume_type=vt.name, host=None if vt.shared else (host or place(session, vt)),
                 image_id=image_id, bootable=image_id is not None, metadata_=dict(metadata or {}),
                 op_params={"op": "create"})
    session.add(vol)
    session.flush()
    return vol


def _busy(vol: Volume, doing: str) -> None:
    if vol.status in BUSY:
        raise InvalidRequest(f"Invalid volume: volume {vol.id} is {vol.status}; cannot {doing} it now.")


def record_extend(session: Session, vol: Volume, new_size: Any) -> int:
    """Cinder's os-extend: a bigger size (never smaller), available or in-use (3.42), quota for the difference."""
    size_gb = _size(new_size, "new_size")
    _busy(vol, "extend")
    if vol.status not in ("available", "in-use"):
        raise InvalidRequest(f"Invalid volume: volume {vol.id} status must be available or in-use to extend, "
                       f"but current status is: {vol.status}.")
    if size_gb <= vol.size_gb:
        raise InvalidRequest(f"Invalid input received: New size for extend must be greater than current size. "
                             f"(current: {vol.size_gb}, extended: {size_gb}).")
    check_quota(session, vol.project_id, {"gigabytes": size_gb - vol.size_gb})
    vol.op_params = {"op": "extend", "old_size": vol.size_gb, "was": vol.status}
    vol.size_gb, vol.status, vol.op_owner = size_gb, "extending", None
    session.flush()
    return size_gb


def record_delete(session: Session, vol: Volume, *, cascade: bool = False) -> None:
    if vol.attachment is not None or vol.status == "in-use":
        raise InvalidRequest(f"Invalid volume: Volume status must be available or error or error_restoring or "
                       f"error_extending or error_managing and must not be migrating, attached, belong to a group, "
                       f"have snapshots, awaiting a transfer, or be disassociated from snapshots after volume "
                       f"transfer. (volume {vol.id} is {vol.status}, attached to server "
                       f"{vol.attachment.instance_uuid if vol.attachment else '?'})")
    if vol.status == "deleting":
        return
    if vol.status not in DELETABLE and not (cascade and vol.status == "creating" and vol.op_owner is None):
        raise InvalidRequest(f"Invalid volume: volume {vol.id} status must be available or error to delete, "
                       f"but current status is: {vol.status}.")
    vol.status, vol.op_owner, vol.op_params = "deleting", None, {"op": "delete"}
    session.flush()


def _server_for_attach(session: Session, server: str, project_id: str | None) -> Instance:
    inst = find_instance(session, server, project_id)
    if project_id and inst.project_id != project_id:
        raise NotFound(f"Instance {server} could not be found.", server=server)
    if inst.vm_state not in ATTACHABLE_VM_STATES or inst.task_state is not None or not inst.host:
        raise InvalidInstanceState(f"Cannot 'attach_volume' instance {inst.uuid} while it is in vm_state "
                                   f"{inst.vm_state.value}, task_state {inst.task_state}")
    return inst


def record_attach(session: Session, vol: Volume, server: str, *, project_id: str | None,
                  device: str | None = None, delete_on_termination: bool = False) -> VolumeAttachment:
    """Nova's POST os-volume_attachments: the volume reserved for the server (status attaching, or
    maintenance first when a local volume must move to the server's host)."""
    inst = _server_for_attach(session, server, project_id)
    if vol.project_id != inst.project_id:
        raise NotFound(f"Volume {vol.id} could not be found.", volume=vol.id)
    if vol.attachment is not None:
        raise InvalidRequest(f"Invalid volume: volume {vol.id} is already attached to server "
                             f"{vol.attachment.instance_uuid} (multiattach is not supported)")
    if vol.status != "available":
        raise InvalidRequest(f"Invalid volume: volume {vol.id} status must be available to attach, "
                             f"but current status is: {vol.status}")
    if device is not None:
        match = DEVICE.match(device)
        if not match:
            raise InvalidRequest(f"The supplied device path ({device}) is invalid.")
        taken = set(session.scalars(select(VolumeAttachment.device)
                                    .where(VolumeAttachment.instance_uuid == inst.uuid)).all())
        if device in taken:
            raise InvalidRequest(f"The supplied device path ({device}) is in use.")
    moving = vol.host is not None and vol.host != inst.host
    att = VolumeAttachment(volume_id=vol.id, instance_uuid=inst.uuid, device=device, host=inst.host,
                           delete_on_termination=bool(delete_on_termination))
    session.add(att)
    vol.op_params = {"op": "attach", "attachment": att.id, "move_from": vol.host if moving else None}
    vol.status, vol.op_owner = "attaching", None
    session.flush()
    return att


def record_detach(session: Session, inst: Instance, volume_id: str) -> Volume:
    att = session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_uuid == inst.uuid,
                                                         VolumeAttachment.volume_id == volume_id)).first()
    if att is None:
        raise NotFound(f"Volume {volume_id} is not attached to server {inst.uuid}.", volume=volume_id)
    vol = att.volume
    if att.boot_index == 0:
        raise InvalidRequest(f"Can't detach root device volume {volume_id} of server {inst.uuid}")
    if vol.status != "in-use":
        raise InvalidRequest(f"Invalid volume: volume {vol.id} status must be in-use to detach, but current status "
                       f"is: {vol.status}")
    if inst.task_state is not None:
        raise InvalidInstanceState(f"Cannot 'detach_volume' instance {inst.uuid} while it is in task_state "
                                   f"{inst.task_state}")
    vol.status, vol.op_owner, vol.op_params = "detaching", None, {"op": "detach", "attachment": att.id}
    session.flush()
    return vol


def record_boot_volume(session: Session, inst: Instance, *, size: Any, delete_on_termination: bool,
                       type_name: str | None = None) -> Volume:
    """Boot from volume (block_device_mapping_v2 image -> volume, boot_index 0): the server's root volume,
    reserved for it (status reserved, attached as /dev/vda) in the server's create transaction; the build
    makes it from the image on the server's host. Quota counted now."""
    size_gb = _size(size, "volume_size")
    vt = volume_type(type_name)
    check_quota(session, inst.project_id, {"volumes": 1, "gigabytes": size_gb})
    vol = Volume(name=None, project_id=inst.project_id, user_id=inst.user_id, size_gb=size_gb, status="reserved",
                 volume_type=vt.name, host=None, image_id=inst.image_id, bootable=True, op_params={"op": "boot"})
    session.add(vol)
    session.flush()
    session.add(VolumeAttachment(volume_id=vol.id, instance_uuid=inst.uuid, device="/dev/vda", boot_index=0,
                                 delete_on_termination=bool(delete_on_termination)))
    session.flush()
    return vol


def attachments_of(session: Session, instance_uuid: str) -> list[VolumeAttachment]:
    return list(session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_uuid == instance_uuid)
                                .order_by(VolumeAttachment.device, VolumeAttachment.created_at)).all())
