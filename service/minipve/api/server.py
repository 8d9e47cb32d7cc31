"""HTTPS server on the stdlib: Proxmox puts the error's first line in the HTTP reason phrase, which
ASGI servers cannot set, so minipve speaks HTTP/1.1 itself through http.server."""

from __future__ import annotations

import ipaddress
import json
import logging
import ssl
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from minipve.api.app import App, Request
from minipve.api.errors import NOT_IMPLEMENTED, ApiError
from minipve.faults import FaultError
from minipve.paramdefs import SCHEMAS
from minipve.params import ParamErrors, validate

log = logging.getLogger("minipve.api")
PREFIX = "/api2/json"
FAULTS_PATH = "/minipve/faults"
MAX_BODY = 1 << 20

Handler = Callable[[App, Request], Any]


class Router:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}

    def add(self, method: str, template: str, handler: Handler) -> None:
        if (method, template) not in SCHEMAS:
            raise ValueError(f"route {method} {template} has no parameter definition in minipve.paramdefs")
        self.routes[(method, template)] = handler

    def match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        for (m, template), handler in self.routes.items():
            if m != method:
                continue
            tsegs = template.strip("/").split("/")
            if len(tsegs) != len(segments):
                continue
            found: dict[str, str] = {}
            for tseg, seg in zip(tsegs, segments, strict=True):
                if tseg.startswith("{"):
                    found[tseg[1:-1]] = seg
                elif tseg != seg:
                    break
            else:
                return template, handler, found
        return None


def _reason(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "Error"
    return first.replace("\r", " ")[:200]


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    # TCP_NODELAY: the headers and the body go out in two writes, and with Nagle's algorithm the body
    # waits for the client's delayed ACK: 40 ms on every call (pveproxy answers in about 10 ms)
    disable_nagle_algorithm = True
    app: App
    router: Router

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing -------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: dict[str, Any],
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "max-age=0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _error(self, exc: ApiError) -> None:
        body: dict[str, Any] = {"data": None}
        if exc.errors is not None:
            body["errors"] = exc.errors
        body["message"] = exc.message.rstrip("\n") + "\n"
        self._send(exc.status, body, _reason(exc.message))

    def _read_params(self, query: str) -> dict[str, Any]:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "request too large")
        raw = self.rfile.read(length) if length else b""
        if raw:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/json":
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ApiError(400, f"malformed JSON body: {exc}") from None
                if not isinstance(body, dict):
                    raise ApiError(400, "JSON body must be an object")
                params.update({k: v for k, v in body.items() if v is not None})
            else:
                params.update(dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True)))
        return params

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            params = self._read_params(url.query)
            headers = {k.lower(): v for k, v in self.headers.items()}
            if url.path.rstrip("/") == FAULTS_PATH:
                self._serve_faults(method, params, headers)
                return
            if not url.path.startswith(PREFIX + "/") and url.path != PREFIX:
                raise ApiError(404, "Not found")
            path = url.path[len(PREFIX) :] or "/"
            matched = self.router.match(method, path)
            if matched is None:
                raise ApiError(501, NOT_IMPLEMENTED.format(method=method, path=path))
            template, handler, path_params = matched
            # logging in and the dummy GET of /access/ticket are open to the world, as on Proxmox
            open_route = template == "/access/ticket"
            user = "" if open_route else self.app.auth.authenticate(method, headers)
            fault = self.app.faults.endpoint_error(f"{method} {template}")
            if fault is not None:
                raise ApiError(500, fault)  # fault switch: the failure a test asked for
            try:
                typed = validate(SCHEMAS[(method, template)], {**params, **path_params})
            except ParamErrors as exc:
                raise ApiError(400, "Parameter verification failed.", exc.errors) from None
            self.app.check_node(typed)
            request = Request(method, path, template, typed, user)
            data = handler(self.app, request)
            self._send(200, {"data": data, **request.extra})
        except ApiError as exc:
            self._error(exc)
        except Exception as exc:  # an unforeseen failure still answers as Proxmox would: 500 + text
            log.error("%s %s failed:\n%s", method, url.path, traceback.format_exc())
            self._error(ApiError(500, str(exc) or type(exc).__name__))

    def _serve_faults(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> None:
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            raise ApiError(403, "the fault switch answers on loopback only")
        self.app.auth.authenticate(method, headers)
        faults = self.app.faults
        if method == "DELETE":
            faults.clear()
        elif method in ("PUT", "POST"):
            try:
                faults.set(params)
            except FaultError as exc:
                raise ApiError(400, str(exc)) from None
        self._send(200, {"data": faults.snapshot()})


def make_server(
    app: App, router: Router, address: str, port: int, certfile: str, keyfile: str
) -> ThreadingHTTPServer:
    handler = type("BoundApiHandler", (ApiHandler,), {"app": app, "router": router})
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    # the TLS handshake happens on first read, in the connection's own thread
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
