#!/usr/bin/python
# ruff: noqa: E402, E501  (Ansible module layout: the YAML doc strings come before the imports)
"""Call one Proxmox VE API endpoint; when it answers with a task, wait for the task's real outcome."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pve_api
short_description: Call the Proxmox VE API and follow the worker task it starts
description:
  - Sends one request to C(/api2/json) and returns its C(data).
  - When the reply is a task id (UPID) and O(wait) is true, polls the task's status until it stops.
    A task that stops with an error fails the module at once with the task's own message, instead of
    waiting for a timeout as the community.proxmox modules do; C(WARNINGS) count as success.
  - Used only for what the community.proxmox modules lack (failure detection, raw reads).
options:
  api_host: {description: Proxmox VE API host (env PROXMOX_HOST)., type: str}
  api_port: {description: API port (env PROXMOX_PORT)., type: int, default: 8006}
  api_user: {description: User with realm (env PROXMOX_USER)., type: str}
  api_token_id: {description: Token id (env PROXMOX_TOKEN_ID)., type: str}
  api_token_secret: {description: Token secret (env PROXMOX_TOKEN_SECRET)., type: str}
  api_password: {description: Password, used when no token is given (env PROXMOX_PASSWORD)., type: str}
  validate_certs: {description: Verify the TLS certificate (env PROXMOX_VALIDATE_CERTS)., type: bool, default: true}
  method: {description: HTTP method., type: str, default: GET, choices: [GET, POST, PUT, DELETE]}
  path: {description: Path under /api2/json, for example C(/nodes/pve1/lxc/200/clone)., type: str, required: true}
  data: {description: Parameters (query string for GET and DELETE, form body otherwise)., type: dict, default: {}}
  wait: {description: Wait for the task when the reply is a UPID., type: bool, default: true}
  timeout: {description: Seconds to wait for the task., type: int, default: 900}
  poll_interval: {description: Seconds between two task status polls., type: float, default: 0.25}
  until:
    description:
      - Repeat the GET until a condition holds, O(poll_interval) apart, at most O(timeout) seconds.
      - C(ipv4) on C(.../interfaces) waits for a global IPv4 address; C(ssh) also waits until port 22
        of that address answers with an SSH banner; C(template) on C(.../config) waits for C(template: 1).
    type: str
    choices: [ipv4, ssh, template]
author: ctforge
"""

RETURN = r"""
data: {description: The reply's data., returned: always, type: raw}
upid: {description: The task id when the reply was one., returned: when a task was started, type: str}
exitstatus: {description: The task's exit status (OK, WARNINGS n or the error)., returned: when waited, type: str}
ipv4: {description: The CT's global IPv4 address., returned: with until ipv4 or ssh, type: str}
"""

import re
import socket
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback

try:
    import requests
    import urllib3

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - the venv always has requests (proxmoxer needs it)
    HAS_REQUESTS = False

UPID_RE = re.compile(r"^UPID:[^:]+:[0-9A-Fa-f]{8}:")


class PveClient:
    def __init__(self, module: AnsibleModule):
        p = module.params
        self.module = module
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
            module.fail_json(msg="No Proxmox credentials: set PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET "
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
            self.module.fail_json(msg=f"{method} {path}: cannot reach Proxmox at {self.base}: {exc}")
        if reply.status_code >= 400:
            try:
                body = reply.json()
            except ValueError:
                body = {}
            message = (body or {}).get("message") or reply.reason or ""
            errors = (body or {}).get("errors")
            detail = "; ".join(f"{k}: {v}" for k, v in errors.items()) if errors else ""
            self.module.fail_json(
                msg=f"{method} {path}: HTTP {reply.status_code} {message.strip()}"
                + (f" ({detail})" if detail else ""),
                status=reply.status_code, errors=errors,
            )
        return reply.json().get("data")

    def wait_task(self, node: str, upid: str, timeout: int, interval: float) -> str:
        deadline = time.monotonic() + timeout
        path = f"/nodes/{node}/tasks/{upid}"
        while True:
            status = self.call("GET", path + "/status")
            if status.get("status") == "stopped":
                exitstatus = str(status.get("exitstatus") or "")
                if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
                    return exitstatus
                log = self.call("GET", path + "/log", {"start": 0, "limit": 1000}) or []
                tail = [line.get("t", "") for line in log][-10:]
                self.module.fail_json(msg=f"Proxmox task {status.get('type')} {status.get('id')} failed: "
                                          f"{exitstatus}", upid=upid, exitstatus=exitstatus, task_log=tail)
            if time.monotonic() > deadline:
                self.module.fail_json(msg=f"Proxmox task {upid} still running after {timeout} s", upid=upid)
            time.sleep(interval)


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


def poll(client: PveClient, path: str, until: str, timeout: int, interval: float) -> dict:
    """Repeat GET path until the condition holds; returns the last data and what was found."""
    deadline = time.monotonic() + timeout
    while True:
        data = client.call("GET", path)
        if until == "template" and int((data or {}).get("template") or 0) == 1:
            return {"data": data}
        if until in ("ipv4", "ssh"):
            addr = global_ipv4(data)
            if addr and (until == "ipv4" or ssh_answers(addr)):
                return {"data": data, "ipv4": addr}
        if time.monotonic() > deadline:
            client.module.fail_json(msg=f"GET {path}: still no {until} after {timeout} s", data=data)
        time.sleep(interval)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            # not `required`: module_defaults or the environment supply them; checked below with a clear message
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
            "path": {"type": "str", "required": True},
            "data": {"type": "dict", "default": {}},
            "wait": {"type": "bool", "default": True},
            "timeout": {"type": "int", "default": 900},
            "poll_interval": {"type": "float", "default": 0.25},
            "until": {"type": "str", "choices": ["ipv4", "ssh", "template"]},
        },
        supports_check_mode=False,
    )
    if not HAS_REQUESTS:
        module.fail_json(msg="pve_api needs the Python package requests on the controller")
    p = module.params
    if not p["api_host"] or not p["api_user"]:
        module.fail_json(msg="No Proxmox API endpoint: set PROXMOX_HOST and PROXMOX_USER (or api_host, api_user)")
    client = PveClient(module)
    if p["until"]:
        if p["method"] != "GET":
            module.fail_json(msg="until works with method GET only")
        module.exit_json(changed=False, **poll(client, p["path"], p["until"], p["timeout"], p["poll_interval"]))
    data = client.call(p["method"], p["path"], p["data"])
    result = {"changed": p["method"] != "GET", "data": data}
    if isinstance(data, str) and UPID_RE.match(data):
        result["upid"] = data
        if p["wait"]:
            node = data.split(":")[1]
            result["exitstatus"] = client.wait_task(node, data, p["timeout"], p["poll_interval"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
