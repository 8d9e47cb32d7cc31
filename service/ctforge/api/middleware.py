"""Pure ASGI middlewares: one log line per request (method, path, status and time; never a header, so
never a token, and never the query), and the cap on request bodies."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ctforge import messages

access_log = logging.getLogger("ctforge.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info('%s "%s %s" %d %.1fms', client[0], scope["method"], scope["path"], status,
                            (time.perf_counter() - started) * 1000)


@dataclass(frozen=True)
class Cap:
    limit: int  # bytes
    setting: str  # the variable that sets it, for the message

    @property
    def message(self) -> str:
        return messages.BODY_TOO_LARGE.format(limit=self.limit, setting=self.setting)


class BodyTooLarge(HTTPException):
    """Raised from receive() once a body without a Content-Length grows past the limit; FastAPI lets
    an HTTPException raised while it reads the body through as it is, so errors.py answers it."""

    def __init__(self, cap: Cap) -> None:
        super().__init__(status_code=413, detail=cap.message)


class BodyLimit:
    """A cap on request bodies, answered with the API's JSON 413 before the body is parsed: `cap`, or
    the one `larger` names for a path. (FastAPI's own max_body_size answers a too-large
    Content-Length in plain text, hence this one.)"""

    def __init__(self, app: ASGIApp, cap: Cap, larger: Mapping[str, Cap] | None = None) -> None:
        self.app, self.cap, self.larger = app, cap, dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.larger.get(str(scope.get("path") or "").rstrip("/"), self.cap)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap.limit:
            body = json.dumps({"detail": cap.message}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap.limit:
                raise BodyTooLarge(cap)
            return message

        await self.app(scope, counted, send)
