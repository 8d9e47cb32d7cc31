"""Shared by the minipve API tests: a proxmoxer client, task and IP waits, error capture."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

APPLIANCE_VOLID = "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"
UPID_RE = re.compile(r"^UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:[a-z]+:[^:]*:[^:]+:$")


def client(env: dict[str, str]) -> ProxmoxAPI:
    return ProxmoxAPI(
        env["PROXMOX_HOST"],
        port=int(env["PROXMOX_PORT"]),
        user=env["PROXMOX_USER"],
        token_name=env["PROXMOX_TOKEN_ID"],
        token_value=env["PROXMOX_TOKEN_SECRET"],
        verify_ssl=False,
        timeout=60,
    )


def wait_task(api: ProxmoxAPI, node: str, upid: str, limit: float = 600) -> dict[str, Any]:
    assert UPID_RE.match(upid), upid
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = api.nodes(node).tasks(upid).status.get()
        if status["status"] == "stopped":
            return status
        time.sleep(0.2)
    raise AssertionError(f"task {upid} still running after {limit} s")


def task_ok(api: ProxmoxAPI, node: str, upid: str) -> None:
    status = wait_task(api, node, upid)
    assert status["exitstatus"] == "OK", (status, log_lines(api, node, upid))


def log_lines(api: ProxmoxAPI, node: str, upid: str) -> list[str]:
    return [entry["t"] for entry in api.nodes(node).tasks(upid).log.get(limit=0)]


def error_of(call: Callable[[], Any]) -> ResourceException:
    with pytest.raises(ResourceException) as info:
        call()
    return info.value


def wait_ipv4(api: ProxmoxAPI, node: str, vmid: int, limit: float = 60) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for iface in api.nodes(node).lxc(vmid).interfaces.get() or []:
            if iface["name"] == "eth0" and iface.get("inet"):
                return iface["inet"].split("/")[0]
        time.sleep(0.3)
    raise AssertionError(f"CT {vmid} got no IPv4 address within {limit} s")


def wait_config(api: ProxmoxAPI, node: str, vmid: int, key: str, value: Any, limit: float = 120) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        conf = api.nodes(node).lxc(vmid).config.get()
        if conf.get(key) == value:
            return conf
        time.sleep(0.3)
    raise AssertionError(f"CT {vmid} config {key} never became {value!r}")


def create_ct(api: ProxmoxAPI, node: str, vmid: int, **extra: Any) -> None:
    params = {
        "vmid": vmid,
        "ostemplate": APPLIANCE_VOLID,
        "hostname": f"ct{vmid}",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
        **extra,
    }
    task_ok(api, node, api.nodes(node).lxc.post(**params))


def destroy_ct(api: ProxmoxAPI, node: str, vmid: int) -> None:
    """Best-effort cleanup: stop, then destroy (a test that failed half way still leaks nothing)."""
    try:
        if api.nodes(node).lxc(vmid).status.current.get()["status"] == "running":
            wait_task(api, node, api.nodes(node).lxc(vmid).status.stop.post())
        wait_task(api, node, api.nodes(node).lxc(vmid).delete(purge=1))
    except ResourceException:
        pass
