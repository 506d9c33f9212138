"""`kvmfleet host` commands: add, import, list, show, enable, disable, refresh, remove.

The output helpers here (`emit`, `errors_as_one_line`) are shared with `kvmfleet server`.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

app = typer.Typer(no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class Format(str, enum.Enum):
    table = "table"
    json = "json"


FORMAT_OPTION = typer.Option(Format.table, "--format", "-f", help="Output format.")


def emit(data: Any, fmt: Format, columns: Sequence[tuple[str, str]] | None = None, title: str | None = None) -> None:
    """Print rows (a list of dicts) as a table or anything as JSON; a dict prints as a field/value table."""
    if fmt is Format.json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if isinstance(data, dict):
        table = Table(show_header=True, title=title)
        table.add_column("Field", style="bold")
        table.add_column("Value", overflow="fold")
        for key, value in data.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, default=str)
            table.add_row(Text(str(key)), Text("" if value is None else str(value)))  # plain text, never markup
        console.print(table)
        return
    table = Table(show_header=True, title=title)
    cols = columns or [(k, k) for k in (data[0].keys() if data else [])]
    for _, header in cols:
        table.add_column(header, overflow="fold")
    for row in data:
        table.add_row(*(Text("" if row.get(key) is None else str(row.get(key))) for key, _ in cols))
    console.print(table)


@contextlib.contextmanager
def errors_as_one_line() -> Iterator[None]:
    """Known errors print as one clear line on stderr and exit 1."""
    from kvmfleet.config import ConfigError
    from kvmfleet.executor import ExecutorError
    from kvmfleet.store.errors import StoreError

    known: tuple[type[BaseException], ...] = (StoreError, ConfigError, ExecutorError)
    try:
        from kvmfleet.compute.errors import ComputeError

        known = known + (ComputeError,)
    except ImportError:  # pragma: no cover - compute errors arrive with the lifecycle
        pass
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as exc:
        err_console.print(f"[red]error:[/red] the store did not answer: {escape(str(exc.orig))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except known as exc:
        err_console.print(f"[red]error:[/red] {escape(str(getattr(exc, 'msg', None) or exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _store() -> Any:
    from kvmfleet.store import get_store

    return get_store()


HOST_COLUMNS = [("name", "Name"), ("address", "Address"), ("availability_zone", "Zone"), ("state", "State"),
                ("status", "Status"), ("vcpus_usage", "vCPUs"), ("memory_usage", "RAM MiB"),
                ("disk_usage", "Disk GB"), ("instances", "Inst")]


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """Used/schedulable figures in one column each, so the table fits a terminal."""
    cap = row["capacity"]
    return {**row, "status": "enabled" if row["enabled"] else "disabled",
            "vcpus_usage": f"{row['vcpus_used']}/{cap['vcpus']:g}",
            "memory_usage": f"{row['memory_mb_used']}/{cap['memory_mb']:g}",
            "disk_usage": f"{row['local_gb_used']}/{cap['disk_gb']:g}"}


def _refresh_and_print(names: list[str] | None, fmt: Format, quiet_ok: bool = False) -> int:
    from kvmfleet.compute import hosts as hostops

    report = hostops.refresh(_store(), names)
    if fmt is Format.json:
        emit(report.as_dict(), fmt)
    else:
        for name in report.up:
            console.print(f"[green]up[/green]   {name}")
        for name, why in report.down.items():
            console.print(f"[red]down[/red] {name}: {escape(str(why))}", highlight=False)
        for change in report.power_changes:
            console.print(f"power {change['name']} ({change['instance']}) on {change['host']}: "
                          f"{change['power_state']}", highlight=False)
        for host, doms in report.unknown_domains.items():
            console.print(f"[yellow]unknown[/yellow] kvmfleet domains on {host} not in the store: {', '.join(doms)}")
        for host, doms in report.reaped.items():
            console.print(f"reaped orphan kvmfleet domains on {host}: {', '.join(doms)}", highlight=False)
        for host, uuids in report.evacuated_cleaned.items():
            console.print(f"removed from {host} the old copies of evacuated servers: {', '.join(uuids)}",
                          highlight=False)
        for host in report.held_down:
            console.print(f"[yellow]held down[/yellow] {host}: copies of servers evacuated from it are still there",
                          highlight=False)
    return 0 if not report.down or quiet_ok else 2


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Host name (as the inventory names it)."),
    address: str = typer.Option(..., "--address", help="Address or DNS name sshd listens on."),
    az: str = typer.Option(None, "--az", help="Availability zone (default: nova)."),
    ssh_key: str = typer.Option(None, "--ssh-key", help="Private key file for root (or --user)."),
    known_hosts: str = typer.Option(None, "--known-hosts", help="known_hosts file holding the host's key."),
    user: str = typer.Option(None, "--user", help="SSH user (default: Ansible's)."),
    python: str = typer.Option(None, "--python", help="Python interpreter on the host."),
    virt_type: str = typer.Option(None, "--virt-type", help="kvm (default) or qemu (TCG, for nested labs)."),
    refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="Gather its facts right away."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Add a compute host."""
    from kvmfleet.compute import hosts as hostops
    from kvmfleet.store.errors import InvalidInput

    with errors_as_one_line():
        conn = hostops.ssh_vars(ssh_key, known_hosts, user, python)
        if virt_type:
            if virt_type not in ("kvm", "qemu"):
                raise InvalidInput(f"invalid --virt-type {virt_type!r}: kvm or qemu")
            conn["kvmfleet_virt_type"] = virt_type
        with _store().transaction() as session:
            hostops.add_host(session, name, address, az, conn)
        if fmt is Format.table:
            console.print(f"added host {name} ({address})")
        code = _refresh_and_print([name], fmt) if refresh else 0
    raise typer.Exit(code)


@app.command("import")
def import_(
    inventory: str = typer.Option(..., "--inventory", "-i", help="YAML inventory (e.g. a lab's hosts.yml)."),
    refresh: bool = typer.Option(True, "--refresh/--no-refresh", help="Gather their facts right away."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Add or update every host of an inventory, keeping its connection vars."""
    from kvmfleet.compute import hosts as hostops

    with errors_as_one_line():
        with _store().transaction() as session:
            results = hostops.import_inventory(session, inventory)
            names = [r.host.name for r in results]
            created = [r.host.name for r in results if r.created]
        if fmt is Format.table:
            console.print(f"imported {len(names)} host(s) from {inventory}: {', '.join(names)}"
                          f" ({len(created)} new)")
        code = _refresh_and_print(names, fmt) if refresh else 0
    raise typer.Exit(code)


@app.command("list")
def list_(fmt: Format = FORMAT_OPTION) -> None:
    """List compute hosts with their capacity and usage."""
    from sqlalchemy import select

    from kvmfleet.compute import hosts as hostops
    from kvmfleet.store.models import Host

    with errors_as_one_line():
        with _store().transaction() as session:
            rows = [hostops.host_dict(session, h) for h in session.scalars(select(Host).order_by(Host.name))]
        emit(rows if fmt is Format.json else [_table_row(r) for r in rows], fmt, HOST_COLUMNS)


@app.command("show")
def show(name: str, fmt: Format = FORMAT_OPTION) -> None:
    """Show one host in detail."""
    from kvmfleet.compute import hosts as hostops
    from kvmfleet.store import api

    with errors_as_one_line():
        with _store().transaction() as session:
            data = hostops.host_dict(session, api.get_host(session, name), detail=True)
        emit(data, fmt)


@app.command("set")
def set_(name: str, address: str = typer.Option(None, "--address", help="New address."),
         az: str = typer.Option(None, "--az", help="New availability zone.")) -> None:
    """Change a host's address or availability zone."""
    from kvmfleet.compute import hosts as hostops

    with errors_as_one_line(), _store().transaction() as session:
        host = hostops.update_host(session, name, address, az)
        console.print(f"host {name}: address {host.address}, zone {host.availability_zone}", highlight=False)


@app.command("enable")
def enable(name: str) -> None:
    """Let the scheduler place instances on a host again."""
    from kvmfleet.compute import hosts as hostops

    with errors_as_one_line():
        with _store().transaction() as session:
            hostops.set_enabled(session, name, True)
        console.print(f"host {name} enabled")


@app.command("disable")
def disable(name: str, reason: str = typer.Option(None, "--reason", help="Why (shown in host show).")) -> None:
    """Keep the scheduler from placing new instances on a host."""
    from kvmfleet.compute import hosts as hostops

    with errors_as_one_line():
        with _store().transaction() as session:
            hostops.set_enabled(session, name, False, reason)
        console.print(f"host {name} disabled" + (f": {escape(reason)}" if reason else ""), highlight=False)


MOVE_COLUMNS = [("server", "Server"), ("id", "ID"), ("vm_state", "Was"), ("how", "Move"), ("dest", "Now on"),
                ("status", "Status"), ("error", "Why not")]


def _print_moves(host: str, outcomes: list[Any], fmt: Format, what: str) -> None:
    rows = [o.as_dict() for o in outcomes]
    emit(rows, fmt, MOVE_COLUMNS, title=f"{what} of {host}")
    if fmt is not Format.json:
        moved = sum(1 for o in outcomes if o.ok)
        console.print(f"{moved} of {len(outcomes)} server(s) moved off {host}", highlight=False)
    if any(not o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("drain")
def drain(name: str, reason: str = typer.Option(None, "--reason", help="Why the host is disabled "
                                                "(default: drained for maintenance)."),
          target: str = typer.Option(None, "--target", help="Move every server to this host (default: the "
                                     "scheduler's choice for each)."),
          parallel: int = typer.Option(2, "--parallel", min=1, max=16, help="Moves at a time."),
          fmt: Format = FORMAT_OPTION) -> None:
    """Empty a host for maintenance: disable it, then live-migrate its running and paused servers and
    cold-migrate (confirmed) its stopped ones; a report of what moved and what could not. The host stays
    disabled: `host enable` when done."""
    from kvmfleet.compute import drain as drains

    with errors_as_one_line():
        outcomes = drains.drain(_store(), name, reason=reason, target=target, parallel=parallel,
                                progress=None if fmt is Format.json else _say)
    _print_moves(name, outcomes, fmt, "drain")


@app.command("evacuate")
def evacuate(name: str, target: str = typer.Option(None, "--target", help="Rebuild every server on this host "
                                                   "(default: the scheduler's choice for each)."),
             parallel: int = typer.Option(2, "--parallel", min=1, max=16, help="Rebuilds at a time."),
             fmt: Format = FORMAT_OPTION) -> None:
    """Rebuild every server of a down (or forced down) host on other hosts from its image, keeping its
    uuid, name, MACs and power state (Nova's host-evacuate). Refused while the host is up."""
    from kvmfleet.compute import drain as drains

    with errors_as_one_line():
        outcomes = drains.evacuate_host(_store(), name, target=target, parallel=parallel,
                                        progress=None if fmt is Format.json else _say)
    _print_moves(name, outcomes, fmt, "evacuation")


def _say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


@app.command("remove")
def remove(name: str) -> None:
    """Forget a host that holds no instances."""
    from kvmfleet.compute import hosts as hostops

    with errors_as_one_line():
        with _store().transaction() as session:
            hostops.remove_host(session, name)
        console.print(f"host {name} removed")


@app.command("refresh")
def refresh(
    names: list[str] = typer.Argument(None, help="Hosts to refresh (default: all)."),  # noqa: B008
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Gather host_facts from every host in one job: capacity, heartbeat, up/down, power states.

    Exits 2 when some host is down (the others are still recorded)."""
    with errors_as_one_line():
        code = _refresh_and_print(names or None, fmt)
    raise typer.Exit(code)
