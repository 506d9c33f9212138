"""`kvmfleet serve`: the REST service (identity, compute, image, network) and its task workers."""

from __future__ import annotations

import typer

from kvmfleet.cli.host import errors_as_one_line

app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def serve(
    bind: str = typer.Option(None, "--bind", help="HOST:PORT to listen on (default: api.bind, 127.0.0.1:8774)."),
    cert: str = typer.Option(None, "--cert", help="TLS certificate (PEM); with --key."),
    key: str = typer.Option(None, "--key", help="TLS private key (PEM); with --cert."),
    workers: int = typer.Option(None, "--workers", min=1, help="Task worker threads (default: api.workers)."),
    grace: float = typer.Option(60.0, "--grace", min=0, help="Seconds running tasks get to finish on SIGTERM "
                                                             "before they are handed back."),
    check: bool = typer.Option(False, "--check", help="Check the configuration, that the store answers and "
                                                      "that its schema is current; exit."),
) -> None:
    """Serve the OpenStack-compatible API on one port and run the task workers."""
    from kvmfleet import service

    with errors_as_one_line():
        if check:
            typer.echo(service.check())
            return
        service.run(bind=bind, cert=cert, key=key, grace=grace, workers=workers)
