"""Helpers for the service's API tests: a Database rolled back per test, an API client with users,
and a snapshot of every table's rows.

The fixtures that use them live in conftest.py (`db`, `api`, `make_api`, `postgres`, ...).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from ctforge.api import create_app
from ctforge.db import Database, alembic_config
from ctforge.db.models import Base, Template
from ctforge.records import templates as template_records
from ctforge.records import users
from ctforge.settings import ProxmoxSettings, Settings

# the newest migration, as `ctforge db status` and /version name it
HEAD_REVISION = ScriptDirectory.from_config(alembic_config()).get_current_head()

API = "/api/v1"
APPLIANCE = "debian-12-standard"
USERS = {"alice": True, "bob": False, "carol": False}  # name: admin


def postgres_unavailable() -> str | None:
    """Why a private PostgreSQL cannot run here, or None when it can. As root (CI after setup.sh) it
    must run: a missing binary is then the fixture's failure, not a skip."""
    from ctforge.devdb import PostgresNotFoundError, find_bindir

    if os.geteuid() == 0:
        return None
    try:
        find_bindir()
    except PostgresNotFoundError as exc:
        return f"not root, and {exc}"
    return None


@contextmanager
def rolled_back(base: Database) -> Iterator[Database]:
    """A Database on `base`'s engine whose sessions all run on one connection, inside an outer
    transaction that is rolled back at the end: each session's begin/commit is a savepoint."""
    connection = base.engine.connect()
    outer = connection.begin()  # on SQLite the engine's "begin" listener sends the BEGIN itself
    db = Database(base.url, engine=base.engine)
    db.read_sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                    expire_on_commit=False)
    db.write_sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                     expire_on_commit=False)
    db.dispose = lambda: None  # type: ignore[method-assign]  # the engine is the session's
    try:
        yield db
    finally:
        outer.rollback()
        connection.close()


def table_rows(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the models, each table's rows in a stable order."""
    with db.reading() as session:
        return {
            table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def row_count(db: Database, table: str) -> int:
    with db.reading() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def service_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: its own state dir, no Proxmox unless given (the environment's ignored)."""
    overrides.setdefault("proxmox", ProxmoxSettings(host=None))
    overrides.setdefault("database_url", None)
    return Settings(state_dir=state_dir, **overrides)


class ApiClient:
    """A TestClient on create_app() over `db`, with the users alice (admin), bob and carol."""

    def __init__(self, db: Database, settings: Settings, *, tokens: dict[str, str] | None = None,
                 **app_args: Any) -> None:
        """`tokens`: the users exist already (another ApiClient's), use their tokens."""
        self.db = db
        self.settings = settings
        self.app = create_app(settings, db=db, check_database=False, **app_args)
        self.service = self.app.state.service
        self.catalog = self.service.catalog
        # A 500 must reach the test as an answer it asserts on, not as the server's exception.
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.tokens: dict[str, str] = dict(tokens or {})
        if tokens:
            return
        with db.writing() as session:
            for name, admin in USERS.items():
                user = users.add_user(session, name, admin=admin)
                self.tokens[name] = users.create_token(session, user)[1]

    def auth(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def request(self, method: str, path: str, who: str | None = None, **kwargs: Any) -> Any:
        headers = {**self.auth(who), **kwargs.pop("headers", {})}
        return self.client.request(method, f"{API}{path}", headers=headers, **kwargs)

    def get(self, path: str, who: str | None = None, **kwargs: Any) -> Any:
        return self.request("GET", path, who, **kwargs)

    def post(self, path: str, who: str | None = None, **kwargs: Any) -> Any:
        return self.request("POST", path, who, **kwargs)

    def patch(self, path: str, who: str | None = None, **kwargs: Any) -> Any:
        return self.request("PATCH", path, who, **kwargs)

    def delete(self, path: str, who: str | None = None, **kwargs: Any) -> Any:
        return self.request("DELETE", path, who, **kwargs)

    def create(self, who: str, name: str, *, expect: int = 201, **fields: Any) -> dict[str, Any]:
        """POST /templates; a base gets the appliance unless it names a parent or gives its own."""
        if "parent_id" not in fields:
            fields.setdefault("base_ct_template", APPLIANCE)
        answer = self.post("/templates", who, json={"name": name, **fields})
        assert answer.status_code == expect, answer.text
        return answer.json()

    def move(self, template_id: str | uuid.UUID, *steps: str, **facts: Any) -> Template:
        """Move the template's status through `steps` with records.templates.move_status."""
        with self.db.writing() as session:
            template = session.get(Template, uuid.UUID(str(template_id)))
            assert template is not None
            for step in steps:
                error = "the build failed" if step == "error" else None
                template_records.move_status(session, template, step, error=error, catalog=self.catalog,
                                             **(facts if step == steps[-1] else {}))
            return template

    def make_ready(self, template_id: str | uuid.UUID) -> Template:
        return self.move(template_id, "provisioning", "staging", "ready")

    def row(self, template_id: str | uuid.UUID) -> Template | None:
        with self.db.reading() as session:
            return session.get(Template, uuid.UUID(str(template_id)))


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses in LISTEN state on `port`, read from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found
