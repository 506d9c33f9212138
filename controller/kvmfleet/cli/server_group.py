"""`kvmfleet server-group` commands: create, list, show, delete."""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = [("id", "ID"), ("name", "Name"), ("policy", "Policy"), ("max_server_per_host", "Max per host"),
           ("project", "Project"), ("members", "Members")]
PROJECT_OPTION = typer.Option(None, "--project", envvar="KVMFLEET_PROJECT", help="Project name or id.")


def _row(group: Any, full: bool = False) -> dict[str, Any]:
    members = [m.uuid for m in group.members]
    return {"id": group.id, "name": group.name, "policy": group.policy.value,
            "max_server_per_host": group.max_server_per_host, "project": group.project.name,
            "members": members if full else len(members), "created_at": group.created_at.isoformat()}


@app.command()
def create(name: str,
           policy: str = typer.Option(..., "--policy", help="affinity, anti-affinity, soft-affinity or "
                                                          "soft-anti-affinity."),
           max_server_per_host: int = typer.Option(None, "--max-server-per-host",
                                                   help="anti-affinity only: members allowed on one host."),
           project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """Create a server group in a project."""
    from kvmfleet.store import get_store
    from kvmfleet.store.errors import InvalidInput
    from kvmfleet.store.resources import create_server_group

    with store_errors():
        if not project:
            raise InvalidInput("--project (or KVMFLEET_PROJECT) is required")
        with get_store().transaction() as s:
            row = _row(create_server_group(s, name, policy, project, max_server_per_host), full=True)
        emit(row, fmt)


@app.command("list")
def list_(project: str = PROJECT_OPTION, fmt: Format = FORMAT_OPTION) -> None:
    """List server groups (of one project with --project)."""
    from sqlalchemy import select

    from kvmfleet.store import ServerGroup, get_project, get_store

    with store_errors():
        with get_store().transaction() as s:
            stmt = select(ServerGroup).order_by(ServerGroup.name)
            if project:
                stmt = stmt.where(ServerGroup.project_id == get_project(s, project).id)
            rows = [_row(g) for g in s.scalars(stmt)]
        emit(rows, fmt, COLUMNS)


@app.command()
def show(group: str = typer.Argument(..., help="Name or id."), project: str = PROJECT_OPTION,
         fmt: Format = FORMAT_OPTION) -> None:
    """Show a server group and its members."""
    from kvmfleet.store import get_project, get_server_group, get_store

    with store_errors():
        with get_store().transaction() as s:
            project_id = get_project(s, project).id if project else None
            row = _row(get_server_group(s, group, project_id), full=True)
        emit(row, fmt)


@app.command()
def delete(group: str = typer.Argument(..., help="Name or id."), project: str = PROJECT_OPTION) -> None:
    """Delete a server group (its members stay, outside any group)."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import delete_server_group

    with store_errors():
        with get_store().transaction() as s:
            g = delete_server_group(s, group, project)
        typer.echo(f"deleted server group {g.name} ({g.id})")
