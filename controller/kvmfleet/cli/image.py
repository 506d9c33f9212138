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


# --- image registry: the same kvmfleet.images functions the Image API (Glance v2) calls ---


@app.command("register")
def register(
    name: str = typer.Argument(..., help="Image name."),
    file: Path = typer.Option(..., "--file", help="qcow2 (or --disk-format raw) file on the controller."),  # noqa: B008
    arch: str = typer.Option("x86_64", "--arch", help="Guest architecture."),
    disk_format: str = typer.Option("qcow2", "--disk-format", help="qcow2 or raw (never probed)."),
    min_ram: int = typer.Option(0, "--min-ram", help="MiB the image needs."),
    min_disk: int = typer.Option(0, "--min-disk", help="GiB the image needs."),
    visibility: str = typer.Option("public", "--visibility", help="public, community, shared or private."),
    project: str = typer.Option(None, "--project", help="Owning project (default: none, an operator image)."),
    properties: list[str] = typer.Option(None, "--property", help="KEY=VALUE image property (repeatable)."),  # noqa: B008
    fmt: str = typer.Option("table", "-f", "--format", help="table or json"),
) -> None:
    """Register an image: copied into the registry, inspected with its declared format (backing and
    external data files refused), sha256/md5/sha512 recorded; the Image API lists it."""
    from kvmfleet.cli.host import Format, emit, errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store
    from kvmfleet.store.resources import parse_properties

    with errors_as_one_line():
        image = registry.register(get_store(), name, str(file), arch, disk_format, min_ram, min_disk,
                                  visibility=visibility, project=project, properties=parse_properties(properties))
        emit(registry.image_dict(image), Format(fmt))


@app.command("list")
def list_(fmt: str = typer.Option("table", "-f", "--format", help="table or json")) -> None:
    """List images (registered here or through the Image API), deleted ones left out."""
    from kvmfleet.cli.host import Format, emit, errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store

    with errors_as_one_line():
        with get_store().transaction() as session:
            rows = [registry.image_dict(i) for i in registry.list_images(session)]
        emit(rows, Format(fmt), [("id", "ID"), ("name", "Name"), ("status", "Status"), ("disk_format", "Format"),
                                 ("arch", "Arch"), ("visibility", "Visibility"), ("size", "Size")])


@app.command("show")
def show(image: str, fmt: str = typer.Option("table", "-f", "--format", help="table or json")) -> None:
    """Show an image (by id or name)."""
    from kvmfleet.cli.host import Format, emit, errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store

    with errors_as_one_line():
        with get_store().transaction() as session:
            data = registry.image_dict(registry.find_image(session, image, registry.Viewer.operator()))
        emit(data, Format(fmt))


@app.command("delete")
def delete(image: str) -> None:
    """Delete an image and its copy in the registry (refused while a live server was built from it)."""
    from kvmfleet.cli.host import errors_as_one_line
    from kvmfleet.images import registry
    from kvmfleet.store import get_store

    with errors_as_one_line():
        registry.remove(get_store(), image)
        print(f"image {image} deleted")
