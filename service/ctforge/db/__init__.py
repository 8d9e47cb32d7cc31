"""The database: engines, sessions, and the Alembic migrations that shape it.

    db = Database(settings.url)
    db.upgrade()                      # `ctforge db upgrade`
    db.check_current()                # raises DatabaseBehind naming the command that fixes it
    with db.writing() as session:     # one transaction; commits on success, rolls back on error
        ...

SQLite runs in WAL mode with foreign keys on, and a writing session takes the write lock when it
begins (BEGIN IMMEDIATE): two requests that read then write never deadlock on the lock upgrade,
they queue on busy_timeout. Reading sessions begin deferred, so a read never waits for a writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from ctforge import messages

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_WRITE = "ctforge_sqlite_begin"
# One connection for each of the worker threads that run the sync routes (anyio's default limit),
# so no request waits for a connection while another holds one and waits for a worker.
POOL_SIZE = 40


class DatabaseError(Exception):
    """The database cannot be used as it is; the message says what to do."""


class DatabaseBehind(DatabaseError):
    pass


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", 0)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the "begin" listener below starts transactions itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL's safe setting: a power cut loses no committed row
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_WRITE, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", 0)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


class Database:
    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self.read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_sessions = sessionmaker(
            self.engine.execution_options(**{_WRITE: "IMMEDIATE"}), expire_on_commit=False)

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def upgrade(self, revision: str = "head") -> None:
        with self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            raw = connection.connection.driver_connection
            if sqlite:  # batch mode copies a table and drops the old one: that drop must not cascade
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    command.upgrade(alembic_config(connection), revision)
                    if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                        raise DatabaseError("a migration left rows whose foreign keys point nowhere")
            finally:
                if sqlite:
                    raw.execute("PRAGMA foreign_keys=ON")

    def revisions(self) -> tuple[set[str], set[str]]:
        """(the revisions the database is at, the newest revisions the code knows)."""
        heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
        with self.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
        return current, heads

    def check_current(self) -> None:
        try:
            current, heads = self.revisions()
        except Exception as exc:  # a database that cannot be reached at all
            raise DatabaseError(messages.DATABASE_UNREACHABLE.format(
                url=self.display_url, error=str(exc).splitlines()[0])) from None
        if current != heads:
            raise DatabaseBehind(messages.DATABASE_BEHIND.format(
                url=self.display_url, current=", ".join(sorted(current)) or "empty",
                head=", ".join(sorted(heads))))

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self.write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.read_sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
