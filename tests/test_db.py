"""The database: the migrations make exactly the models' tables, and the service refuses a database
that is behind them, naming the command that fixes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from ctforge import messages
from ctforge.db import Database, DatabaseBehind, DatabaseError, alembic_config
from ctforge.db.models import Base
from service_helpers import HEAD_REVISION


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'ctforge.db'}")
    yield db
    db.dispose()


def test_migrations_make_the_models_tables(sqlite_db: Database) -> None:
    sqlite_db.upgrade()
    with sqlite_db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert set(inspect(connection).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}


def test_an_empty_or_older_database_is_refused_with_the_fix(sqlite_db: Database) -> None:
    with pytest.raises(DatabaseBehind) as empty:
        sqlite_db.check_current()
    assert str(empty.value) == messages.DATABASE_BEHIND.format(
        url=sqlite_db.display_url, current="empty", head=HEAD_REVISION)
    sqlite_db.upgrade()
    sqlite_db.check_current()
    with sqlite_db.engine.begin() as connection:  # the downgrade path works, and leaves it behind again
        command.downgrade(alembic_config(connection), "base")
    with sqlite_db.engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    with pytest.raises(DatabaseBehind, match="ctforge db upgrade"):
        sqlite_db.check_current()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_db: Database) -> None:
    sqlite_db.upgrade()
    with sqlite_db.reading() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_an_unreachable_database_says_which(tmp_path: Path) -> None:
    db = Database("postgresql+psycopg://ctforge:secret@127.0.0.1:1/ctforge")
    with pytest.raises(DatabaseError) as refused:
        db.check_current()
    assert "127.0.0.1:1" in str(refused.value) and "secret" not in str(refused.value)


def test_on_postgresql_too_the_migrations_make_the_models_tables_and_go_back(postgres) -> None:
    postgres.create_database("migrations_check")
    db = Database(postgres.url_for("migrations_check"))
    try:
        with pytest.raises(DatabaseBehind):
            db.check_current()
        db.upgrade()
        db.check_current()
        with db.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        with db.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == {"alembic_version"}
    finally:
        db.dispose()
        postgres.drop_database("migrations_check")


def test_upgrading_a_database_with_records_keeps_every_row(sqlite_db: Database) -> None:
    """0002 copies templates and vmid_claims (SQLite's batch mode) to change their CHECKs: the copy
    must not cascade the drop of the old table into the claims."""
    tid, day = "0123456789abcdef0123456789abcdef", "2026-12-01"
    sqlite_db.upgrade("0001")
    with sqlite_db.engine.begin() as connection:
        connection.exec_driver_sql(
            f"INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'alice', 1, '{day}')")
        connection.exec_driver_sql(
            "INSERT INTO templates (id, owner_id, base_ct_template, name, description, vmid, status,"
            " tech_stacks, inherited_tech_stacks, is_default, env_vars, needs_rebuild, created_at,"
            " updated_at)"
            f" VALUES ('{tid}', 1, 'debian-12-standard', 'base', '', 500, 'ready', '[]', '[]',"
            f" 0, '{{}}', 0, '{day}', '{day}')")
        connection.exec_driver_sql("INSERT INTO vmid_claims (vmid, kind, template_id, created_at)"
                                   f" VALUES (500, 'template', '{tid}', '{day}')")
    sqlite_db.upgrade()
    with sqlite_db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT vmid, kind FROM vmid_claims").all() == [(500, "template")]
        assert connection.exec_driver_sql("SELECT name, status FROM templates").all() == [("base", "ready")]
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
