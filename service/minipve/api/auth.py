"""PVEAPIToken headers and PVEAuthCookie tickets with CSRFPreventionToken, as Proxmox checks them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from http.cookies import SimpleCookie
from pathlib import Path

from minipve.api.errors import AUTH_FAILURE, INVALID_CSRF, INVALID_TICKET, INVALID_TOKEN, NO_TICKET, ApiError
from minipve.config import Credentials

TICKET_LIFETIME = 2 * 3600


class Auth:
    def __init__(self, creds: Credentials, state_dir: Path) -> None:
        self.creds = creds
        self._key = self._load_key(state_dir / "etc" / "pve" / "priv" / "authkey.key")

    @staticmethod
    def _load_key(path: Path) -> bytes:
        # Kept on disk so tickets outlive a restart, as Proxmox's authkey does.
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return path.read_bytes()

    def _sign(self, text: str) -> str:
        return (
            base64.urlsafe_b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest())
            .decode()
            .rstrip("=")
        )

    def login(self, username: str, password: str, realm: str | None) -> dict[str, str]:
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        if not self.creds.check_password(username, password):
            raise ApiError(401, AUTH_FAILURE)
        stamp = f"{int(time.time()):08X}"
        plain = f"PVE:{username}:{stamp}"
        ticket = f"{plain}::{self._sign(plain)}"
        csrf = f"{stamp}:{self._sign('csrf:' + username + ':' + stamp)}"
        return {"username": username, "ticket": ticket, "CSRFPreventionToken": csrf}

    def _check_ticket(self, ticket: str) -> tuple[str, str]:
        plain, sep, signature = ticket.partition("::")
        parts = plain.split(":")
        if not sep or len(parts) != 3 or parts[0] != "PVE":
            raise ApiError(401, INVALID_TICKET)
        if not hmac.compare_digest(self._sign(plain), signature):
            raise ApiError(401, INVALID_TICKET)
        try:
            age = time.time() - int(parts[2], 16)
        except ValueError:
            raise ApiError(401, INVALID_TICKET) from None
        if age > TICKET_LIFETIME or age < -300:
            raise ApiError(401, INVALID_TICKET)
        return parts[1], parts[2]

    def authenticate(self, method: str, headers: dict[str, str]) -> str:
        """The user behind a request (`root@pam` or `root@pam!ctforge`), or a 401 ApiError."""
        authz = headers.get("authorization", "")
        if authz.startswith("PVEAPIToken="):
            token_id, sep, secret = authz[len("PVEAPIToken=") :].strip().partition("=")
            if not sep or "!" not in token_id:
                raise ApiError(401, INVALID_TOKEN)
            if not self.creds.check_token(token_id, secret):
                raise ApiError(401, INVALID_TOKEN)
            return token_id
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            raise ApiError(401, NO_TICKET) from None
        if "PVEAuthCookie" not in cookie:
            raise ApiError(401, NO_TICKET)
        user, stamp = self._check_ticket(cookie["PVEAuthCookie"].value)
        if method != "GET":
            csrf = headers.get("csrfpreventiontoken", "")
            cstamp, _, sig = csrf.partition(":")
            if cstamp != stamp or not hmac.compare_digest(self._sign("csrf:" + user + ":" + stamp), sig):
                raise ApiError(401, INVALID_CSRF)
        return user
