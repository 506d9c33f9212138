"""`kvmfleet quota` commands: show and set limits (a project's own, or the defaults)."""

from __future__ import annotations

from typing import Any

import typer

from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = [("resource", "Resource"), ("limit", "Limit"), ("in_use", "In use")]


def _target(project: str | None, default: bool) -> None:
    if bool(project) == default:
        from kvmfleet.store.errors import InvalidInput

        raise InvalidInput("give either a PROJECT or --default")


def _emit(limits: dict[str, int], used: dict[str, int] | None, fmt: Format) -> None:
    from kvmfleet.quota import RESOURCES

    if fmt is Format.json:
        emit({"limits": limits, **({"usage": used} if used is not None else {})}, fmt)
        return
    rows: list[dict[str, Any]] = [{"resource": r, "limit": "unlimited" if limits[r] == -1 else limits[r],
                                   "in_use": None if used is None else used[r]} for r in RESOURCES]
    emit(rows, fmt, COLUMNS if used is not None else COLUMNS[:2])


@app.command()
def show(project: str = typer.Argument(None, help="Project name or id."),
         default: bool = typer.Option(False, "--default", help="Show the defaults instead."),
         fmt: Format = FORMAT_OPTION) -> None:
    """Show quota limits (-1/unlimited) and usage of a project, or the defaults."""
    from kvmfleet import quota
    from kvmfleet.store import get_store

    with store_errors():
        _target(project, default)
        with get_store().transaction() as s:
            if default:
                limits, used = quota.default_limits(s), None
            else:
                limits, used = quota.limits(s, project), quota.usage(s, project)
        _emit(limits, used, fmt)


@app.command("set")
def set_(project: str = typer.Argument(None, help="Project name or id."),
         default: bool = typer.Option(False, "--default", help="Set the defaults for every project instead."),
         instances: int = typer.Option(None, "--instances", help="Max instances (-1: unlimited)."),
         cores: int = typer.Option(None, "--cores", help="Max vcpus over all instances (-1: unlimited)."),
         ram: int = typer.Option(None, "--ram", help="Max MiB of memory over all instances (-1: unlimited)."),
         fmt: Format = FORMAT_OPTION) -> None:
    """Set quota limits. Lowering a limit below usage is allowed: new requests are refused until under."""
    from kvmfleet import quota
    from kvmfleet.store import get_store
    from kvmfleet.store.errors import InvalidInput

    with store_errors():
        _target(project, default)
        if instances is None and cores is None and ram is None:
            raise InvalidInput("nothing to set: give --instances, --cores and/or --ram")
        with get_store().transaction() as s:
            if default:
                limits, used = quota.set_default_limits(s, instances=instances, cores=cores, ram=ram), None
            else:
                limits = quota.set_limits(s, project, instances=instances, cores=cores, ram=ram)
                used = quota.usage(s, project)
        _emit(limits, used, fmt)
