"""The web page: Jinja2 pages over the same records and rules as the API, at / (outside the OpenAPI
schema). `install(app)` mounts the routes and /static, and answers the page's own refusals as pages:
a login it needs redirects to /login, a refusal is a page with its message, an unknown address
outside /api/ the 404 page (the API keeps its JSON answers).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ctforge.web import messages
from ctforge.web.routes import STATIC_DIR, error_page, router, see_other
from ctforge.web.session import LoginRequired, PageError, clear_login

API_PATHS = ("/api/", "/docs", "/redoc")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    api_http_error = app.exception_handlers[StarletteHTTPException]

    async def login_required(request: Request, exc: LoginRequired) -> Response:
        response = see_other(f"/login?next={quote(exc.next_path)}")
        if request.cookies:  # a token no longer accepted: its cookie goes
            clear_login(response, request)
        return response

    async def page_error(request: Request, exc: PageError) -> Response:
        return error_page(request, exc.status_code, exc.message)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(API_PATHS):
            return await api_http_error(request, exc)  # type: ignore[no-any-return]
        text = messages.PAGE_NOT_FOUND if exc.status_code == 404 else str(exc.detail)
        return error_page(request, exc.status_code, text)

    app.add_exception_handler(LoginRequired, login_required)  # type: ignore[arg-type]
    app.add_exception_handler(PageError, page_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
