"""Following a job to its end: the step, the task and the elapsed time as a live status line on a
terminal, as plain lines (one per task) when the output is captured; with `log`, Ansible's own
output too. The job's events come from its server-sent event stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from ctforge.client import Client

DONE_OK = "successful"


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def job_target(job: dict[str, Any]) -> str:
    if job.get("workspace_name"):
        return f"workspace {job['workspace_name']}"
    return f"template {job['template_name']}"


class Progress:
    """What the job is doing now; rendered afresh at each refresh, so the clock runs between events."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.since = _parse(job.get("started_at")) or _parse(job.get("created_at")) or datetime.now(UTC)
        self.step = job.get("playbook") or "-"
        self.task = "waiting for a worker" if job.get("status") == "queued" else ""
        self.spinner = Spinner("dots")
        self.event_at = self.since  # when the last event happened (a replayed job's are in the past)

    def elapsed(self, at: datetime | None = None) -> str:
        return clock(((at or datetime.now(UTC)) - self.since).total_seconds())

    def line(self) -> str:
        task = f" · {self.task}" if self.task else ""
        return f"{self.job['kind']} {job_target(self.job)}: {self.step}{task} · {self.elapsed()}"

    def __rich__(self) -> Spinner:
        self.spinner.text = Text(self.line())
        return self.spinner

    def take(self, kind: str, data: dict[str, Any]) -> bool:
        """Take in one event; True when the task or step changed (a plain line is due)."""
        before = (self.step, self.task)
        self.event_at = _parse(data.get("created_at")) or datetime.now(UTC)
        if data.get("playbook"):
            self.step = str(data["playbook"])
        if kind == "playbook_on_task_start" and data.get("task"):
            self.task = str(data["task"])
        elif kind == "playbook_on_start" and before[0] != self.step:
            self.task = ""
        return (self.step, self.task) != before


def follow(client: Client, job: dict[str, Any], console: Console, *, log: bool = False) -> dict[str, Any]:
    """Follow `job` (a JobPublic) until it ends; returns the job record as it ended."""
    progress = Progress(job)
    if not console.is_terminal:
        console.print(escape(f"following job {job['id']}: {job['kind']} {job_target(job)}"), soft_wrap=True)
        for kind, data in client.stream(job["id"]):
            if kind == "end":
                break
            changed = progress.take(kind, data)
            if log and data.get("stdout"):
                console.print(escape(str(data["stdout"])), soft_wrap=True, highlight=False)
            elif not log and changed:
                task = progress.task or "starting"
                line = f"{progress.elapsed(progress.event_at):>6}  {progress.step}: {task}"
                console.print(escape(line), soft_wrap=True, highlight=False)
    else:
        with Live(progress, console=console, refresh_per_second=8, transient=True) as live:
            for kind, data in client.stream(job["id"]):
                if kind == "end":
                    break
                progress.take(kind, data)
                if log and data.get("stdout"):
                    live.console.print(escape(str(data["stdout"])), highlight=False)
    ended: dict[str, Any] = client.get(f"/jobs/{job['id']}")
    took = _took(ended)
    console.print(escape(f"job {ended['id']}: {ended['kind']} {job_target(ended)} {ended['status']}{took}"),
                  soft_wrap=True, highlight=False)
    return ended


def _took(job: dict[str, Any]) -> str:
    start, end = _parse(job.get("started_at")), _parse(job.get("finished_at"))
    return f" in {clock((end - start).total_seconds())}" if start and end else ""


def failure(job: dict[str, Any]) -> str:
    """The one line for a job that did not succeed."""
    where = f" at step {job['failed_step']}" if job.get("failed_step") else ""
    cause = f": {' '.join(str(job['error']).split())}" if job.get("error") else ""
    return f"job {job['id']} ({job['kind']} {job_target(job)}) {job['status']}{where}{cause}"
