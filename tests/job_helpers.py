"""`ctforge serve` as a real process for the job tests: started, killed with SIGKILL, started again,
and an HTTP client that follows a job through its server-sent events until it ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from ctforge.devdb import free_port
from ctforge.sse import sse_events

REPO = Path(__file__).resolve().parents[1]
CTFORGE = REPO / ".venv" / "bin" / "ctforge"
API = "/api/v1"
HEALTH_TIMEOUT = 60.0
JOB_TIMEOUT = 900.0
# the job service's templates and smoke clones (test_playbooks: 7150-7299; the job tests' own
# services: 7400-7499)
JOB_TEMPLATE_VMIDS = "7300-7399"


def service_env(state_dir: Path, pve_env: dict[str, str], **settings: str) -> dict[str, str]:
    """The test's environment without the caller's CTFORGE_*/PROXMOX_*, plus minipve's and `settings`
    (CTFORGE_<NAME>, e.g. template_vmids="7300-7399")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTFORGE_", "PROXMOX_"))}
    env.update(pve_env)
    env["CTFORGE_STATE_DIR"] = str(state_dir)
    env.update({f"CTFORGE_{name.upper()}": value for name, value in settings.items()})
    return env


def ctforge(env: dict[str, str], *args: str) -> str:
    run = subprocess.run([str(CTFORGE), *args], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, f"ctforge {' '.join(args)}: {run.stdout}{run.stderr}"
    return run.stdout


class ServiceProcess:
    """One `ctforge serve` on a free loopback port; `kill()` is SIGKILL, `start()` starts it again."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(CTFORGE), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + HEALTH_TIMEOUT
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"ctforge serve exited:\n{self.log()[-3000:]}"
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}{API}/health").status_code == 200:
                        return self
                time.sleep(0.05)  # between tries; the deadline bounds the wait
        raise AssertionError(f"ctforge serve not healthy in {HEALTH_TIMEOUT:.0f} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: nothing of the service runs after it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class Client:
    """The API as one user sees it."""

    def __init__(self, service: ServiceProcess, token: str) -> None:
        self.service = service
        self.http = httpx.Client(base_url=f"{service.url}{API}", timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        reply = self.post("/templates", json={"name": name, **fields})
        assert reply.status_code == 201, reply.text
        return reply.json()

    def act(self, template_id: str, action: str) -> dict[str, Any]:
        reply = self.post(f"/templates/{template_id}/{action}")
        assert reply.status_code == 202, reply.text
        return reply.json()

    def template(self, template_id: str) -> dict[str, Any]:
        return self.get(f"/templates/{template_id}").json()

    def make_workspace(self, name: str, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """POST /workspaces: (the workspace record, its create job)."""
        reply = self.post("/workspaces", json={"name": name, **body})
        assert reply.status_code == 202, reply.text
        return reply.json()["workspace"], reply.json()["job"]

    def workspace(self, workspace_id: str) -> dict[str, Any]:
        return self.get(f"/workspaces/{workspace_id}").json()

    def wait_for_workspace(self, workspace_id: str, until: Callable[[dict[str, Any]], Any],
                           timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        """The workspace record once `until(record)` holds: read every 0.1 s (a record has no stream),
        bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.workspace(workspace_id)
            if until(record):
                return record
            time.sleep(0.1)
        raise AssertionError(f"workspace {workspace_id} never got there: {self.workspace(workspace_id)}")

    def act_on_workspace(self, workspace_id: str, action: str) -> dict[str, Any]:
        reply = self.post(f"/workspaces/{workspace_id}/{action}")
        assert reply.status_code == 202, reply.text
        return reply.json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self.get(f"/jobs/{job_id}").json()

    def stream(self, job_id: str, *, after: int = 0, until: Callable[[dict[str, Any]], bool] | None = None,
               timeout: float = JOB_TIMEOUT) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, data) of the job's SSE stream, from `after`, until its `end` (or `until`)."""
        with self.http.stream("GET", f"/jobs/{job_id}/stream", params={"after": after},
                              timeout=httpx.Timeout(timeout, read=timeout)) as reply:
            assert reply.status_code == 200, reply.read()
            for kind, item in sse_events(reply.iter_lines()):
                yield kind, item
                if kind == "end" or (until is not None and until(item)):
                    return

    def wait(self, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        """The job once it has ended, waited for on its event stream (no polling)."""
        for _kind, _data in self.stream(job_id, timeout=timeout):
            pass
        return self.job(job_id)

    def wait_for_task(self, job_id: str, phrase: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
        """The first event of the job whose task name contains `phrase` (a task start)."""
        for kind, data in self.stream(job_id, timeout=timeout):
            if kind == "playbook_on_task_start" and phrase.lower() in str(data.get("task") or "").lower():
                return data
        raise AssertionError(f"job {job_id} ended without a task like {phrase!r}: {self.job(job_id)}")


class StatusWatch:
    """Records every status a template shows, read in a thread until stopped (the test's witness
    that the statuses move as described; a move between two reads can be missed, never invented)."""

    def __init__(self, client: Client, template_id: str) -> None:
        self.client, self.template_id = client, template_id
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._read(self.client.http)  # the status the job ended with, after the watcher's last read

    def _run(self) -> None:
        with httpx.Client(base_url=self.client.http.base_url, headers=self.client.http.headers) as http:
            while not self._stop.wait(0.1):
                self._read(http)

    def _read(self, http: httpx.Client) -> None:
        with contextlib.suppress(httpx.HTTPError):
            status = http.get(f"/templates/{self.template_id}").json()["status"]
            if not self.seen or self.seen[-1] != status:
                self.seen.append(status)


def files_containing(root: Path, secret: str) -> list[str]:
    """Every file under root whose bytes hold `secret` (the database file included)."""
    needle = secret.encode()
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            with contextlib.suppress(OSError):
                if needle in path.read_bytes():
                    hits.append(str(path))
    return hits


def adopt_record(db: Any, record: dict[str, Any], owner: str) -> None:
    """Put a ready record of an existing template CT (built through another service) into `db`,
    owned by `owner`: the parent that a test's own service builds children on."""
    import uuid as uuid_

    from sqlalchemy import select

    from ctforge.db.models import Template, User, VmidClaim, utcnow

    template_id = uuid_.UUID(record["id"])
    with db.writing() as session:
        user = session.scalars(select(User).where(User.name == owner)).one()
        session.add(Template(id=template_id, owner_id=user.id, name=record["name"],
                             base_ct_template=record["base_ct_template"], vmid=record["vmid"],
                             node=record["node"], status="ready", tech_stacks=record["tech_stacks"],
                             inherited_tech_stacks=record["inherited_tech_stacks"],
                             built_stacks=record["built_stacks"], ready_at=utcnow()))
        session.flush()
        session.add(VmidClaim(vmid=record["vmid"], kind="template", template_id=template_id))


def share_build_key(from_state: Path, to_state: Path) -> None:
    """The build key of another service's state dir: its templates trust that key only (as two
    replicas of one deployment share theirs)."""
    import shutil

    to_state.mkdir(parents=True, exist_ok=True)
    for path in from_state.glob("build_key*"):
        shutil.copy2(path, to_state / path.name)


@contextlib.contextmanager
def own_service(tmp_path: Path, pve: Any, parent: dict[str, Any], key_from: Path,
                **settings: str) -> Iterator[Client]:
    """A `ctforge serve` of a test's own (SQLite in tmp_path, `settings` as CTFORGE_*), with alice
    (admin), the build key of `key_from` (a state dir) and a ready record of `parent`'s CT to build
    children on; stopped at the end."""
    from ctforge.db import Database

    state = tmp_path / "state"
    share_build_key(key_from, state)
    env = service_env(state, pve.env, **settings)
    ctforge(env, "db", "upgrade")
    ctforge(env, "users", "add", "alice", "--admin")
    token = ctforge(env, "tokens", "create", "alice").strip()
    db = Database(f"sqlite:///{state / 'ctforge.db'}")
    adopt_record(db, parent, "alice")
    db.dispose()
    service = ServiceProcess(env, tmp_path / "serve.log").start()
    try:
        yield Client(service, token)
    finally:
        service.stop()
