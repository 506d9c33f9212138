"""`kvmfleet identity` commands: bootstrap (keystone-manage bootstrap), token-purge."""

from __future__ import annotations

import typer

from kvmfleet.cli._secrets import password_from_stdin
from kvmfleet.cli.db import store_errors
from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)


@app.command()
def bootstrap(
    admin_password_stdin: bool = typer.Option(False, "--admin-password-stdin",
                                              help="Read the admin user's password from the first line of stdin."),
    admin_username: str = typer.Option("admin", help="The admin user's name."),
    project: str = typer.Option("admin", "--project", help="The admin project's name."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Create the Default domain, the roles admin/manager/member/reader/service, the admin project and the
    admin user with role admin on it. Idempotent: run again, it resets the admin password if it differs."""
    from kvmfleet import identity
    from kvmfleet.store import get_store

    if not admin_password_stdin:
        typer.echo("error: give --admin-password-stdin and the password on stdin", err=True)
        raise typer.Exit(2)
    password = password_from_stdin("admin password")
    with store_errors():
        report = identity.bootstrap(get_store(), password, admin_username=admin_username, project_name=project)
    if fmt is Format.json:
        emit(report, fmt)
        return
    for line in report["created"]:
        typer.echo(f"created {line}")
    for line in report["updated"]:
        typer.echo(f"updated {line}")
    if not report["created"] and not report["updated"]:
        typer.echo("identity already bootstrapped: nothing to do")


@app.command("token-purge")
def token_purge() -> None:
    """Delete the records of expired tokens (the service does this periodically too)."""
    from kvmfleet.identity import tokens
    from kvmfleet.store import get_store

    with store_errors():
        count = tokens.purge_expired(get_store())
    typer.echo(f"purged {count} expired token(s)")
