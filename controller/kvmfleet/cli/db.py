"""`kvmfleet db` commands: schema upgrades. Also the error wrapper the store's commands share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from kvmfleet.cli.host import FORMAT_OPTION, Format, emit

app = typer.Typer(no_args_is_help=True)


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Store, quota, claim and configuration errors, and database errors (server unreachable, constraint),
    print as one line on stderr (never wrapped) and exit 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from kvmfleet.config import ConfigError
    from kvmfleet.store.errors import StoreError

    try:
        yield
    except (StoreError, ConfigError) as exc:
        typer.echo(f"error: {getattr(exc, 'msg', None) or exc}", err=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        typer.echo(f"error: database: {detail}", err=True)
        raise typer.Exit(1) from None


@app.command()
def upgrade(revision: str = typer.Option("head", help="Target revision."),
            fmt: Format = FORMAT_OPTION) -> None:
    """Migrate the store's schema (configured database URL) to the latest revision."""
    from kvmfleet.store.engine import make_engine
    from kvmfleet.store.engine import upgrade as do_upgrade

    with store_errors():
        engine = make_engine()
        try:
            before, after = do_upgrade(engine, revision)
        finally:
            engine.dispose()
        emit({"database": engine.url.render_as_string(hide_password=True), "from": before, "to": after}, fmt)


@app.command()
def version(fmt: Format = FORMAT_OPTION) -> None:
    """Show the store's schema revision and the one this kvmfleet needs."""
    from kvmfleet.store.engine import current_revision, head_revision, make_engine

    with store_errors():
        engine = make_engine()
        try:
            current = current_revision(engine)
        finally:
            engine.dispose()
        head = head_revision()
        emit({"database": engine.url.render_as_string(hide_password=True), "current": current, "head": head,
              "up_to_date": current == head}, fmt)
