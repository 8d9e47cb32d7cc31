"""/nodes/{node}/lxc/{vmid}/status/*, and interfaces: running state and its changes."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from minipve.api.app import App, Request
from minipve.api.ct import ct_summary, spec_of
from minipve.api.errors import CT_NOT_RUNNING, CT_RUNNING, START_TEMPLATE, fail
from minipve.host.network import dhcp_range
from minipve.tasks import TaskContext, TaskFailed

NET_IP = re.compile(r"(?:^|,)ip=([0-9.]+)")

STATUS_SUBDIRS = ["current", "start", "stop", "shutdown", "reboot", "suspend", "resume"]


def status_index(app: App, req: Request) -> Any:
    app.conf(req.params["vmid"])
    return [{"subdir": name} for name in STATUS_SUBDIRS]


def current(app: App, req: Request) -> Any:
    vmid = req.params["vmid"]
    item = ct_summary(app, vmid, app.conf(vmid))
    item["ha"] = {"managed": 0}
    return item


def start_task(app: App, vmid: int, user: str) -> str:
    def body(ctx: TaskContext) -> None:
        with app.ct_mutex(vmid):
            conf = app.conf(vmid)
            if conf.get("template"):
                raise TaskFailed(START_TEMPLATE)
            if app.running(vmid):
                raise TaskFailed(CT_RUNNING.format(vmid=vmid))
            app.host.start(spec_of(vmid, conf), ctx.log)

    return app.tasks.start("vzstart", vmid, user, body)


def _checked(app: App, req: Request, want_running: bool) -> int:
    vmid = req.params["vmid"]
    conf = app.conf(vmid)
    if not req.params.get("skiplock"):
        app.check_unlocked(conf)
    running = app.running(vmid)
    if want_running and not running:
        raise fail(CT_NOT_RUNNING.format(vmid=vmid))
    if not want_running and running:
        raise fail(CT_RUNNING.format(vmid=vmid))
    return vmid


def start(app: App, req: Request) -> Any:
    return start_task(app, _checked(app, req, want_running=False), req.user)


def stop(app: App, req: Request) -> Any:
    vmid = _checked(app, req, want_running=True)

    def body(ctx: TaskContext) -> None:
        # no CT mutex: a hard stop must get through while a shutdown is still waiting
        if app.running(vmid):
            app.host.stop(vmid, ctx.log)

    return app.tasks.start("vzstop", vmid, req.user, body)


def shutdown(app: App, req: Request) -> Any:
    vmid = _checked(app, req, want_running=True)
    timeout = req.params.get("timeout", 60)
    force = bool(req.params.get("forceStop"))

    def body(ctx: TaskContext) -> None:
        with app.ct_mutex(vmid):
            if not app.running(vmid):
                raise TaskFailed(CT_NOT_RUNNING.format(vmid=vmid))
            app.host.shutdown(vmid, timeout, force, ctx.log)

    return app.tasks.start("vzshutdown", vmid, req.user, body)


def reboot(app: App, req: Request) -> Any:
    vmid = _checked(app, req, want_running=True)
    timeout = req.params.get("timeout", 60)

    def body(ctx: TaskContext) -> None:
        with app.ct_mutex(vmid):
            app.host.shutdown(vmid, timeout, True, ctx.log)
            app.host.start(spec_of(vmid, app.conf(vmid)), ctx.log)

    return app.tasks.start("vzreboot", vmid, req.user, body)


def interfaces(app: App, req: Request) -> Any:
    vmid = req.params["vmid"]
    app.conf(vmid)
    reply = app.host.interfaces(vmid)
    if reply and app.faults.ssh_unreachable:
        reply = _unreachable(reply, unused_address(app))
    return reply


def unused_address(app: App) -> ipaddress.IPv4Address:
    """An address of minipve's subnet that no container has (the `ssh_unreachable` fault): the highest of
    the static half below the DHCP range that no CT's netN sets, and not the gateway."""
    subnet = app.settings.subnet
    taken = {app.settings.gateway}
    for vmid in app.store.vmids():
        for key, value in (app.store.read(vmid) or {}).items():
            if key.startswith("net") and isinstance(value, str):
                taken.update(ipaddress.IPv4Address(m) for m in NET_IP.findall(value))
    low, _ = dhcp_range(subnet)
    for candidate in range(int(low) - 1, int(subnet.network_address), -1):
        addr = ipaddress.IPv4Address(candidate)
        if addr not in taken:
            return addr
    raise fail(f"no unused address left in {subnet} for the ssh_unreachable fault")


def _unreachable(reply: list[dict], addr: ipaddress.IPv4Address) -> list[dict]:
    """eth0 with `addr` in place of the IPv4 it has; a CT still waiting for DHCP stays as it is."""
    faked = []
    for iface in reply:
        if iface.get("name") == "eth0" and iface.get("inet"):
            prefix = iface["inet"].partition("/")[2] or "24"
            ips = [{**ip, "ip-address": str(addr)} if ip.get("ip-address-type") == "inet" else ip
                   for ip in iface.get("ip-addresses", [])]
            iface = {**iface, "inet": f"{addr}/{prefix}", "ip-addresses": ips}
        faked.append(iface)
    return faked
