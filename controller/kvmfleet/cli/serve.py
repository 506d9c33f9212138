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
    check: bool = typer.Option(False, "--check", help="Check the configuration and that the store answers; exit."),
) -> None:
    """Serve the OpenStack-compatible API on one port and run the task workers."""
    from kvmfleet import service

    with errors_as_one_line():
        if check:
            typer.echo(service.check())
            return
        service.run(bind=bind, cert=cert, key=key)
