"""Start a private minipve for tests and tools: `with MiniPVE(state_dir, port, subnet, bridge) as pve:`.

It runs `python -m minipve serve` as a subprocess with its own state dir, port, subnet and bridge,
waits until it has written client.env and /api2/json/version answers, and exposes `pve.env` (the
PROXMOX_* client settings). On exit it stops the server by its PID and runs `minipve reset` on the
state dir, so no container, bridge or nft table outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

READY_TIMEOUT = 900.0  # the first serve on a machine builds the appliance with debootstrap


class MiniPVEError(RuntimeError):
    pass


class MiniPVE:
    def __init__(
        self,
        state_dir: Path | str,
        port: int = 18006,
        subnet: str = "10.231.0.0/24",
        bridge: str = "mpvetest0",
        node: str = "minipve",
        listen: str = "127.0.0.1",
        ready_timeout: float = READY_TIMEOUT,
        reset_on_exit: bool = True,
        storages: dict[str, str] | None = None,
        appliance: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port, self.subnet, self.bridge, self.node, self.listen = port, subnet, bridge, node, listen
        self.ready_timeout = ready_timeout
        self.reset_on_exit = reset_on_exit
        self.storages = storages or {}  # extra dir storages: name -> content ("iso,vztmpl")
        self.appliance = appliance  # None: serve's default; "": place none (no download at start)
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    # -- what clients need ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{self.listen}:{self.port}/api2/json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "serve.log"  # inside the state dir: `reset` leaves nothing behind

    @property
    def password(self) -> str:
        """root@pam's password, for tests of ticket logins."""
        data = yaml.safe_load((self.state_dir / "minipve.yml").read_text())
        return data["users"]["root@pam"]["password"]

    def token_header(self) -> str:
        return (
            f"PVEAPIToken={self.env['PROXMOX_USER']}!{self.env['PROXMOX_TOKEN_ID']}="
            f"{self.env['PROXMOX_TOKEN_SECRET']}"
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, Any]:
        """A raw call (status, reason, decoded body); `path` below https://host:port, e.g. /minipve/faults."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"https://{self.listen}:{self.port}{path}", data=data, method=method)
        req.add_header("Authorization", self.token_header())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(req, context=context, timeout=30) as resp:
                return resp.status, resp.reason, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, exc.reason, json.loads(raw) if raw else None

    def faults(self, **settings: Any) -> Any:
        """Set fault switch entries (endpoints, tasks, slow, name_late, ssh_unreachable); no arguments:
        clear them. minipve.faults's docstring says what each does."""
        if settings:
            status, reason, body = self.request("PUT", "/minipve/faults", settings)
        else:
            status, reason, body = self.request("DELETE", "/minipve/faults")
        if status != 200:
            raise MiniPVEError(f"fault switch refused: {status} {reason}")
        return body["data"]

    # -- lifecycle ------------------------------------------------------------------------------
    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "minipve", *args]

    def start(self) -> MiniPVE:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_storage_cfg()
        client_env = self.state_dir / "client.env"
        # Ready once *our* serve has written client.env (a new file each time). Nothing is removed
        # here: on a state dir in use, that file belongs to the running instance, and ours refuses.
        before = _file_id(client_env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self._command(
                "serve",
                "--state-dir",
                str(self.state_dir),
                "--listen",
                self.listen,
                "--port",
                str(self.port),
                "--subnet",
                self.subnet,
                "--bridge",
                self.bridge,
                "--node",
                self.node,
                *(["--appliance", self.appliance] if self.appliance is not None else []),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise MiniPVEError(f"minipve serve exited with {self.proc.returncode}:\n{self._log_tail()}")
            if _file_id(client_env) not in (None, before):
                self.env = _read_env(client_env)
                if self.request("GET", "/api2/json/version")[0] == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise MiniPVEError(f"minipve did not answer within {self.ready_timeout:.0f}s:\n{self._log_tail()}")

    def _write_storage_cfg(self) -> None:
        """The extra storages, as dirs under the state dir (so `reset` removes them too)."""
        if not self.storages:
            return
        from minipve.host import HostConfig
        from minipve.storagecfg import LOCAL, LOCAL_CONTENT, Storage, config_path, render

        listed = [Storage(LOCAL, HostConfig(self.state_dir).storage_dir, LOCAL_CONTENT)]
        for name, content in self.storages.items():
            listed.append(Storage(name, self.state_dir / "storage" / name, frozenset(content.split(","))))
        path = config_path(self.state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(listed))

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM by PID, then SIGKILL if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL by PID, as a crash would end it (restart tests)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def reset(self) -> None:
        subprocess.run(
            self._command(
                "reset", "--state-dir", str(self.state_dir), "--subnet", self.subnet, "--bridge", self.bridge
            ),
            check=False,
            capture_output=True,
        )

    def __enter__(self) -> MiniPVE:
        try:
            return self.start()
        except BaseException:
            if self.reset_on_exit:
                self.reset()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self.reset_on_exit:
            self.reset()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env
