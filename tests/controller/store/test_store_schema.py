"""Migrations build the schema the models describe, on both backends; empty stores upgrade themselves."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from kvmfleet.store import (
    Base,
    SchemaError,
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
    open_store,
    upgrade,
)
from kvmfleet.store.engine import alembic_config
from sqlalchemy import inspect, text

TABLES = {"projects", "flavors", "images", "hosts", "aggregates", "aggregate_hosts", "server_groups", "instances",
          "allocations", "quotas", "quota_defaults", "instance_actions", "instance_action_events"}


def test_upgrade_empty_database_matches_models(db_url):
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        before, after = upgrade(engine)
        assert (before, after) == (None, head_revision())
        assert TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert upgrade(engine) == (head_revision(), head_revision())  # idempotent
    finally:
        engine.dispose()


def test_downgrade_to_base_then_upgrade(db_url):
    from alembic import command

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        command.downgrade(alembic_config(engine), "base")
        assert not (TABLES & set(inspect(engine).get_table_names()))
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_open_store_upgrades_empty_database_by_itself(db_url):
    store = open_store(db_url)
    try:
        assert current_revision(store.engine) == head_revision()
    finally:
        store.dispose()


def test_foreign_tables_are_refused(db_url):
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE something_else (id INTEGER PRIMARY KEY)"))
        with pytest.raises(SchemaError, match="not a kvmfleet store"):
            ensure_schema(engine)
    finally:
        engine.dispose()


def test_outdated_schema_is_refused(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        with pytest.raises(SchemaError, match="kvmfleet db upgrade"):
            ensure_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()
