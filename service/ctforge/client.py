"""The HTTP API as the command line uses it: where the service is, which token to send, and every
failure as one ClientError carrying one line that says what to do.

    client = Client.connect(url=None, token=None)   # flags, CTFORGE_URL/CTFORGE_TOKEN, the config file
    tree = client.get("/templates/tree")
    template = client.template("nodejs")            # a name or an id

The endpoint and token come from the flags, the environment (CTFORGE_URL, CTFORGE_TOKEN) or
`config.toml` in the user's config dir (keys `url` and `token`, written by `ctforge login`). The
token is sent, never printed: no message here names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer

from ctforge.sse import sse_events

DEFAULT_URL = "http://127.0.0.1:8100"
API = "/api/v1"
TIMEOUT_SECONDS = 30.0
PAGE = 500

SERVICE_DOWN = (
    "the ctforge service is not running at {url} ({error}): start it with `ctforge serve` (or "
    "`bash scripts/demo.sh`), or point --url / CTFORGE_URL at it"
)
NOT_CTFORGE = (
    "{url} answered HTTP {status} without ctforge's JSON: is --url / CTFORGE_URL the ctforge service?"
)
TOKEN_NEEDED = (
    "this needs a token and none was given: make one with `ctforge tokens create USER`, then "
    "`ctforge login --url {url} --token TOKEN` (or set CTFORGE_TOKEN)"
)
TOKEN_REFUSED = (
    "the service at {url} refused the token (revoked or mistyped): make one with "
    "`ctforge tokens create USER`, then `ctforge login --url {url} --token TOKEN` (or set CTFORGE_TOKEN)"
)
CONFIG_INVALID = "cannot read {path}: {error}; fix it or write it again with `ctforge login`"
TEMPLATE_UNKNOWN = "no template named {name!r} that you may see: `ctforge templates` shows the family"
TEMPLATE_AMBIGUOUS = "{count} templates are named {name!r} (owners: {owners}): give the id instead"
WORKSPACE_UNKNOWN = "no workspace named {name!r} of yours: `ctforge workspaces list` shows them"
WORKSPACE_AMBIGUOUS = "{count} workspaces are named {name!r} (owners: {owners}): give the id instead"


class ClientError(Exception):
    """A failure to report as one line: `message` says what went wrong and what to do."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def config_path() -> Path:
    return Path(typer.get_app_dir("ctforge")) / "config.toml"


def read_config(path: Path | None = None) -> dict[str, str]:
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(CONFIG_INVALID.format(path=path, error=str(exc).splitlines()[0])) from None
    return {key: str(data[key]) for key in ("url", "token") if isinstance(data.get(key), str)}


def write_config(url: str, token: str, path: Path | None = None) -> Path:
    """Write url and token, readable by the user alone (0600 from the start, never wider)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = f"url = {json.dumps(url)}\ntoken = {json.dumps(token)}\n"  # JSON strings are TOML basic strings
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    return path


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str | None

    @classmethod
    def resolve(cls, url: str | None = None, token: str | None = None) -> Endpoint:
        """Flags first, then the environment, then the config file, then the default URL."""
        config = read_config() if not (url and token) else {}
        url = url or os.environ.get("CTFORGE_URL") or config.get("url") or DEFAULT_URL
        token = token or os.environ.get("CTFORGE_TOKEN") or config.get("token") or None
        return cls(url=url.rstrip("/"), token=token)


def is_id(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class Client:
    """One service, one token; every method answers the API's JSON or raises ClientError."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        headers = {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}
        self.http = httpx.Client(base_url=f"{endpoint.url}{API}", headers=headers, timeout=TIMEOUT_SECONDS)

    @classmethod
    def connect(cls, url: str | None = None, token: str | None = None) -> Client:
        return cls(Endpoint.resolve(url, token))

    @property
    def url(self) -> str:
        return self.endpoint.url

    def close(self) -> None:
        self.http.close()

    # -- requests ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._errors():
            reply = self.http.request(method, path, **kwargs)
        self._check(reply)
        if reply.status_code == 204:
            return None
        try:
            return reply.json()
        except ValueError:
            raise ClientError(NOT_CTFORGE.format(url=self.url, status=reply.status_code)) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("POST", path, json=body, params=query)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body)

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged listing ({data, count})."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.get(path, limit=PAGE, offset=len(items), **params)
            items += page["data"]
            if not page["data"] or len(items) >= page["count"]:
                return items

    def stream(self, job_id: str, after: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, data) of a job's server-sent events, until its `end`."""
        timeout = httpx.Timeout(TIMEOUT_SECONDS, read=None)  # a quiet task may say nothing for long
        with self._errors(), self.http.stream("GET", f"/jobs/{job_id}/stream", params={"after": after},
                                              timeout=timeout) as reply:
            if reply.status_code != 200:
                reply.read()
                self._check(reply)
            for kind, data in sse_events(reply.iter_lines()):
                yield kind, data
                if kind == "end":
                    return

    # -- lookups by name ---------------------------------------------------------------------------
    def template(self, name_or_id: str) -> dict[str, Any]:
        return self._named("/templates", name_or_id, TEMPLATE_UNKNOWN, TEMPLATE_AMBIGUOUS)

    def workspace(self, name_or_id: str) -> dict[str, Any]:
        return self._named("/workspaces", name_or_id, WORKSPACE_UNKNOWN, WORKSPACE_AMBIGUOUS)

    def _named(self, collection: str, name_or_id: str, unknown: str, ambiguous: str) -> dict[str, Any]:
        """The one record of `collection` with that id or name; a name two owners share is refused."""
        if is_id(name_or_id):
            return dict(self.get(f"{collection}/{name_or_id}"))
        found = [r for r in self.pages(collection) if r["name"] == name_or_id]
        if not found:
            raise ClientError(unknown.format(name=name_or_id), 404)
        if len(found) > 1:
            raise ClientError(ambiguous.format(
                count=len(found), name=name_or_id, owners=", ".join(sorted(r["owner"] for r in found))))
        return found[0]

    # -- errors ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ClientError(SERVICE_DOWN.format(url=self.url, error=_first_line(exc, "refused"))) from None
        except httpx.HTTPError as exc:
            cause = _first_line(exc, type(exc).__name__)
            raise ClientError(f"the service at {self.url} did not answer: {cause}") from None

    def _check(self, reply: httpx.Response) -> None:
        if reply.status_code < 400:
            return
        if reply.status_code == 401:
            text = TOKEN_REFUSED if self.endpoint.token else TOKEN_NEEDED
            raise ClientError(text.format(url=self.url), 401)
        try:
            detail = reply.json().get("detail")
        except ValueError:
            detail = None
        if not isinstance(detail, str):
            raise ClientError(NOT_CTFORGE.format(url=self.url, status=reply.status_code), reply.status_code)
        raise ClientError(" ".join(detail.split()), reply.status_code)


def _first_line(exc: Exception, fallback: str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else fallback
