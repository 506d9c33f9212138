"""`kvmfleet image` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)


@app.command("build-tiny")
def build_tiny(
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the cached image's inputs are unchanged.")] = False,
    fmt: Annotated[str, typer.Option("-f", "--format", help="table or json")] = "table",
    init_script: Annotated[Path | None, typer.Option(
        "--init-script", dir_okay=False, help="Use this /init instead of the built-in one.")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", file_okay=False, help="Where to write the image (default: the cache).")] = None,
) -> None:
    """Build the tiny guest image from Debian packages (cached; rebuilt only when its inputs change)."""
    from kvmfleet.images import tiny

    if fmt not in ("table", "json"):
        err.print(f"[red]error:[/red] --format must be table or json, not {fmt!r}", highlight=False)
        raise typer.Exit(2)
    try:
        image = tiny.build_tiny(force=force, init_script=init_script, out_dir=output_dir)
    except tiny.TinyImageError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if fmt == "json":
        print(json.dumps(image.as_dict()))
        return
    table = Table(show_header=False, box=None)
    for key, value in image.as_dict().items():
        table.add_row(key, str(value))
    Console().print(table, highlight=False)


# --- image registry (register/list/show/delete): owned by the lifecycle work, see kvmfleet.images.registry ---


@app.command("register")
def register(
    name: str = typer.Argument(..., help="Image name."),
    file: Path = typer.Option(..., "--file", help="qcow2 (or --disk-format raw) file on the controller."),  # noqa: B008
    arch: str = typer.Option("x86_64", "--arch", help="Guest architecture."),
    disk_format: str = typer.Option("qcow2", "--disk-format", help="qcow2 or raw (never probed)."),
    min_ram: int = typer.Option(0, "--min-ram", help="MiB the image needs."),
    min_disk: int = typer.Option(0, "--min-disk", help="GiB the image needs."),
    fmt: str = typer.Option("table", "-f", "--format", help="table or json"),
) -> None:
    """Register an image: sha256 and size computed, qcow2 checked, backing files refused."""
    from kvmfleet.cli.host import Format, emit, errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store

    with errors_as_one_line():
        with get_store().transaction() as session:
            data = registry.image_dict(registry.register(session, name, str(file), arch, disk_format,
                                                         min_ram, min_disk))
        emit(data, Format(fmt))


@app.command("list")
def list_(fmt: str = typer.Option("table", "-f", "--format", help="table or json")) -> None:
    """List registered images."""
    from kvmfleet.cli.host import Format, emit, errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store

    with errors_as_one_line():
        with get_store().transaction() as session:
            rows = [registry.image_dict(i) for i in registry.list_images(session)]
        emit(rows, Format(fmt), [("id", "ID"), ("name", "Name"), ("status", "Status"), ("disk_format", "Format"),
                                 ("arch", "Arch"), ("size", "Size")])


@app.command("show")
def show(image: str, fmt: str = typer.Option("table", "-f", "--format", help="table or json")) -> None:
    """Show a registered image."""
    from kvmfleet.cli.host import Format, emit, errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import api, get_store

    with errors_as_one_line():
        with get_store().transaction() as session:
            data = registry.image_dict(api.get_image(session, image))
        emit(data, Format(fmt))


@app.command("delete")
def delete(image: str) -> None:
    """Unregister an image no server uses (the file is left alone)."""
    from kvmfleet.cli.host import errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store

    with errors_as_one_line():
        with get_store().transaction() as session:
            registry.remove(session, image)
        print(f"image {image} deleted")
