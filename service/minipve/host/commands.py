"""Running host commands and holding file locks: the one place minipve.host calls subprocess."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from minipve.host import HostError, Log


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    log: Log | None = None,
    check: bool = True,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise HostError naming the command and its last output lines.

    `input` is never logged (it carries passwords for chpasswd).
    """
    argv = [str(a) for a in args]
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise HostError(f"command not found: {argv[0]} (run `minipve doctor`)") from exc
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"command timed out after {timeout} s: {' '.join(argv[:3])}") from exc
    if log is not None:
        for line in (proc.stdout + proc.stderr).splitlines():
            if line.strip():
                log(line)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise HostError(
            f"command '{' '.join(argv[:4])}' failed: exit code {proc.returncode}\n{tail}".rstrip()
        )
    return proc


@contextlib.contextmanager
def flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created); yields False when non-blocking and taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` atomically (a symlink there is replaced, never followed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.minipve-tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def pid_alive(pid_file: Path) -> int | None:
    """The PID in `pid_file` if that process still exists, else None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "\nState:\tZ" in status:  # exited, not yet reaped: reap it if it is our child
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return pid
