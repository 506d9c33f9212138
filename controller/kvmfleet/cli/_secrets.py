"""Reading a secret from stdin for the identity commands (never from argv, where `ps` shows it)."""

from __future__ import annotations

import sys

import typer


def password_from_stdin(what: str = "password") -> str:
    """The first line of stdin without its line ending; an empty one is an error."""
    line = sys.stdin.readline()
    value = line.rstrip("\r\n")
    if not value:
        typer.echo(f"error: no {what} on stdin (give it as the first line)", err=True)
        raise typer.Exit(1)
    return value
