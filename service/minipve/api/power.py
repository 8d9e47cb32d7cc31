"""/nodes/{node}/lxc/{vmid}/status/*, and interfaces: running state and its changes."""

from __future__ import annotations

from typing import Any

from minipve.api.app import App, Request
from minipve.api.ct import ct_summary, spec_of
from minipve.api.errors import CT_NOT_RUNNING, CT_RUNNING, START_TEMPLATE, fail
from minipve.tasks import TaskContext, TaskFailed

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
    return app.host.interfaces(vmid)
