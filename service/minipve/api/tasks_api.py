"""/nodes/{node}/tasks: task list, status and log."""

from __future__ import annotations

from typing import Any

from minipve.api.app import App, Request
from minipve.api.errors import BAD_UPID, NO_SUCH_TASK, fail, param_error
from minipve.tasks import Task, parse_upid


def _task(app: App, upid: str) -> Task:
    if parse_upid(upid) is None:
        raise param_error("upid", BAD_UPID)
    task = app.tasks.get(upid)
    if task is None:
        raise fail(NO_SUCH_TASK)
    return task


def task_list(app: App, req: Request) -> Any:
    p = req.params
    source = p.get("source", "archive")
    out = []
    for task in app.tasks.list():
        if source == "active" and task.status != "running":
            continue
        if source == "archive" and task.status == "running":
            continue
        if p.get("vmid") is not None and task.id != str(p["vmid"]):
            continue
        if p.get("typefilter") and task.type != p["typefilter"]:
            continue
        if p.get("userfilter") and p["userfilter"] not in task.user:
            continue
        if p.get("errors") and task.exitstatus in (None, "OK"):
            continue
        if p.get("since") is not None and task.starttime < p["since"]:
            continue
        if p.get("until") is not None and task.starttime > p["until"]:
            continue
        item = task.as_dict()
        if task.status == "stopped":
            item["status"] = task.exitstatus
            item["endtime"] = task.endtime
        out.append(item)
    start, limit = p.get("start", 0), p.get("limit", 50)
    req.extra["total"] = len(out)
    return out[start : start + limit]


def task_index(app: App, req: Request) -> Any:
    _task(app, req.params["upid"])
    return [{"name": "log"}, {"name": "status"}]


def task_status(app: App, req: Request) -> Any:
    task = _task(app, req.params["upid"])
    item = task.as_dict()
    item["status"] = task.status
    if task.status == "stopped":
        item["exitstatus"] = task.exitstatus
    return item


def task_log(app: App, req: Request) -> Any:
    task = _task(app, req.params["upid"])
    lines = app.tasks.log_lines(task)
    start, limit = req.params.get("start", 0), req.params.get("limit", 50)
    req.extra["total"] = len(lines)
    chunk = lines[start : start + limit] if limit else lines[start:]
    if not chunk and start == 0:
        return [{"n": 1, "t": "no content"}]
    return [{"n": start + i + 1, "t": line} for i, line in enumerate(chunk)]
