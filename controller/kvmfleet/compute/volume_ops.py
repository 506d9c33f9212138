"""The host side of volume operations (playbooks/volume.yml), and who runs them.

kvmfleet.compute.volumes records an operation on the volume row (status creating / extending / deleting
/ attaching / detaching, ``op_params`` saying what, ``op_owner`` None) and commits; then ``run`` takes it
with a compare-and-set of ``op_owner`` (so exactly one process runs it), runs the steps on the host and
settles the status in one transaction:

    create  present on its host (from the image, cached on the host first)   -> available | error
    extend  present at the new size (live in the guest when attached)         -> available / in-use |
                                                                                 error_extending (old size)
    delete  absent                                                           -> row gone | error_deleting
    attach  [move: fetch from the old host, put on the new one, absent there]
            attach to the domain (live and persistent)                        -> in-use | available
    detach  detach from the domain                                            -> available | in-use

Every step is an idempotent module call, so a step a dead process left half done is simply run again:
``recover`` (at service start and every few seconds in ``kvmfleet serve``) frees the operations whose
owner process is gone (same host, pid not alive) and runs every operation nobody holds.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, update

from kvmfleet.compute.common import hosts_inventory, image_ref, new_job, run_job
from kvmfleet.compute.errors import OperationFailed
from kvmfleet.compute.volumes import RUNNABLE, runner_host, volume_type
from kvmfleet.store.models import Image, Instance, utcnow
from kvmfleet.store.volume_models import Volume, VolumeAttachment

log = logging.getLogger("kvmfleet.volumes")

PLAYBOOK = "volume.yml"
RECOVER_INTERVAL = 5.0  # seconds between two recover() runs in `kvmfleet serve`


def owner_id() -> str:
    from kvmfleet.compute.tasks import owner_id as task_owner

    return task_owner(f"volume-{threading.get_ident()}")


def _owner_gone(owner: str) -> bool:
    """A dead pid on this machine (another controller's owner is trusted to finish)."""
    from kvmfleet.compute.recovery import _pid_alive
    from kvmfleet.compute.tasks import hostname

    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == hostname() and pid.isdigit() and not _pid_alive(int(pid))


def spec_of(vol: Volume) -> dict[str, Any]:
    vt = volume_type(vol.volume_type)
    out = {"pool": vt.pool, "pool_type": vt.pool_type, "name": vol.pool_path_name, "size_gb": vol.size_gb}
    if vt.path:
        out["pool_path"] = vt.path
    if vt.vg:
        out["pool_vg"] = vt.vg
    return out


class StepFailed(OperationFailed):
    pass


def step(store: Any, host: str, name: str, vol_spec: dict[str, Any], **extravars: Any) -> dict[str, Any]:
    """Run one step of playbooks/volume.yml on `host`; its module result (volume or attachment)."""
    inv = store.run_in_transaction(lambda session: hosts_inventory(session, [host]))
    if not any(host in group.get("hosts", {}) for group in inv["all"]["children"].values()):
        raise StepFailed(f"volume {name} of {vol_spec['name']}: host {host} is not known")
    result = run_job(new_job(PLAYBOOK, inv, {"kvmfleet_volume_host": host, "kvmfleet_volume_step": name,
                                             "kvmfleet_volume": vol_spec, **extravars}, limit=host))
    if not result.ok:
        raise StepFailed(f"volume {name} of {vol_spec['name']} on host {host} failed: {result.error_for(host)}")
    hr = result.host(host)
    for action in ("kvmfleet.compute.volume_attachment", "kvmfleet.compute.volume"):
        out = hr.result_of(action)
        if out and not out.get("skipped"):
            return out
    return {}


# -- taking and settling -------------------------------------------------------------------------------


def _take(store: Any, volume_id: str, owner: str) -> dict[str, Any] | None:
    """Claim the volume's pending operation; a snapshot of what the steps need, or None (not ours)."""

    def take(session: Any) -> dict[str, Any] | None:
        res = session.execute(update(Volume).where(Volume.id == volume_id, Volume.op_owner.is_(None),
                                                   Volume.status.in_(RUNNABLE))
                              .values(op_owner=owner).execution_options(synchronize_session=False))
        if res.rowcount != 1:
            return None
        vol = session.get(Volume, volume_id)
        session.refresh(vol)
        snap: dict[str, Any] = {"id": vol.id, "status": vol.status, "params": dict(vol.op_params or {}),
                                "host": vol.host, "spec": spec_of(vol), "serial": vol.serial}
        snap["runner"] = vol.host or runner_host(session, vol)
        if vol.image_id and snap["params"].get("op") == "create":
            image = session.get(Image, vol.image_id)
            if image is not None:
                snap["image"] = image_ref(image)
        att_id = snap["params"].get("attachment")
        att = session.get(VolumeAttachment, att_id) if att_id else vol.attachment
        if att is not None:
            snap["attachment"] = {"id": att.id, "host": att.host, "device": att.device,
                                  "domain": f"kvmfleet-{att.instance_uuid}"}
        return snap

    return store.run_in_transaction(take)


def _settle(store: Any, volume_id: str, owner: str, values: dict[str, Any], *, delete: bool = False,
            attachment: tuple[str, dict[str, Any] | None] | None = None) -> None:
    def settle(session: Any) -> None:
        vol = session.get(Volume, volume_id)
        if vol is None or vol.op_owner != owner:
            log.warning("volume %s: operation no longer ours; leaving it", volume_id)
            return
        if attachment is not None:
            att = session.get(VolumeAttachment, attachment[0])
            if att is not None and attachment[1] is None:
                session.delete(att)
            elif att is not None:
                for key, value in attachment[1].items():
                    setattr(att, key, value)
        if delete:
            session.delete(vol)
            return
        for key, value in {"op_owner": None, "op_params": {}, **values}.items():
            setattr(vol, key, value)

    store.run_in_transaction(settle)


def run(store: Any, volume_id: str, owner: str | None = None) -> str | None:
    """Run the volume's pending operation if nobody holds it. Returns the status it ends in (None: not ours
    or gone)."""
    owner = owner or owner_id()
    snap = _take(store, volume_id, owner)
    if snap is None:
        return None
    op = snap["params"].get("op")
    try:
        return OPS[op](store, snap, owner)
    except StepFailed as exc:
        return FAILS[op](store, snap, owner, exc.msg)
    except Exception:
        # unexpected: free the operation so that the next recover runs it again (the steps are idempotent)
        store.run_in_transaction(lambda session: session.execute(
            update(Volume).where(Volume.id == volume_id, Volume.op_owner == owner).values(op_owner=None)
            .execution_options(synchronize_session=False)))
        raise


def run_logged(store: Any, volume_id: str) -> str | None:
    """``run``, logging what goes wrong unexpectedly instead of raising (the next recover runs it again)."""
    try:
        return run(store, volume_id)
    except Exception:
        log.exception("volume %s: operation failed unexpectedly; it runs again at the next recover", volume_id)
        return None


def _create(store: Any, snap: dict[str, Any], owner: str) -> str:
    extra = {"kvmfleet_volume_image": snap["image"]} if snap.get("image") else {}
    step(store, snap["runner"], "present", snap["spec"], **extra)
    _settle(store, snap["id"], owner, {"status": "available", "error": None})
    return "available"


def _extend(store: Any, snap: dict[str, Any], owner: str) -> str:
    att = snap.get("attachment")
    host = att["host"] if att and att.get("host") else snap["runner"]
    step(store, host, "present", snap["spec"])
    status = "in-use" if att else "available"
    _settle(store, snap["id"], owner, {"status": status, "error": None})
    return status


def _delete(store: Any, snap: dict[str, Any], owner: str) -> None:
    step(store, snap["runner"], "absent", snap["spec"])
    _settle(store, snap["id"], owner, {}, delete=True)


def _move(store: Any, snap: dict[str, Any], source: str, dest: str) -> None:
    """A detached local volume to another host: its file through the controller, then gone from the source."""
    if snap["spec"]["pool_type"] != "dir":
        raise StepFailed(f"volume {snap['id']} is in a {snap['spec']['pool_type']} pool on host {source}: only "
                         "dir pools move between hosts; attach it to a server on that host")
    with tempfile.TemporaryDirectory(prefix="kvmfleet-volume-") as tmp:
        path = os.path.join(tmp, snap["spec"]["name"])
        where = volume_path(snap["spec"])
        step(store, source, "fetch", snap["spec"], kvmfleet_volume_file=path, kvmfleet_volume_path=where)
        step(store, dest, "put", snap["spec"], kvmfleet_volume_file=path, kvmfleet_volume_path=where)

    def moved(session: Any) -> None:
        session.execute(update(Volume).where(Volume.id == snap["id"]).values(host=dest)
                        .execution_options(synchronize_session=False))

    store.run_in_transaction(moved)
    step(store, source, "absent", snap["spec"])


def _attach(store: Any, snap: dict[str, Any], owner: str) -> str:
    att = snap["attachment"]
    source = snap["params"].get("move_from")
    if source and source != att["host"]:
        _move(store, snap, source, att["host"])
    device = att.get("device")
    out = step(store, att["host"], "attach", snap["spec"], kvmfleet_attachment={
        "domain": att["domain"], "serial": snap["serial"],
        **({"target": device.rsplit("/", 1)[1]} if device else {})})
    target = (out.get("attachment") or {}).get("target")
    _settle(store, snap["id"], owner, {"status": "in-use", "error": None},
            attachment=(att["id"], {"device": f"/dev/{target}" if target else device, "attached_at": utcnow()}))
    return "in-use"


def _detach(store: Any, snap: dict[str, Any], owner: str) -> str:
    att = snap["attachment"]
    step(store, att["host"], "detach", snap["spec"], kvmfleet_attachment={"domain": att["domain"]})
    _settle(store, snap["id"], owner, {"status": "available", "error": None}, attachment=(att["id"], None))
    return "available"


OPS = {"create": _create, "extend": _extend, "delete": _delete, "attach": _attach, "detach": _detach}


def _failed(status: str, attachment_gone: bool = False, restore_size: bool = False):
    def fail(store: Any, snap: dict[str, Any], owner: str, error: str) -> str:
        log.warning("volume %s: %s", snap["id"], error)
        values: dict[str, Any] = {"status": status, "error": error[:2000]}
        if restore_size:
            values["size_gb"] = int(snap["params"].get("old_size") or snap["spec"]["size_gb"])
        att = snap.get("attachment")
        _settle(store, snap["id"], owner, values,
                attachment=(att["id"], None) if attachment_gone and att else None)
        return status
    return fail


FAILS = {"create": _failed("error"), "extend": _failed("error_extending", restore_size=True),
         "delete": _failed("error_deleting"), "attach": _failed("available", attachment_gone=True),
         "detach": _failed("in-use")}


# -- who runs them -----------------------------------------------------------------------------------


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def submit(store: Any, volume_id: str) -> None:
    """Run the volume's operation in the background (the service: the API has answered already)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kvmfleet-volume")
        pool = _pool

    pool.submit(run_logged, store, volume_id)


def recover(store: Any, *, background: bool = True) -> list[str]:
    """Free the operations of dead owners and run every operation nobody holds. Returns the volume ids."""

    def find(session: Any) -> list[str]:
        ids = []
        for vol in session.scalars(select(Volume).where(Volume.status.in_(RUNNABLE))).all():
            if vol.op_owner is not None and _owner_gone(vol.op_owner):
                log.warning("volume %s: %s of a process that is gone; running it again", vol.id, vol.status)
                vol.op_owner = None
            if vol.op_owner is None:
                ids.append(vol.id)
        return ids

    ids = store.run_in_transaction(find)
    for volume_id in ids:
        if background:
            submit(store, volume_id)
        else:
            run(store, volume_id)
    return ids


def release_in(session: Any, instance_uuid: str) -> list[str]:
    """A deleted server's volumes, in the caller's transaction: attachments gone, each volume available
    again, or deleting when it was marked delete_on_termination. Returns the ids to delete (run them)."""
    to_delete = []
    for att in session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_uuid == instance_uuid)).all():
        vol = att.volume
        session.delete(att)
        if vol.status == "reserved" and vol.host is None and vol.volume_type and not volume_type(vol.volume_type).shared:
            session.delete(vol)  # a boot volume never made on any host
        elif att.delete_on_termination:
            vol.status, vol.op_owner, vol.op_params = "deleting", None, {"op": "delete"}
            to_delete.append(vol.id)
        else:
            vol.status, vol.op_owner, vol.op_params = "available", None, {}
    session.flush()
    return to_delete


def server_volumes(session: Any, inst: Instance) -> list[dict[str, Any]]:
    return [{"id": att.volume_id, "delete_on_termination": att.delete_on_termination, "device": att.device}
            for att in session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_uuid == inst.uuid)
                                       .order_by(VolumeAttachment.created_at)).all()]


# -- servers that move ---------------------------------------------------------------------------------


def volume_path(spec: dict[str, Any]) -> str:
    """Where the volume is on a host: <dir>/<name> in a dir pool, /dev/<vg>/<name> in a logical one."""
    if spec["pool_type"] == "logical":
        return f"/dev/{spec['pool_vg']}/{spec['name']}"
    return f"{spec['pool_path'].rstrip('/')}/{spec['name']}"


def migration_volumes(session: Any, instance_uuid: str) -> dict[str, Any]:
    """For a live migration: the local volumes the destination makes (empty, same pool, name and size) for
    libvirt to copy into, and the paths of the shared ones, which are not copied."""
    local, shared = [], []
    for att in session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_uuid == instance_uuid)).all():
        spec = spec_of(att.volume)
        if att.volume.host is None:
            shared.append(volume_path(spec))
        else:
            local.append({**spec, "path": volume_path(spec)})
    return {"volumes": local, "shared_disks": shared}


def moved_with_server(store: Any, instance_uuid: str, source: str, dest: str) -> None:
    """After a live migration: the server's volumes and attachments are on `dest`; each local volume's copy
    on `source` goes (its domain left with the migration)."""

    def move(session: Any) -> list[dict[str, Any]]:
        left = []
        for att in session.scalars(select(VolumeAttachment)
                                   .where(VolumeAttachment.instance_uuid == instance_uuid)).all():
            att.host = dest
            if att.volume.host is not None:
                att.volume.host = dest
                left.append(spec_of(att.volume))
        return left

    for spec in store.run_in_transaction(move):
        try:
            step(store, source, "absent", spec)
        except StepFailed as exc:  # a stale copy on the source: reported, never the volume itself
            log.warning("volume %s: its old copy on %s stays after the live migration: %s", spec["name"], source,
                        exc.msg)


def refuse_with_volumes(session: Any, inst: Instance, op: str) -> None:
    """Moves that rebuild the domain from its flavor (resize, cold migration, evacuate, rebuild) would
    leave its volumes behind: refused while volumes are attached (live migration carries them)."""
    from kvmfleet.compute.errors import InvalidInstanceState

    count = len(session.scalars(select(VolumeAttachment.id).where(VolumeAttachment.instance_uuid == inst.uuid))
                .all())
    if count:
        raise InvalidInstanceState(f"Cannot '{op}' instance {inst.uuid} while it has {count} volume(s) attached: "
                                   "detach them first (live migration carries them)")


# -- boot from volume ----------------------------------------------------------------------------------


def boot_volume(session: Any, instance_uuid: str) -> Volume | None:
    att = session.scalars(select(VolumeAttachment).where(VolumeAttachment.instance_uuid == instance_uuid,
                                                         VolumeAttachment.boot_index == 0)).first()
    return att.volume if att is not None else None


def root_disk_of(session: Any, inst: Instance) -> dict[str, Any] | None:
    """The domain's root_disk volume fields for a server booted from a volume (None otherwise)."""
    vol = boot_volume(session, inst.uuid)
    if vol is None:
        return None
    spec = spec_of(vol)
    return {"volume": volume_path(spec), "volume_format": "qcow2" if spec["pool_type"] == "dir" else "raw"}


def make_boot_volume(store: Any, instance_uuid: str, host: str) -> None:
    """Before the build on `host`: the server's root volume made there from its image (a copy an earlier
    attempt made on another host goes first). Raises StepFailed."""

    def place(session: Any) -> dict[str, Any] | None:
        vol = boot_volume(session, instance_uuid)
        if vol is None:
            return None
        old = vol.host
        if not volume_type(vol.volume_type).shared:
            vol.host = host
        image = session.get(Image, vol.image_id) if vol.image_id else None
        if image is None:
            raise StepFailed(f"boot volume of server {instance_uuid}: its image is gone")
        return {"spec": spec_of(vol), "old": old if old and old != host else None, "image": image_ref(image)}

    made = store.run_in_transaction(place)
    if made is None:
        return
    if made["old"]:
        step(store, made["old"], "absent", made["spec"])
    step(store, host, "present", made["spec"], kvmfleet_volume_image=made["image"])


def boot_volume_in_use(store: Any, instance_uuid: str, host: str) -> None:
    def settle(session: Any) -> None:
        vol = boot_volume(session, instance_uuid)
        if vol is not None:
            vol.status, vol.op_params = "in-use", {}
            vol.attachment.host, vol.attachment.attached_at = host, utcnow()

    store.run_in_transaction(settle)
