"""`kvmfleet flavor` commands: create, create-defaults, list, show, delete."""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = [("id", "ID"), ("name", "Name"), ("vcpus", "VCPUs"), ("ram", "RAM (MiB)"), ("disk", "Disk (GiB)"),
           ("ephemeral", "Ephemeral"), ("swap", "Swap"), ("properties", "Properties")]


def _row(flavor: Any) -> dict[str, Any]:
    return {"id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.memory_mb,
            "disk": flavor.root_gb, "ephemeral": flavor.ephemeral_gb, "swap": flavor.swap,
            "properties": dict(flavor.extra_specs or {}), "is_public": flavor.is_public,
            "description": flavor.description}


def _table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "properties": ", ".join(f"{k}={v}" for k, v in r["properties"].items())} for r in rows]


@app.command()
def create(
    name: str,
    vcpus: int = typer.Option(..., "--vcpus", help="Virtual CPUs."),
    ram: int = typer.Option(..., "--ram", help="Memory in MiB."),
    disk: int = typer.Option(0, "--disk", help="Root disk in GiB (0: the image's virtual size)."),
    ephemeral: int = typer.Option(0, "--ephemeral", help="Ephemeral disk in GiB."),
    swap: int = typer.Option(0, "--swap", help="Swap in MiB."),
    flavor_id: str = typer.Option(None, "--id", help="Flavor id (default: a new UUID)."),
    prop: list[str] = typer.Option(None, "--property", help="Extra spec KEY=VALUE (repeatable)."),  # noqa: B008
    description: str = typer.Option(None, "--description"),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Create a flavor."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import create_flavor, parse_properties

    with store_errors():
        specs = parse_properties(prop)
        with get_store().transaction() as s:
            row = _row(create_flavor(s, name, vcpus=vcpus, memory_mb=ram, root_gb=disk, ephemeral_gb=ephemeral,
                                     swap=swap, extra_specs=specs, flavor_id=flavor_id, description=description))
        emit(row, fmt)


@app.command("create-defaults")
def create_defaults(fmt: Format = FORMAT_OPTION) -> None:
    """Create the Nova-like default flavors (m1.nano ... m1.xlarge) that are missing."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import create_default_flavors

    with store_errors():
        with get_store().transaction() as s:
            rows = [_row(f) for f in create_default_flavors(s)]
        emit(rows if fmt is Format.json else _table_rows(rows), fmt, COLUMNS, title="created")


@app.command("list")
def list_(fmt: Format = FORMAT_OPTION) -> None:
    """List flavors, smallest first."""
    from sqlalchemy import select

    from kvmfleet.store import Flavor, get_store

    with store_errors():
        with get_store().transaction() as s:
            rows = [_row(f) for f in s.scalars(select(Flavor).order_by(Flavor.vcpus, Flavor.memory_mb,
                                                                       Flavor.root_gb, Flavor.name))]
        emit(rows if fmt is Format.json else _table_rows(rows), fmt, COLUMNS)


@app.command()
def show(flavor: str = typer.Argument(..., help="Name or id."), fmt: Format = FORMAT_OPTION) -> None:
    """Show a flavor."""
    from kvmfleet.store import get_flavor, get_store

    with store_errors():
        with get_store().transaction() as s:
            row = _row(get_flavor(s, flavor))
        emit(row, fmt)


@app.command()
def delete(flavor: str = typer.Argument(..., help="Name or id.")) -> None:
    """Delete a flavor (instances built from it keep their copy of its sizes)."""
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import delete_flavor

    with store_errors():
        with get_store().transaction() as s:
            f = delete_flavor(s, flavor)
        typer.echo(f"deleted flavor {f.name} ({f.id})")
