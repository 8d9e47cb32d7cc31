"""Action plugin pve_api: one Proxmox VE API request, made on the controller, following the task it starts.

The request runs inside the controller's worker process: no module is shipped or started, which saves
about half a second of Python start-up per call (a build makes some twenty of them). The options and
return values are documented in plugins/modules/pve_api.py.
"""

from __future__ import annotations

import re
import socket
import time

from ansible.module_utils.common.parameters import env_fallback
from ansible.plugins.action import ActionBase

try:
    import requests
    import urllib3

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - the venv always has requests (proxmoxer needs it)
    HAS_REQUESTS = False

UPID_RE = re.compile(r"^UPID:[^:]+:[0-9A-Fa-f]{8}:")
CT_PATH_RE = re.compile(r"/lxc/([0-9]+)/")

# What a poll that ran out says: which part of "reachable over SSH" is missing.
NO_IPV4 = "CT {ct} has no global IPv4 address after {timeout} s"
SSH_SILENT = "SSH does not answer on {addr}:22 after {timeout} s"
SSH_PROBE_INTERVAL = 0.05
FIRST_PAUSE = 0.02

ARGUMENT_SPEC = {
    # not `required`: module_defaults or the environment supply them; checked in run() with a clear message
    "api_host": {"type": "str", "fallback": (env_fallback, ["PROXMOX_HOST"])},
    "api_port": {"type": "int", "default": 8006, "fallback": (env_fallback, ["PROXMOX_PORT"])},
    "api_user": {"type": "str", "fallback": (env_fallback, ["PROXMOX_USER"])},
    "api_token_id": {"type": "str", "fallback": (env_fallback, ["PROXMOX_TOKEN_ID"])},
    "api_token_secret": {"type": "str", "no_log": True,
                         "fallback": (env_fallback, ["PROXMOX_TOKEN_SECRET"])},
    "api_password": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PROXMOX_PASSWORD"])},
    "validate_certs": {"type": "bool", "default": True,
                       "fallback": (env_fallback, ["PROXMOX_VALIDATE_CERTS"])},
    "method": {"type": "str", "default": "GET", "choices": ["GET", "POST", "PUT", "DELETE"]},
    "path": {"type": "str"},
    "follow": {"type": "str"},
    "data": {"type": "dict", "default": {}},
    "wait": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 900},
    "poll_interval": {"type": "float", "default": 0.25},
    "until": {"type": "str", "choices": ["ipv4", "ssh", "template"]},
}


class PveError(Exception):
    """Ends the task as failed with msg and the extra result fields."""

    def __init__(self, msg: str, **fields):
        super().__init__(msg)
        self.fields = {"msg": msg, **fields}


class PveClient:
    def __init__(self, p: dict):
        self.base = f"https://{p['api_host']}:{p['api_port']}/api2/json"
        self.session = requests.Session()
        # per request: a session-level verify=False loses to REQUESTS_CA_BUNDLE in requests
        self.verify = p["validate_certs"]
        if not p["validate_certs"]:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if p["api_token_id"] and p["api_token_secret"]:
            self.session.headers["Authorization"] = (
                f"PVEAPIToken={p['api_user']}!{p['api_token_id']}={p['api_token_secret']}"
            )
        elif p["api_password"]:
            ticket = self.call("POST", "/access/ticket",
                               {"username": p["api_user"], "password": p["api_password"]})
            self.session.cookies.set("PVEAuthCookie", ticket["ticket"])
            self.session.headers["CSRFPreventionToken"] = ticket["CSRFPreventionToken"]
        else:
            raise PveError("No Proxmox credentials: set PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET "
                           "(or PROXMOX_PASSWORD)")

    def call(self, method: str, path: str, data: dict | None = None):
        data = {k: (int(v) if isinstance(v, bool) else v) for k, v in (data or {}).items() if v is not None}
        url = self.base + path
        try:
            if method in ("GET", "DELETE"):
                reply = self.session.request(method, url, params=data, timeout=60, verify=self.verify)
            else:
                reply = self.session.request(method, url, data=data, timeout=60, verify=self.verify)
        except requests.RequestException as exc:
            raise PveError(f"{method} {path}: cannot reach Proxmox at {self.base}: {exc}") from None
        if reply.status_code >= 400:
            try:
                body = reply.json()
            except ValueError:
                body = {}
            message = (body or {}).get("message") or reply.reason or ""
            errors = (body or {}).get("errors")
            detail = "; ".join(f"{k}: {v}" for k, v in errors.items()) if errors else ""
            raise PveError(f"{method} {path}: HTTP {reply.status_code} {message.strip()}"
                           + (f" ({detail})" if detail else ""), status=reply.status_code, errors=errors)
        return reply.json().get("data")

    def wait_task(self, node: str, upid: str, timeout: int, interval: float) -> str:
        deadline = time.monotonic() + timeout
        path = f"/nodes/{node}/tasks/{upid}"
        pauses = backoff(interval)
        while True:
            status = self.call("GET", path + "/status")
            if status.get("status") == "stopped":
                exitstatus = str(status.get("exitstatus") or "")
                if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
                    return exitstatus
                log = self.call("GET", path + "/log", {"start": 0, "limit": 1000}) or []
                tail = [line.get("t", "") for line in log][-10:]
                raise PveError(f"Proxmox task {status.get('type')} {status.get('id')} failed: {exitstatus}",
                               upid=upid, exitstatus=exitstatus, task_log=tail)
            if time.monotonic() > deadline:
                raise PveError(f"Proxmox task {upid} still running after {timeout} s", upid=upid)
            time.sleep(next(pauses))


def global_ipv4(interfaces) -> str | None:
    for iface in interfaces or []:
        inet = iface.get("inet") or ""
        if iface.get("name") == "lo" or not inet:
            continue
        addr = inet.split("/")[0]
        if not addr.startswith(("127.", "169.254.")):
            return addr
    return None


def ssh_answers(addr: str) -> bool:
    try:
        with socket.create_connection((addr, 22), timeout=2) as conn:
            conn.settimeout(2)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def backoff(interval: float):
    """The pauses between two polls: from FIRST_PAUSE, doubling up to `interval`. Most tasks (a
    linked clone, a start) end within a tenth of a second, long before a first pause of `interval`."""
    pause = min(FIRST_PAUSE, interval)
    while True:
        yield pause
        pause = min(pause * 2, interval)


def poll(client: PveClient, path: str, until: str, timeout: int, interval: float) -> dict:
    """Repeat GET path until the condition holds; returns the last data and what was found."""
    deadline = time.monotonic() + timeout
    pauses = backoff(interval)
    while True:
        data = client.call("GET", path)
        addr = None
        if until == "template" and int((data or {}).get("template") or 0) == 1:
            return {"data": data}
        if until in ("ipv4", "ssh"):
            addr = global_ipv4(data)
            if addr and (until == "ipv4" or ssh_answers(addr)):
                return {"data": data, "ipv4": addr}
        if time.monotonic() > deadline:
            raise PveError(_poll_timeout(path, until, timeout, addr), data=data,
                           **({"ipv4": addr} if addr else {}))
        if until == "ssh" and addr:
            # the address is known: knock on port 22 more often than the API is read (a refused
            # connect costs nothing), so SSH-ready is seen within SSH_PROBE_INTERVAL of sshd listening
            if ssh_answers_within(addr, min(interval, max(deadline - time.monotonic(), 0))):
                return {"data": data, "ipv4": addr}
            continue
        time.sleep(next(pauses))


def ssh_answers_within(addr: str, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(SSH_PROBE_INTERVAL)
        if ssh_answers(addr):
            return True
    return False


def _poll_timeout(path: str, until: str, timeout: int, addr: str | None) -> str:
    if until == "ssh" and addr:
        return SSH_SILENT.format(addr=addr, timeout=timeout)
    if until in ("ipv4", "ssh"):
        ct = CT_PATH_RE.search(path + "/")
        return NO_IPV4.format(ct=ct.group(1) if ct else path, timeout=timeout)
    return f"GET {path}: still no {until} after {timeout} s"


def request(p: dict) -> dict:
    if not HAS_REQUESTS:
        raise PveError("pve_api needs the Python package requests on the controller")
    if not p["api_host"] or not p["api_user"]:
        raise PveError("No Proxmox API endpoint: set PROXMOX_HOST and PROXMOX_USER (or api_host, api_user)")
    client = PveClient(p)
    if p["follow"]:
        if not UPID_RE.match(p["follow"]):
            raise PveError(f"follow: {p['follow']!r} is not a Proxmox task id (UPID:node:...)")
        node = p["follow"].split(":")[1]
        exitstatus = client.wait_task(node, p["follow"], p["timeout"], p["poll_interval"])
        return {"changed": False, "upid": p["follow"], "exitstatus": exitstatus}
    if not p["path"]:
        raise PveError("pve_api needs path (a request) or follow (a task to wait for)")
    if p["until"]:
        if p["method"] != "GET":
            raise PveError("until works with method GET only")
        return {"changed": False, **poll(client, p["path"], p["until"], p["timeout"], p["poll_interval"])}
    data = client.call(p["method"], p["path"], p["data"])
    result = {"changed": p["method"] != "GET", "data": data}
    if isinstance(data, str) and UPID_RE.match(data):
        result["upid"] = data
        if p["wait"]:
            node = data.split(":")[1]
            result["exitstatus"] = client.wait_task(node, data, p["timeout"], p["poll_interval"])
    return result


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if self._task.check_mode and params["method"] != "GET" and not params["follow"]:
            skipped = f"check mode: {params['method']} {params['path']} not sent"
            return {**result, "skipped": True, "msg": skipped}
        try:
            result.update(request(params))
        except PveError as exc:
            result.update(failed=True, **exc.fields)
        return result
