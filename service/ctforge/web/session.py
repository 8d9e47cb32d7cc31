"""Who is logged in to the web page, and whether a form comes from it.

The API token a person logs in with is kept in an HttpOnly, SameSite=Strict cookie and checked on
every request exactly as the API checks its bearer token (records.users.authenticate): nothing of
a session lives on the server, and a revoked token logs its cookies out. A POST is accepted only
from this site's own page: SameSite=Strict keeps the cookie off cross-site requests, and the Origin
(or, without one, the Referer) must name this site.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request, Response

from ctforge.api.deps import ServiceDep
from ctforge.db.models import User
from ctforge.records import users
from ctforge.web import messages

COOKIE = "ctforge_token"
FORM_FIELDS_MAX = 200  # the child form's checkboxes are the catalog's stacks: far fewer


class LoginRequired(Exception):
    """No cookie, or one whose token is not (or no longer) accepted: the login page, then back."""

    def __init__(self, next_path: str, message: str) -> None:
        super().__init__(message)
        self.next_path, self.message = next_path, message


class PageError(Exception):
    """A refusal shown as a page of its own: the status and what went wrong."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code, self.message = status_code, message


def token_user(service: ServiceDep, token: str) -> User | None:
    with service.db.reading() as session:
        return users.authenticate(session, token)


def _web_user(request: Request, service: ServiceDep) -> User:
    # after the login, back to the page asked for; a form's target is no page: the start then
    back = request.url.path if request.method == "GET" else "/"
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired(back, messages.LOGIN_NEEDED)
    user = token_user(service, token)
    if user is None:
        raise LoginRequired(back, messages.TOKEN_REFUSED)
    return user


WebUser = Annotated[User, Depends(_web_user)]


def set_login(response: Response, request: Request, token: str) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


def clear_login(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, httponly=True, samesite="strict", path="/",
                           secure=request.url.scheme == "https")


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path of this site only (no //host, no scheme)."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")) or urlsplit(path).netloc:
        return "/"
    return path


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def _same_origin(request: Request) -> None:
    own = f"{request.url.scheme}://{request.url.netloc}".lower()
    origin = request.headers.get("origin")
    claimed = _origin_of(origin) if origin and origin != "null" else None
    if claimed is None and origin is None:
        referer = request.headers.get("referer")
        claimed = _origin_of(referer) if referer else None
    if claimed != own:
        raise PageError(403, messages.CROSS_SITE)


SameOrigin = Depends(_same_origin)


async def _form(request: Request) -> dict[str, list[str]]:
    """The posted form (application/x-www-form-urlencoded), read here rather than by
    python-multipart: the page's forms are small and never carry files."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise PageError(400, messages.FORM_UNREADABLE)
    try:
        return parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                        strict_parsing=False, max_num_fields=FORM_FIELDS_MAX)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, messages.FORM_UNREADABLE) from None


FormFields = Annotated[dict[str, list[str]], Depends(_form)]


def field(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]
