"""Alembic environment for the kvmfleet store. Driven by kvmfleet.store.engine.upgrade() (or `alembic`
with a Config whose sqlalchemy.url is set); uses batch mode on SQLite so ALTERs work there."""

from __future__ import annotations

from alembic import context

from kvmfleet.store.engine import make_engine
from kvmfleet.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    owned = engine is None
    if owned:
        engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
