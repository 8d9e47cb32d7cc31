"""Worker tasks with Proxmox UPIDs, an index and a log file per task under `<state>/tasks/`.

`index` holds one line per finished task (`UPID ENDTIME STATUS`), `active` the tasks running now,
and `<X>/<UPID>` each task's log (X = last hex digit of its start time), as /var/log/pve/tasks does.
A task body gets a `TaskContext`: `log(line)`, `warn(line)`; raising ends it in `TASK ERROR: <msg>`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minipve.faults import Faults

UNEXPECTED = "unexpected status"


class TaskFailed(Exception):
    """A task body ends with this text as its error."""


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    status: str = "running"  # running | stopped
    exitstatus: str | None = None
    endtime: int | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
        }
        return out


def parse_upid(upid: str) -> Task | None:
    parts = upid.split(":")
    if len(parts) != 9 or parts[0] != "UPID" or parts[8] != "":
        return None
    try:
        pid, pstart, starttime = (int(p, 16) for p in parts[2:5])
    except ValueError:
        return None
    if not parts[1] or not parts[5] or not parts[7]:
        return None
    return Task(upid, parts[1], pid, pstart, starttime, parts[5], parts[6], parts[7])


def _process_start() -> int:
    """Start time of this process in clock ticks since boot (field 22 of /proc/self/stat)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


class TaskContext:
    def __init__(self, manager: TaskManager, task: Task) -> None:
        self._manager = manager
        self.task = task
        self.warnings = 0

    def log(self, line: str) -> None:
        self._manager.append_log(self.task, line)

    def warn(self, line: str) -> None:
        self.warnings += 1
        self.log(f"WARN: {line}")


Body = Callable[[TaskContext], None]
Finish = Callable[[str | None], None]


class TaskManager:
    def __init__(self, state_dir: Path, node: str, faults: Faults) -> None:
        self.dir = state_dir / "tasks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.faults = faults
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._threads: list[threading.Thread] = []
        self._pid = os.getpid()
        self._pstart = _process_start()
        self._load()

    # -- persistence ----------------------------------------------------------------------
    def log_path(self, task: Task) -> Path:
        return self.dir / f"{task.starttime:08X}"[-1] / task.upid

    def _load(self) -> None:
        index = self.dir / "index"
        if index.exists():
            for line in index.read_text().splitlines():
                upid, _, rest = line.partition(" ")
                end, _, status = rest.partition(" ")
                task = parse_upid(upid)
                if task:
                    task.status, task.exitstatus = "stopped", status
                    task.endtime = int(end, 16) if end else None
                    self._tasks[upid] = task
        active = self.dir / "active"
        if active.exists():
            # Tasks of a previous run that never finished: their worker died with that process.
            for line in active.read_text().splitlines():
                task = parse_upid(line.split(" ")[0])
                if task and task.upid not in self._tasks:
                    self._tasks[task.upid] = task
                    self._finish(task, UNEXPECTED, write_log=False)
        self._write_active()

    def _write_active(self) -> None:
        running = [t.upid for t in self._tasks.values() if t.status == "running"]
        tmp = self.dir / "active.tmp"
        tmp.write_text("".join(f"{u} 1\n" for u in running))
        os.replace(tmp, self.dir / "active")

    def append_log(self, task: Task, line: str) -> None:
        path = self.log_path(task)
        path.parent.mkdir(exist_ok=True)
        with path.open("a") as fh:
            for part in str(line).rstrip("\n").split("\n"):
                fh.write(part + "\n")

    def _finish(self, task: Task, exitstatus: str, write_log: bool = True) -> None:
        with self._lock:
            if write_log:
                if exitstatus == "OK":
                    self.append_log(task, "TASK OK")
                elif exitstatus.startswith("WARNINGS"):
                    self.append_log(task, f"TASK {exitstatus}")
                else:
                    self.append_log(task, f"TASK ERROR: {exitstatus}")
            task.status, task.exitstatus, task.endtime = "stopped", exitstatus, int(time.time())
            with (self.dir / "index").open("a") as fh:
                fh.write(f"{task.upid} {task.endtime:08X} {exitstatus}\n")
            self._write_active()

    # -- running --------------------------------------------------------------------------
    def start(
        self, task_type: str, task_id: str | int, user: str, body: Body, finish: Finish | None = None
    ) -> str:
        """Run `body` in a worker thread; return the UPID at once. `finish(error)` always runs last."""
        with self._lock:
            now = int(time.time())
            pid = self._pid
            while True:
                upid = (
                    f"UPID:{self.node}:{pid:08X}:{self._pstart:08X}:{now:08X}:{task_type}:{task_id}:{user}:"
                )
                if upid not in self._tasks:
                    break
                pid += 1  # two tasks of one kind on one id in the same second: keep UPIDs unique
            task = Task(upid, self.node, pid, self._pstart, now, task_type, str(task_id), user)
            self._tasks[upid] = task
            self._write_active()
        ctx = TaskContext(self, task)
        thread = threading.Thread(target=self._run, args=(ctx, body, finish), name=upid, daemon=True)
        self._threads.append(thread)
        thread.start()
        return upid

    def _run(self, ctx: TaskContext, body: Body, finish: Finish | None) -> None:
        error: str | None = None
        try:
            if self.faults.slow:
                time.sleep(self.faults.slow)
            injected = self.faults.take_task_failure(ctx.task.type)
            if injected is not None:
                raise TaskFailed(injected)  # fault switch: the failure a test asked for
            body(ctx)
        except Exception as exc:  # a task ends in TASK ERROR whatever went wrong
            error = str(exc).strip() or type(exc).__name__
        if finish is not None:
            try:
                finish(error)
            except Exception as exc:
                error = error or f"cleanup failed: {exc}"
        if error is not None:
            self._finish(ctx.task, error.splitlines()[0] if error else error)
        elif ctx.warnings:
            self._finish(ctx.task, f"WARNINGS: {ctx.warnings}")
        else:
            self._finish(ctx.task, "OK")

    def get(self, upid: str) -> Task | None:
        with self._lock:
            return self._tasks.get(upid)

    def list(self) -> list[Task]:
        with self._lock:
            return sorted(self._tasks.values(), key=lambda t: t.starttime, reverse=True)

    def log_lines(self, task: Task) -> list[str]:
        try:
            return self.log_path(task).read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
