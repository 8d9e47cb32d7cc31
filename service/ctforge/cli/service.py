"""The service's commands: `serve`, `db upgrade|status`, `users add|list`, `tokens create`.

`users` and `tokens` work on the database directly, so the first admin can be made before the
service runs: `ctforge users add alice --admin && ctforge tokens create alice`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select

from ctforge import messages
from ctforge.catalog import CatalogError
from ctforge.cli.common import fail
from ctforge.db import Database, DatabaseError
from ctforge.db.models import User
from ctforge.records import users
from ctforge.records.errors import RecordError
from ctforge.settings import Settings, get_settings

db_app = typer.Typer(
    help="The service's database (CTFORGE_DATABASE_URL; SQLite in the state dir by default).",
    no_args_is_help=True)
users_app = typer.Typer(help="Users of the service.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (bearer tokens for the HTTP API).", no_args_is_help=True)


def _variable(model: str, loc: tuple[object, ...]) -> str:
    """The environment variable a settings error is about (ProxmoxSettings' `port` is PROXMOX_PORT)."""
    if not loc:
        return "settings"
    prefix = "PROXMOX_" if model == "ProxmoxSettings" else "CTFORGE_"
    return prefix + "_".join(str(p) for p in loc).upper()


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(exc.title, e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise fail(messages.SETTINGS_INVALID.format(problems=problems)) from None


@contextmanager
def _database(check: bool = True) -> Iterator[Database]:
    db = Database(_settings().url)
    try:
        if check:
            db.check_current()
        yield db
    except (DatabaseError, RecordError) as exc:
        raise fail(str(exc)) from None
    finally:
        db.dispose()


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (CTFORGE_LISTEN).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (CTFORGE_PORT).")] = None,
) -> None:
    """Run the HTTP API (loopback by default); refuses a database that is behind its migrations."""
    import uvicorn

    from ctforge.api import create_app

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)  # checks the database is current, loads the catalog
    except (DatabaseError, CatalogError) as exc:
        raise fail(str(exc)) from None
    uvicorn.run(app, host=host or settings.listen, port=port or settings.port, access_log=False,
                log_config=None, server_header=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest revision (creates it when it does not exist)."""
    with _database(check=False) as db:
        db.upgrade()
        current, _ = db.revisions()
        typer.echo(f"ok: {db.display_url} is at revision {', '.join(sorted(current))}")


@db_app.command("status")
def db_status() -> None:
    """Say which revision the database is at, and whether the service can start on it."""
    with _database(check=False) as db:
        try:
            current, heads = db.revisions()
        except Exception as exc:
            raise fail(messages.DATABASE_UNREACHABLE.format(
                url=db.display_url, error=str(exc).splitlines()[0])) from None
        typer.echo(f"{db.display_url}: at {', '.join(sorted(current)) or 'no revision (empty)'}; "
                   f"newest {', '.join(sorted(heads))}")
        db.check_current()


@users_app.command("add")
def add_user(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Lower-case letters, digits, '.', '_' and '-'.")],
    admin: Annotated[bool, typer.Option("--admin", help="An admin sees and changes every template.")] = False,
) -> None:
    """Add a user."""
    with _database() as db, db.writing() as session:
        user = users.add_user(session, name, admin=admin)
        typer.echo(f"ok: user {user.name}{' (admin)' if user.is_admin else ''}; "
                   f"make a token with `ctforge tokens create {user.name}`")


@users_app.command("list")
def list_users() -> None:
    """Show every user."""
    with _database() as db, db.reading() as session:
        rows = session.scalars(select(User).order_by(User.name)).all()
        table = Table(title=f"{len(rows)} users", title_justify="left")
        for column in ("name", "admin", "tokens", "created"):
            table.add_column(column)
        for user in rows:
            table.add_row(escape(user.name), "yes" if user.is_admin else "", str(len(user.tokens)),
                          user.created_at.strftime("%Y-%m-%d %H:%M"))
        Console(highlight=False).print(table)


@tokens_app.command("create")
def create_token(
    user_name: Annotated[str, typer.Argument(metavar="USER")],
    label: Annotated[str, typer.Option(help="What the token is for, to tell tokens apart.")] = "",
) -> None:
    """Make an API token for USER and print it: it is shown this once, and stored only hashed."""
    with _database() as db, db.writing() as session:
        user = users.get_user(session, user_name)
        _token, text = users.create_token(session, user, label=label)
    typer.echo(text)
    typer.echo(f"(a token for {user_name}; it is shown once: keep it now)", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
