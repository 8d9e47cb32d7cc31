"""The `ctforge` processes a service benchmark runs: the console script's commands, and `ctforge serve`
processes on free loopback ports, each waited for on /api/v1/health and stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ctforge.devdb import free_port
from ctforge.sse import sse_events

REPO = Path(__file__).resolve().parents[2]
CTFORGE = REPO / ".venv" / "bin" / "ctforge"
API = "/api/v1"
HEALTH_TIMEOUT = 60.0
JOB_TIMEOUT = 1800.0


def service_env(state_dir: Path, database_url: str | None, vmids: str,
                pve_env: dict[str, str]) -> dict[str, str]:
    """The caller's environment without its own CTFORGE_*/PROXMOX_* settings, plus the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTFORGE_", "PROXMOX_"))}
    env.update(pve_env)
    env["CTFORGE_STATE_DIR"] = str(state_dir)
    env["CTFORGE_TEMPLATE_VMIDS"] = vmids
    if database_url:
        env["CTFORGE_DATABASE_URL"] = database_url
    return env


def ctforge(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([str(CTFORGE), *args], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    if run.returncode != 0:
        raise SystemExit(f"ctforge {' '.join(args)} failed ({run.returncode}):\n{run.stdout}{run.stderr}")
    return run.stdout


class Services:
    """`ctforge serve` processes, each on a free loopback port; stopped by PID on exit."""

    def __init__(self, env: dict[str, str], count: int, log_dir: Path) -> None:
        self.env, self.count, self.log_dir = env, count, log_dir
        self.procs: list[tuple[int, subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> Services:
        try:
            for _ in range(self.count):
                port = free_port()
                log_path = self.log_dir / f"serve-{port}.log"
                with log_path.open("wb") as log:
                    proc = subprocess.Popen(
                        [str(CTFORGE), "serve", "--host", "127.0.0.1", "--port", str(port)],
                        env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, start_new_session=True,  # Ctrl-C reaches us, not them
                    )
                self.procs.append((port, proc, log_path))
            for port, proc, log_path in self.procs:
                self._wait_healthy(port, proc, log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def ports(self) -> list[int]:
        return [port for port, _, _ in self.procs]

    @property
    def logs(self) -> list[Path]:
        return [log_path for _, _, log_path in self.procs]

    @staticmethod
    def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise SystemExit(f"ctforge serve on port {port} exited with {proc.returncode}:\n"
                                     f"{tail(log_path)}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{port}{API}/health").status_code == 200:
                        return
                time.sleep(0.05)  # the interval between tries; the deadline bounds the wait
        raise SystemExit(f"ctforge serve on port {port} not healthy within {HEALTH_TIMEOUT:.0f}s:\n"
                         f"{tail(log_path)}")

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Api:
    """An API client with one user's token: calls that must answer `expect`, and job streams."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=f"{url}{API}", timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        reply = self.http.request(method, path, **kw)
        if reply.status_code != expect:
            raise SystemExit(f"{method} {path}: {reply.status_code} {reply.text[:2000]}")
        return reply.json() if reply.content else None

    def stream(self, job_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Every (event type, data) of the job's SSE stream, until its `end`."""
        items: list[tuple[str, dict[str, Any]]] = []
        with self.http.stream("GET", f"/jobs/{job_id}/stream",
                              timeout=httpx.Timeout(JOB_TIMEOUT, read=JOB_TIMEOUT)) as reply:
            if reply.status_code != 200:
                raise SystemExit(f"stream of job {job_id}: {reply.status_code} {reply.read()[:500]!r}")
            for kind, data in sse_events(reply.iter_lines()):
                items.append((kind, data))
                if kind == "end":
                    return items
        raise SystemExit(f"the stream of job {job_id} ended without its `end` event")

    def run_action(self, template_id: str, action: str) -> tuple[float, float, dict[str, Any],
                                                                    list[tuple[str, dict[str, Any]]]]:
        """POST the action and follow its stream: (POST time, end time, the job, the stream)."""
        posted = time.time()
        job = self.call("POST", f"/templates/{template_id}/{action}", 202)
        items = self.stream(job["id"])
        ended = time.time()
        job = self.call("GET", f"/jobs/{job['id']}", 200)
        if job["status"] != "successful":
            raise SystemExit(f"{action} of {template_id}: job {job['id']} {job['status']}: {job['error']}")
        return posted, ended, job, items


@contextlib.contextmanager
def bench_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A state dir of the bench's own (readable by the CTs' services), removed at the end unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(work, 0o755)
    try:
        yield work
    finally:
        if keep:
            print(f"state dir kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def save_figures(path: Path | None, figures: Any) -> None:
    if path:
        path.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures saved to {path}")
