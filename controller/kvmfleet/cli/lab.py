"""`kvmfleet lab` commands: the one-machine lab of compute hosts."""

from __future__ import annotations

import json
import os

import typer
from rich.console import Console
from rich.table import Table

from kvmfleet import paths
from kvmfleet.lab import lab as labmod

app = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)

NameOpt = typer.Option(os.environ.get("KVMFLEET_LAB", "lab"), "--name", "-n", help="Lab name (1-8 lowercase letters/digits); env KVMFLEET_LAB.")


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def up(
    name: str = NameOpt,
    hosts: int = typer.Option(3, "--hosts", help="Number of compute hosts."),
    subnet: str = typer.Option(None, "--subnet", help="The lab's /24 (default: first free one in --pool)."),
    pool: str = typer.Option(labmod.DEFAULT_POOL, "--pool", help="Pool the lab subnet is taken from."),
    prepare: bool = typer.Option(True, "--prepare/--no-prepare", help="Run the kvm_host role on the hosts."),
) -> None:
    """Bring up (or reuse) a lab of HOSTS compute hosts. Idempotent; cleans a stale lab of the same name."""
    copy = paths.INVENTORIES / "lab" / "hosts.yml" if name == "lab" else None
    try:
        lab = labmod.up(name, hosts, subnet=subnet, pool=pool, repo_root=paths.REPO_ROOT, prepare=prepare,
                        inventory_copy=copy)
    except labmod.LabError as exc:
        _fail(exc)
    print(f"lab {lab.name}: inventory {lab.inventory}" + (f" (and {copy})" if copy else ""))


@app.command()
def down(name: str = NameOpt) -> None:
    """Stop exactly what `up` started and remove namespaces, bridge and state."""
    try:
        labmod.down(name)
    except labmod.LabError as exc:
        _fail(exc)
    if name == "lab":
        (paths.INVENTORIES / "lab" / "hosts.yml").unlink(missing_ok=True)


@app.command()
def status(name: str = NameOpt, fmt: str = typer.Option("table", "-f", "--format", help="table or json")) -> None:
    """Per host: address, whether ssh and libvirt answer, and its domains."""
    try:
        rows = labmod.status(name)
    except labmod.LabError as exc:
        _fail(exc)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    else:
        table = Table(title=f"lab {name}")
        for col in ("host", "address", "ssh", "libvirt", "domains", "running", "error"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["host"], r["address"], "ok" if r["ssh"] else "FAIL", "ok" if r["libvirt"] else "FAIL",
                          str(r["domains"] if r["domains"] is not None else "-"),
                          str(r["running"] if r["running"] is not None else "-"), r["error"])
        Console().print(table)
    if not all(r["ssh"] and r["libvirt"] for r in rows):
        raise typer.Exit(1)


@app.command("list")
def list_() -> None:
    """Labs that exist on this machine."""
    for name in labmod.list_labs():
        print(name)


@app.command()
def inventory(name: str = NameOpt) -> None:
    """Print the path of the lab's Ansible inventory."""
    lab = labmod.load(name)
    if lab is None:
        _fail(labmod.LabError(f"lab {name} does not exist"))
    print(lab.inventory)
