"""The routes' dependencies, as types: `session: WriteSession`, `user: CurrentUser`,
`template: TemplateDep`. A writing session rolls back whole when the route raises; a route that
writes ends with `return commit(session, answer)`, so the write lock (SQLite) or the claimed rows
(PostgreSQL) are let go before FastAPI checks the answer on another worker thread: under load every
worker could otherwise be waiting on a lock held by a request that waits for a worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ctforge import messages
from ctforge.catalog import Catalog
from ctforge.db import Database
from ctforge.db.models import Template, User
from ctforge.fingerprint import Fingerprints
from ctforge.proxmox import ProxmoxView
from ctforge.records import templates, users
from ctforge.settings import Settings

T = TypeVar("T")


class Unauthorized(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Service:
    """What the app holds for its routes, made once by create_app."""

    settings: Settings
    db: Database
    catalog: Catalog
    proxmox: ProxmoxView
    fingerprints: Fingerprints
    jobs: Any = None  # ctforge.jobs.pool.JobPool, set by create_app
    deliverer: Any = None  # ctforge.notify.Deliverer, set by create_app


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def _read_session(service: ServiceDep) -> Iterator[Session]:
    with service.db.reading() as session:
        yield session


def _write_session(service: ServiceDep) -> Iterator[Session]:
    with service.db.writing() as session:
        yield session


def commit(session: Session, answer: T) -> T:
    """Commit the route's writes, and hand its answer on (see the module's docstring for why here)."""
    session.commit()
    return answer


ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A ctforge API token (`ctforge tokens create USER`).")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _optional_user(service: ServiceDep, credentials: Credentials) -> User | None:
    if credentials is None:
        return None
    with service.db.reading() as session:
        user = users.authenticate(session, credentials.credentials)
    if user is None:
        raise Unauthorized(messages.TOKEN_INVALID)
    return user


OptionalUser = Annotated[User | None, Depends(_optional_user)]


def _current_user(user: OptionalUser) -> User:
    if user is None:
        raise Unauthorized(messages.TOKEN_MISSING)
    return user


CurrentUser = Annotated[User, Depends(_current_user)]


def _visible_template(template_id: uuid.UUID, session: ReadSession, user: OptionalUser) -> Template:
    return templates.get_template(session, template_id, user)


def _template_to_change(template_id: uuid.UUID, session: WriteSession, user: CurrentUser) -> Template:
    # Locked for the rest of the transaction on PostgreSQL; SQLite's writer already holds the lock.
    return templates.get_template(session, template_id, user, for_update=True)


TemplateDep = Annotated[Template, Depends(_visible_template)]
TemplateToChange = Annotated[Template, Depends(_template_to_change)]
