"""Users and their bearer tokens. A token is `ctf_` and 43 random characters; the database keeps
only its SHA-256, so a stolen database opens nothing, and the text is shown once, when made."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctforge import messages
from ctforge.db.models import ApiToken, User
from ctforge.records.errors import Conflict, Invalid, NotFound

TOKEN_PREFIX = "ctf_"
USER_NAME = r"[a-z][a-z0-9_.-]{0,63}"
_SHOWN = 8  # characters of a token kept in the clear, to tell tokens apart in a listing


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(session: Session, name: str, *, admin: bool = False) -> User:
    if re.fullmatch(USER_NAME, name) is None:
        raise Invalid(messages.USER_NAME_INVALID.format(name=name, pattern=USER_NAME))
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(messages.USER_EXISTS.format(name=name))
    user = User(name=name, is_admin=admin)
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(messages.USER_NOT_FOUND.format(name=name))
    return user


def create_token(session: Session, user: User, label: str = "") -> tuple[ApiToken, str]:
    """A new token for `user`: the row, and the token's text (not stored anywhere)."""
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, digest=digest(text), prefix=text[:_SHOWN], label=label)
    session.add(token)
    session.flush()
    return token, text


def authenticate(session: Session, text: str) -> User | None:
    """The user whose token this is, or None. The lookup is by digest: no token text is compared."""
    if not text.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.digest == digest(text)))
    return token.user if token is not None else None

