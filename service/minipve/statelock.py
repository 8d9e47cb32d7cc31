"""One minipve process per state dir: an exclusive flock on `<state>/minipve.lock`.

`serve` takes it before it touches anything and holds it for the life of the process (the kernel
drops it when the process ends, however it ends, so a crash leaves no stale lock); `reset` takes it
for as long as it removes things. The holder writes its PID and command into the file, so that a
refused process can say who holds the directory. The descriptor is close-on-exec, so no daemon or
container minipve starts inherits the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "minipve.lock"


class StateDirInUse(Exception):
    def __init__(self, state_dir: Path, pid: int | None, command: str) -> None:
        self.state_dir, self.pid, self.command = state_dir, pid, command
        who = f"PID {pid}" if pid is not None else "PID unknown"
        super().__init__(f"state dir {state_dir} is in use by minipve {command} ({who})")


def hold(state_dir: Path, command: str) -> int:
    """Take the state dir's lock for this process and return its descriptor (keep it open).

    Raises StateDirInUse, naming the holder, when another process has it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, holder_command = _holder(fd)
        os.close(fd)
        raise StateDirInUse(state_dir, pid, holder_command) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
    return fd


def _holder(fd: int) -> tuple[int | None, str]:
    """PID and command from the lock file; the holder writes them just after it locked."""
    for _ in range(20):
        pid, _, command = os.pread(fd, 200, 0).decode(errors="replace").strip().partition(" ")
        if pid.isdigit():
            return int(pid), command or "?"
        time.sleep(0.05)
    return None, "?"
