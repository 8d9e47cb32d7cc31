"""The service's commands through the real `ctforge` console script, on a SQLite file in a temp state
dir: serve refuses an un-migrated database naming the fix; db upgrade, users add and tokens create
make a first admin whose token works against a real `ctforge serve`; the token is stored only as its
digest, and neither the serve log nor the database holds its text; wrong settings name the variable."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctforge import messages
from ctforge.formats import VMID_MAX, VMID_MIN
from service_helpers import HEAD_REVISION, listening_addresses

REPO = Path(__file__).resolve().parent.parent
CTFORGE = REPO / ".venv" / "bin" / "ctforge"
READY_DEADLINE = 60.0
APPLIANCE = "debian-12-standard"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def env(state_dir: Path) -> dict[str, str]:
    """The environment less every CTFORGE_ and PROXMOX_ variable, with the test's own state dir."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CTFORGE_", "PROXMOX_"))}
    return {**clean, "CTFORGE_STATE_DIR": str(state_dir)}


def ctforge(env: dict[str, str], *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CTFORGE), *args], env={**env, **extra_env}, capture_output=True, text=True,
                          timeout=120, check=False)


def database_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'ctforge.db'}"


def test_serve_refuses_an_unmigrated_database_naming_the_fix(env, state_dir) -> None:
    refused = ctforge(env, "serve", CTFORGE_PORT=str(free_port()))
    assert refused.returncode == 2
    behind = messages.DATABASE_BEHIND.format(url=database_url(state_dir), current="empty", head=HEAD_REVISION)
    assert refused.stderr.splitlines()[-1] == messages.CLI_ERROR.format(message=behind)
    assert "`ctforge db upgrade`" in refused.stderr
    for command in (("users", "add", "alice"), ("tokens", "create", "alice")):
        assert ctforge(env, *command).returncode == 2


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("CTFORGE_TEMPLATE_VMIDS", "3x", messages.VMID_RANGE_SYNTAX.format(value="3x")),
    ("CTFORGE_WORKSPACE_VMIDS", "2-100", messages.VMID_RANGE_BOUNDS.format(value="2-100", low=VMID_MIN,
                                                                          high=VMID_MAX)),
    ("CTFORGE_TEMPLATE_VMIDS", "400-600", messages.VMID_RANGES_OVERLAP.format(templates="400-600",
                                                                             workspaces="100-499")),
    ("CTFORGE_PORT", "http", None),
    ("PROXMOX_PORT", "0", None),
])
def test_wrong_settings_stop_every_command_naming_the_variable(env, variable, value, problem) -> None:
    for command in (("serve",), ("db", "upgrade"), ("users", "add", "alice")):
        refused = ctforge(env, *command, **{variable: value})
        assert refused.returncode == 2, (command, refused.stderr)
        assert refused.stderr.startswith("error: the service's settings are wrong: ")
        assert variable in refused.stderr, refused.stderr
        if problem is not None:
            assert problem in refused.stderr
        assert "Traceback" not in refused.stderr


def call(base: str, method: str, path: str, token: str | None = None, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def served(env, state_dir, tmp_path) -> Iterator[tuple[str, Path]]:
    """`ctforge serve` on a migrated database and a free loopback port: (its base URL, its log)."""
    upgraded = ctforge(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"ok: {database_url(state_dir)} is at revision {HEAD_REVISION}"
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(CTFORGE), "serve"], env={**env, "CTFORGE_PORT": str(port)},
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + READY_DEADLINE
        while True:
            assert proc.poll() is None, f"ctforge serve exited with {proc.returncode}:\n{log.read_text()}"
            try:
                if call(base, "GET", "/health") == (200, {"status": "ok"}):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"ctforge serve did not answer:\n{log.read_text()}"
            time.sleep(0.1)  # the interval between tries; the deadline bounds the wait
        yield base, log
    finally:
        proc.terminate()  # by its PID: the process this fixture started
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_first_admins_token_works_against_serve_and_is_stored_only_hashed(env, state_dir, served) -> None:
    base, log = served
    added = ctforge(env, "users", "add", "alice", "--admin")
    assert added.returncode == 0, added.stderr
    assert "alice (admin)" in added.stdout
    assert ctforge(env, "users", "add", "alice").returncode == 2  # exists already
    made = ctforge(env, "tokens", "create", "alice")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("ctf_") and len(token) > 40 and "\n" not in token
    assert "shown once" in made.stderr and token not in made.stderr
    assert ctforge(env, "tokens", "create", "nobody").returncode == 2

    status, body = call(base, "POST", "/templates", token, {"name": "base", "base_ct_template": APPLIANCE})
    assert status == 201, body
    assert body["owner"] == "alice" and body["vmid"] == 500 and body["status"] == "pending"
    status, body = call(base, "GET", "/vmids", token)
    assert status == 200 and body["count"] == 1
    status, body = call(base, "POST", "/templates", None, {"name": "anon", "base_ct_template": APPLIANCE})
    assert (status, body) == (401, {"detail": messages.TOKEN_MISSING})
    status, body = call(base, "POST", "/templates", token[:-1] + "x", {"name": "x"})
    assert (status, body) == (401, {"detail": messages.TOKEN_INVALID})

    stored = b"".join(p.read_bytes() for p in sorted(state_dir.glob("ctforge.db*")))
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored  # the digest is there ...
    assert token.encode() not in stored  # ... and the token's text is not
    assert token[8:].encode() not in stored  # not even past the prefix shown in listings

    listed = ctforge(env, "users", "list")
    assert listed.returncode == 0 and "alice" in listed.stdout and token not in listed.stdout

    written = log.read_text()
    assert '"POST /api/v1/templates" 201' in written and '"POST /api/v1/templates" 401' in written
    assert token not in written and token[8:] not in written


def test_serve_listens_on_loopback_only(served) -> None:
    base, _log = served
    port = int(base.removeprefix("http://").split("/")[0].split(":")[1])
    assert listening_addresses(port) == {"127.0.0.1"}


def test_serve_answers_an_oversized_chunked_body_with_a_json_413(served) -> None:
    base, _log = served
    host, port = base.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    chunk = b"x" * 8192
    connection.request("POST", "/api/v1/templates", body=iter([chunk] * 16), encode_chunked=True,
                       headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    answer = connection.getresponse()
    assert answer.status == 413
    assert answer.getheader("Content-Type") == "application/json"
    assert json.loads(answer.read()) == {"detail": messages.BODY_TOO_LARGE.format(
        limit=64 * 1024, setting="CTFORGE_MAX_BODY_BYTES")}
    connection.close()


def test_db_status_and_a_bad_user_name(env, state_dir) -> None:
    behind = ctforge(env, "db", "status")
    assert behind.returncode == 2
    assert f"{database_url(state_dir)}: at no revision (empty); newest {HEAD_REVISION}" in behind.stdout
    assert ctforge(env, "db", "upgrade").returncode == 0
    current = ctforge(env, "db", "status")
    assert current.returncode == 0
    assert current.stdout.strip() == f"{database_url(state_dir)}: at {HEAD_REVISION}; newest {HEAD_REVISION}"
    for name in ("Alice", "al;ce", "al\nce", "1alice", "a" * 65):
        refused = ctforge(env, "users", "add", name)
        assert refused.returncode == 2, name
        assert f"{name!r} is not a user name" in refused.stderr
    assert "0 users" in ctforge(env, "users", "list").stdout
