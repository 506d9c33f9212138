"""`kvmfleet bench` commands."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)


@app.command("scheduler")
def scheduler(
    workload: Annotated[Path, typer.Option("--workload", exists=True, dir_okay=False,
                                           help="Workload JSON (bench/README.md).")],
    out: Annotated[Path, typer.Option("--out", dir_okay=False, help="Where to write the result JSON.")],
    config: Annotated[Path | None, typer.Option(
        "--config", exists=True, dir_okay=False,
        help="Scheduler settings (YAML or JSON mapping of SchedulerConfig fields).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of a table.")] = False,
    log_failures: Annotated[bool, typer.Option(
        "--log-failures", help="Log one line per request that found no host.")] = False,
) -> None:
    """Place every request of a workload through the real scheduler; write placements and timings."""
    from kvmfleet.scheduler.bench import run_workload
    from kvmfleet.scheduler.config import SchedulerConfig
    from kvmfleet.scheduler.exceptions import SchedulerError

    err = Console(stderr=True)
    if not log_failures:
        logging.getLogger("kvmfleet.scheduler").setLevel(logging.ERROR)
    try:
        with workload.open() as f:
            data = json.load(f)
        settings = SchedulerConfig.from_dict(yaml.safe_load(config.read_text()) if config else None)
        result = run_workload(data, settings)
    except (OSError, ValueError, KeyError, SchedulerError) as exc:
        err.print("[red]bench scheduler: %s[/red]" % (exc if not isinstance(exc, KeyError) else f"missing key {exc}"))
        raise typer.Exit(1) from None
    out.write_text(json.dumps(result, indent=None, separators=(",", ":")) + "\n")
    summary = result["summary"]
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    table = Table(title=f"scheduler: {summary['hosts']} hosts, {summary['requests']} requests")
    for col in ("placed", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"):
        table.add_column(col, justify="right")
    table.add_row(str(summary["placed"]), str(summary["failed"]),
                  *(f"{summary[k]:.3f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")))
    Console().print(table)
    typer.echo(f"result written to {out}")
