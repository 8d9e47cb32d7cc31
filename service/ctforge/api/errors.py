"""How a refusal reaches the client: always `{"detail": "<what went wrong and what to do>"}`, with
the status of its kind; a malformed request also lists each wrong field under `errors`. Nothing
the client sent is echoed back, and no error is ever a 500 with a traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctforge import messages
from ctforge.api.deps import Unauthorized
from ctforge.api.schemas import PATTERN_RULES
from ctforge.records.errors import RecordError

log = logging.getLogger("ctforge.api")


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _reason(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch":
        field = next((str(p) for p in error["loc"][1:] if str(p) in PATTERN_RULES), None)
        if field is not None:
            return f"must be {PATTERN_RULES[field]}"
    if error.get("type") == "extra_forbidden":
        return "is not a field of this request"
    if error.get("type") == "json_invalid":
        return "is not valid JSON"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [{"loc": _location(e["loc"]), "msg": _reason(e)} for e in exc.errors()]
    detail = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems[:5])
    if len(problems) > 5:
        detail += f"; and {len(problems) - 5} more"
    return JSONResponse(status_code=422, content={"detail": detail, "errors": problems})


async def _record_error(_request: Request, exc: RecordError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})


async def _unauthorized(_request: Request, exc: Unauthorized) -> JSONResponse:
    return JSONResponse(status_code=401, content={"detail": exc.message},
                        headers={"WWW-Authenticate": "Bearer"})


async def _database_down(_request: Request, exc: OperationalError | PoolTimeout) -> JSONResponse:
    orig = getattr(exc, "orig", None)
    log.error("database error: %s", str(orig or exc).splitlines()[0])
    return JSONResponse(status_code=503, content={"detail": messages.DATABASE_BUSY})


def _methods_of(request: Request) -> list[str]:
    """Every method the API documents for this path (Starlette's Allow names one route's only)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404 and detail == "Not Found":  # the router's: no route has this path
        detail = messages.ROUTE_NOT_FOUND
    elif exc.status_code == 405:
        allowed = ", ".join(_methods_of(request))
        detail = messages.METHOD_NOT_ALLOWED.format(method=request.method, allowed=allowed)
        headers = {**(headers or {}), "Allow": allowed}
    return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(RecordError, _record_error)  # type: ignore[arg-type]
    app.add_exception_handler(Unauthorized, _unauthorized)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(PoolTimeout, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
