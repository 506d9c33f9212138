"""`kvmfleet volume` commands: create, list, show, extend, delete, attach, detach, types.

They work on the store directly, as the other commands do, and run the host side here (inline, under
this process as the operation's owner): each command returns when the volume is settled and prints it.
"""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli.host import FORMAT_OPTION, Format, emit, errors_as_one_line

app = typer.Typer(no_args_is_help=True)
PROJECT_OPTION = typer.Option(None, "--project", envvar="KVMFLEET_PROJECT",
                              help="Project name or id (default: the CLI's default project).")
COLUMNS = [("id", "ID"), ("name", "Name"), ("status", "Status"), ("size", "Size (GiB)"), ("type", "Type"),
           ("host", "Host"), ("attached_to", "Attached to")]


def _store() -> Any:
    from kvmfleet.store import get_store

    return get_store()


def _row(vol: Any) -> dict[str, Any]:
    att = vol.attachment
    return {"id": vol.id, "name": vol.name, "status": vol.status, "size": vol.size_gb, "type": vol.volume_type,
            "host": vol.host or "(shared)", "attached_to": f"{att.instance_uuid} {att.device or ''}".strip() if att
            else "", "bootable": vol.bootable, "image_id": vol.image_id, "error": vol.error,
            "created_at": vol.created_at.isoformat() if vol.created_at else None}


def _show(volume_id: str, fmt: Format) -> None:
    from kvmfleet.compute.volumes import find_volume

    with _store().transaction() as s:
        emit(_row(find_volume(s, volume_id)), fmt)


def _project_id(session: Any, project: str | None) -> str:
    from kvmfleet.compute.common import project_for

    return project_for(session, project).id


def _run(volume_id: str) -> str | None:
    from kvmfleet.compute import volume_ops

    return volume_ops.run(_store(), volume_id)


def _settled(volume_id: str, fmt: Format, failed_statuses: tuple[str, ...]) -> None:
    status = _run(volume_id)
    from kvmfleet.store.volume_models import Volume

    with _store().transaction() as s:
        vol = s.get(Volume, volume_id)
        error = vol.error if vol is not None else None
    if vol is not None:
        _show(volume_id, fmt)
    if status in failed_statuses:
        typer.echo(f"error: volume {volume_id}: {error or status}", err=True)
        raise typer.Exit(1)


@app.command()
def create(size: int = typer.Option(..., "--size", help="Size in GiB."),
           name: str = typer.Option(None, "--name", help="Display name."),
           volume_type: str = typer.Option(None, "--type", help="Volume type (backend); default: volume.default_type."),
           image: str = typer.Option(None, "--image", help="Create it with this image's content (name or id)."),
           project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Create a volume (and make it on its host)."""
    from kvmfleet.compute import volumes
    from kvmfleet.store import api as store_api

    with errors_as_one_line():
        with _store().transaction() as s:
            image_id = store_api.get_image(s, image).id if image else None
            vol = volumes.record_create(s, project_id=_project_id(s, project), user_id=None, size=size, name=name,
                                        type_name=volume_type, image_id=image_id)
            volume_id = vol.id
        _settled(volume_id, fmt, ("error",))


@app.command("list")
def list_(project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """List volumes (of one project with --project)."""
    from sqlalchemy import select

    from kvmfleet.store import get_project
    from kvmfleet.store.volume_models import Volume

    with errors_as_one_line():
        with _store().transaction() as s:
            stmt = select(Volume).order_by(Volume.created_at)
            if project:
                stmt = stmt.where(Volume.project_id == get_project(s, project).id)
            rows = [_row(v) for v in s.scalars(stmt)]
        emit(rows, fmt, COLUMNS)


@app.command()
def show(volume: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a volume."""
    with errors_as_one_line():
        _show(volume, fmt)


@app.command()
def extend(volume: str = typer.Argument(..., help="Name or id."),
           size: int = typer.Option(..., "--size", help="The new, bigger size in GiB."),
           fmt: Format = FORMAT_OPTION) -> None:
    """Grow a volume (an attached one grows live in its guest)."""
    from kvmfleet.compute import volumes

    with errors_as_one_line():
        with _store().transaction() as s:
            vol = volumes.find_volume(s, volume)
            volumes.record_extend(s, vol, size)
            volume_id = vol.id
        _settled(volume_id, fmt, ("error_extending",))


@app.command()
def delete(volume: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a volume (refused while it is attached)."""
    from kvmfleet.compute import volumes

    with errors_as_one_line():
        with _store().transaction() as s:
            vol = volumes.find_volume(s, volume)
            volumes.record_delete(s, vol)
            volume_id = vol.id
        status = _run(volume_id)
        if status == "error_deleting":
            _show(volume_id, Format.table)
            raise typer.Exit(1)
        typer.echo(f"volume {volume_id} deleted")


@app.command()
def attach(volume: str = typer.Argument(..., help="Name or id."),
           server: str = typer.Argument(..., help="Server name or id."),
           device: str = typer.Option(None, "--device", help="/dev/vdX (default: the next free one)."),
           delete_on_termination: bool = typer.Option(False, "--delete-on-termination",
                                                      help="Delete the volume with the server."),
           fmt: Format = FORMAT_OPTION) -> None:
    """Attach a volume to a server (hot-plugged when it runs; moved to the server's host if local)."""
    from kvmfleet.compute import volumes

    with errors_as_one_line():
        with _store().transaction() as s:
            vol = volumes.find_volume(s, volume)
            volumes.record_attach(s, vol, server, project_id=None, device=device,
                                  delete_on_termination=delete_on_termination)
            volume_id = vol.id
        _settled(volume_id, fmt, ("available",))


@app.command()
def detach(volume: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Detach a volume from its server."""
    from kvmfleet.compute import volumes
    from kvmfleet.compute.errors import InvalidRequest
    from kvmfleet.store.models import Instance

    with errors_as_one_line():
        with _store().transaction() as s:
            vol = volumes.find_volume(s, volume)
            if vol.attachment is None:
                raise InvalidRequest(f"volume {vol.id} is not attached")
            inst = s.get(Instance, vol.attachment.instance_uuid)
            volumes.record_detach(s, inst, vol.id)
            volume_id = vol.id
        _settled(volume_id, fmt, ("in-use",))


@app.command()
def types(fmt: Format = FORMAT_OPTION) -> None:
    """The volume types (backends) of the configuration."""
    from kvmfleet.config import get_settings

    settings = get_settings().volume
    emit([{"name": vt.name, "pool": vt.pool, "pool_type": vt.pool_type, "path": vt.path or vt.vg,
           "shared": vt.shared, "default": vt.name == settings.default_type} for vt in settings.types.values()],
         fmt, [("name", "Name"), ("pool", "Pool"), ("pool_type", "Pool type"), ("path", "Path / VG"),
               ("shared", "Shared"), ("default", "Default")])
