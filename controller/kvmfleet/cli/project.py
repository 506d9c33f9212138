"""`kvmfleet project` commands: create, list, show, delete."""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = [("id", "ID"), ("name", "Name"), ("enabled", "Enabled"), ("description", "Description")]


def _row(project: Any) -> dict[str, Any]:
    return {"id": project.id, "name": project.name, "enabled": project.enabled, "description": project.description,
            "created_at": project.created_at.isoformat()}


@app.command()
def create(name: str, description: str = typer.Option("", help="Free text."), fmt: Format = FORMAT_OPTION) -> None:
    """Create a project (a tenant: instances, quotas and server groups belong to one)."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import create_project

    with store_errors():
        with get_store().transaction() as s:
            row = _row(create_project(s, name, description))
        emit(row, fmt)


@app.command("list")
def list_(fmt: Format = FORMAT_OPTION) -> None:
    """List projects."""
    from sqlalchemy import select

    from kvmfleet.store import Project, get_store

    with store_errors():
        with get_store().transaction() as s:
            rows = [_row(p) for p in s.scalars(select(Project).order_by(Project.name))]
        emit(rows, fmt, COLUMNS)


@app.command()
def show(project: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a project with its quota limits and usage."""
    from kvmfleet import quota
    from kvmfleet.store import get_project, get_store

    with store_errors():
        with get_store().transaction() as s:
            p = get_project(s, project)
            row = _row(p)
            row["quota"] = quota.limits(s, p)
            row["usage"] = quota.usage(s, p)
        emit(row, fmt)


@app.command()
def delete(project: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a project that has no instances (its server groups and quota limits go with it)."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import delete_project

    with store_errors():
        with get_store().transaction() as s:
            p = delete_project(s, project)
        typer.echo(f"deleted project {p.name} ({p.id})")
