"""Alembic's entry point: runs the migrations on the connection that ctforge.db hands it."""

from alembic import context
from sqlalchemy import Connection

from ctforge.db import make_engine
from ctforge.db.models import Base

connection = context.config.attributes.get("connection")


def run(conn: Connection) -> None:
    # batch mode: SQLite alters a table by copying it, so later migrations can change columns there too
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # the `alembic` command itself, with sqlalchemy.url set in its config
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run(conn)
