"""`kvmfleet db` commands: schema upgrades, and rebuilding an empty store from the hosts. Also the error
wrapper the store's commands share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import typer

from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Store, quota, claim and configuration errors, and database errors (server unreachable, constraint),
    print as one line on stderr (never wrapped) and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from kvmfleet.config import ConfigError
    from kvmfleet.store.errors import StoreError

    try:
        yield
    except (StoreError, ConfigError) as exc:
        typer.echo(f"error: {getattr(exc, 'msg', None) or exc}", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        typer.echo(f"error: database: {detail}", err=True)
        raise typer.Exit(1) from None


@app.command()
def upgrade(revision: str = typer.Option("head", help="Target revision."),
            fmt: Format = FORMAT_OPTION) -> None:
    """Migrate the store's schema (configured database URL) to the latest revision."""
    from kvmfleet.store.engine import make_engine
    from kvmfleet.store.engine import upgrade as do_upgrade

    with store_errors():
        engine = make_engine()
        try:
            before, after = do_upgrade(engine, revision)
        finally:
            engine.dispose()
        emit({"database": engine.url.render_as_string(hide_password=True), "from": before, "to": after}, fmt)


@app.command()
def version(fmt: Format = FORMAT_OPTION) -> None:
    """Show the store's schema revision and the one this kvmfleet needs."""
    from kvmfleet.store.engine import current_revision, head_revision, make_engine

    with store_errors():
        engine = make_engine()
        try:
            current = current_revision(engine)
        finally:
            engine.dispose()
        head = head_revision()
        emit({"database": engine.url.render_as_string(hide_password=True), "current": current, "head": head,
              "up_to_date": current == head}, fmt)


def _flavor_line(f: dict[str, Any]) -> str:
    return (f"{f['name']} ({f['vcpus']} vCPU, {f['memory_mb']} MB, {f['root_gb']}+{f['ephemeral_gb']} GB disk): "
            f"{f['detail']}")


REBUILD_COLUMNS = [("id", "ID"), ("name", "Name"), ("host", "Host"), ("project", "Project"), ("flavor", "Flavor"),
                   ("server_group", "Group"), ("vm_state", "State"), ("power_state", "Power")]


@app.command()
def rebuild(from_hosts: bool = typer.Option(False, "--from-hosts", help="Rebuild from the hosts' domains (required)."),
            inventory: str = typer.Option(..., "--inventory", "-i", help="YAML inventory of every compute host."),
            fmt: Format = FORMAT_OPTION) -> None:
    """Fill an EMPTY store from the hosts: hosts, instances, allocations, and the projects, flavors and server
    groups their domains' metadata name (register the images first). Exit 1 if anything stayed unresolved."""
    from kvmfleet.cli.host import console, errors_as_one_line
    from kvmfleet.compute.rebuild_store import rebuild_from_hosts
    from kvmfleet.store import get_store
    from kvmfleet.store.errors import InvalidInput

    with errors_as_one_line(), store_errors():
        if not from_hosts:
            raise InvalidInput("say where to rebuild from: --from-hosts (the only source there is)")
        report = rebuild_from_hosts(get_store(), inventory)
    if fmt is Format.json:
        emit(report.as_dict(), fmt)
    else:
        emit(report.instances, fmt, REBUILD_COLUMNS, title=f"recovered {len(report.instances)} instance(s) from "
             f"{len(report.hosts) - len(report.down)} of {len(report.hosts)} host(s)")
        lines = [("yellow", "project created", p) for p in report.projects_created]
        lines += [("yellow", "flavor recorded", _flavor_line(f)) for f in report.flavors_created]
        lines += [("yellow", "server group created", f"{g['name']} in {g['project']}, {g['policy']}: {g['detail']}")
                  for g in report.server_groups_created]
        lines += [("yellow", "flagged", f"{r.get('instance')}: {r['what']}: {r['detail']}") for r in report.flagged]
        lines += [("red", "unresolved", f"{r.get('instance') or r.get('host')}: {r['what']}: {r['detail']}")
                  for r in report.unresolved]
        for colour, what, text in lines:
            console.print(f"[{colour}]{what}[/{colour}] ", end="")
            console.print(text, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if report.ok else 1)
