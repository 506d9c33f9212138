"""`kvmfleet image` commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
err = Console(stderr=True)


@app.command("build-tiny")
def build_tiny(
    force: bool = typer.Option(False, "--force", help="Rebuild even if the cached image's inputs are unchanged."),
    fmt: str = typer.Option("table", "-f", "--format", help="table or json"),
    init_script: Path = typer.Option(None, "--init-script", help="Use this /init instead of the built-in one."),
    output_dir: Path = typer.Option(None, "--output-dir", help="Where to write the image (default: the cache)."),
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
