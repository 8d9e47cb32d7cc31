"""The `ctforge` processes a service benchmark runs: the console script's commands, and `ctforge serve`
processes on free loopback ports, each waited for on /api/v1/health and stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from ctforge.devdb import free_port

REPO = Path(__file__).resolve().parents[2]
CTFORGE = REPO / ".venv" / "bin" / "ctforge"
API = "/api/v1"
HEALTH_TIMEOUT = 60.0


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
