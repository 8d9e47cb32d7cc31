"""`ctforge templates|workspaces|jobs|login` over the HTTP API, run as the installed command against a
real `ctforge serve`: most tests against a service of their own without Proxmox (records and
errors), and the tree and a job's live log against the session's job service and its canonical
chain (built once per session, reused here: nothing new is built)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ctforge import client as client_module
from ctforge import messages
from ctforge.devdb import free_port
from job_helpers import CTFORGE, REPO, ServiceProcess, ctforge, service_env

ARTIFACTS = REPO / "artifacts" / "cli"  # the captured outputs the issue asks to see, kept after the run


def keep(name: str, text: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(text)
    print(text)


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CTFORGE), *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def cli_env(base: dict[str, str], config_home: Path, url: str | None, token: str | None) -> dict[str, str]:
    """The caller's environment without CTFORGE_*, with its own config dir (no user's config.toml)."""
    env = {k: v for k, v in base.items() if not k.startswith(("CTFORGE_", "PROXMOX_"))}
    env["XDG_CONFIG_HOME"] = str(config_home)
    env.pop("COLUMNS", None)
    if url is not None:
        env["CTFORGE_URL"] = url
    if token is not None:
        env["CTFORGE_TOKEN"] = token
    return env


def one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == messages.CLI_ERROR.format(message=message) + "\n"
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def records_service(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """`ctforge serve` on SQLite without Proxmox (the claims alone give VMIDs), alice admin, bob."""
    state = tmp_path_factory.mktemp("cli-remote")
    env = service_env(state, {}, template_vmids="600-699", workspace_vmids="300-399")
    ctforge(env, "db", "upgrade")
    ctforge(env, "users", "add", "alice", "--admin")
    ctforge(env, "users", "add", "bob")
    tokens = {name: ctforge(env, "tokens", "create", name).strip() for name in ("alice", "bob")}
    service = ServiceProcess(env, state / "serve.log").start()
    try:
        yield SimpleNamespace(url=service.url, tokens=tokens, state=state)
    finally:
        service.stop()


@pytest.fixture
def cli(records_service, tmp_path):
    """cli(*args, who="alice") runs ctforge as that user (who=None: no token)."""

    def call(*args: str, who: str | None = "alice", url: str | None = None, **env: str):
        token = records_service.tokens[who] if who else None
        base = cli_env(os.environ, tmp_path / "config", url or records_service.url, token)
        return run({**base, **env}, *args)

    return call


def test_create_show_and_tree_as_text_and_json(cli) -> None:
    made = cli("templates", "create", "cli-base", "--appliance", "debian-12-standard", "--json")
    assert made.returncode == 0, made.stderr
    base = json.loads(made.stdout)
    assert base["name"] == "cli-base" and base["status"] == "pending" and base["vmid"] is not None

    shown = cli("templates", "show", "cli-base", "--json")
    assert json.loads(shown.stdout)["id"] == base["id"]
    by_id = cli("templates", "show", base["id"], "--json")
    assert json.loads(by_id.stdout)["id"] == base["id"]
    text = cli("templates", "show", "cli-base")
    assert text.returncode == 0
    assert "pending" in text.stdout and str(base["vmid"]) in text.stdout
    assert "debian-12-standard" in text.stdout

    tree = cli("templates", "--json")
    assert tree.returncode == 0
    names = [node["name"] for node in json.loads(tree.stdout)["data"]]
    assert "cli-base" in names
    printed = cli("templates")
    assert printed.returncode == 0
    line = next(line for line in printed.stdout.splitlines() if "cli-base" in line)
    assert f"cli-base · pending · VMID {base['vmid']} · no stacks" in line


def test_a_child_of_a_parent_that_is_not_ready_is_refused_with_the_services_message(cli) -> None:
    assert cli("templates", "create", "cli-pending", "--appliance", "debian-12-standard").returncode == 0
    proc = cli("templates", "create", "cli-child", "--parent", "cli-pending", "--stacks", "redis")
    one_line_error(proc, messages.PARENT_NOT_READY.format(name="cli-pending", status="pending"))
    assert "cli-child" not in cli("templates").stdout


def test_unknown_names_and_a_base_without_an_appliance(cli) -> None:
    unknown = client_module.TEMPLATE_UNKNOWN.format(name="no-such")
    one_line_error(cli("templates", "show", "no-such"), unknown)
    one_line_error(cli("templates", "build", "no-such"), unknown)
    one_line_error(cli("templates", "create", "x", "--parent", "no-such"), unknown)
    from ctforge.cli.remote import BASE_NEEDS_APPLIANCE

    one_line_error(cli("templates", "create", "no-appliance"), BASE_NEEDS_APPLIANCE)
    one_line_error(cli("workspaces", "show", "nope"), client_module.WORKSPACE_UNKNOWN.format(name="nope"))


def test_the_service_down_says_how_to_start_it(cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("templates",), ("templates", "show", "x"), ("jobs",), ("workspaces", "list")):
        proc = cli(*args, url=url)
        assert proc.returncode == 2
        line = proc.stderr.strip()
        assert "\n" not in line and "Traceback" not in line
        assert line.startswith(f"error: the ctforge service is not running at {url} (")
        assert "`ctforge serve`" in line and "`bash scripts/demo.sh`" in line


def test_no_token_and_a_refused_token_say_how_to_get_one(cli, records_service) -> None:
    url = records_service.url
    one_line_error(cli("templates", "create", "t", "--appliance", "debian-12-standard", who=None),
                   client_module.TOKEN_NEEDED.format(url=url))
    one_line_error(cli("workspaces", "list", who=None), client_module.TOKEN_NEEDED.format(url=url))
    bad = "ctf_not-a-token-of-this-service"
    proc = cli("templates", "create", "t", "--appliance", "debian-12-standard", who=None, CTFORGE_TOKEN=bad)
    one_line_error(proc, client_module.TOKEN_REFUSED.format(url=url))
    assert bad not in proc.stdout + proc.stderr
    # a read needs no token: the defaults show
    assert cli("templates", who=None).returncode == 0


def test_flags_outrank_the_environment(cli, records_service) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proc = cli("templates", "--json", "--url", records_service.url, url=dead)
    assert proc.returncode == 0, proc.stderr
    proc = cli("templates", "show", "cli-base", "--url", dead)
    assert proc.returncode == 2 and dead in proc.stderr


def test_a_groups_options_before_its_command_are_refused_not_dropped(cli, records_service) -> None:
    from ctforge.cli.remote import OPTIONS_AFTER_COMMAND

    one_line_error(cli("templates", "--url", records_service.url, "--json", "show", "no-such"),
                   OPTIONS_AFTER_COMMAND.format(options="--url --json", group="templates", command="show"))
    one_line_error(cli("jobs", "--limit", "3", "list"),
                   OPTIONS_AFTER_COMMAND.format(options="--limit", group="jobs", command="list"))


def test_a_workspace_needs_a_key_and_a_ready_template(cli, tmp_path) -> None:
    from ctforge.cli.workspaces import KEY_FILES, NO_KEY

    one_line_error(cli("workspaces", "create", "dev", HOME=str(tmp_path)),
                   NO_KEY.format(files="{" + ",".join(KEY_FILES) + "}"))
    key = tmp_path / "key.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDWvuzDBlMQHJjgFI07QgrtUHc40Gpfz/EqOs23UGVr9 me@a\n")
    proc = cli("workspaces", "create", "dev", "--stacks", "redis", "--key", str(key), who="bob")
    one_line_error(proc, messages.WORKSPACE_NO_TEMPLATE)  # the API's refusal, passed through as it is


def test_login_checks_the_token_and_keeps_it_in_a_0600_file(records_service, tmp_path) -> None:
    env = cli_env(os.environ, tmp_path / "config", None, None)
    config = tmp_path / "config" / "ctforge" / "config.toml"
    refused = run(env, "login", "--url", records_service.url, "--token", "ctf_wrong")
    one_line_error(refused, client_module.TOKEN_REFUSED.format(url=records_service.url))
    assert not config.exists()

    token = records_service.tokens["bob"]
    done = run(env, "login", "--url", records_service.url, "--token", token)
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert client_module.read_config(config) == {"url": records_service.url, "token": token}
    # later commands take url and token from the file: bob may create a template of his own
    made = run(env, "templates", "create", "bobs-base", "--appliance", "debian-12-standard", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["owner"] == "bob"


def test_a_job_that_fails_is_followed_to_its_end_and_exits_2(cli) -> None:
    """Without Proxmox a build fails at its first step: the follow shows the steps and tasks as plain
    lines (not a terminal), then the end, and the command's error line carries the job's cause."""
    assert cli("templates", "create", "cli-fails", "--appliance", "debian-12-standard").returncode == 0
    proc = cli("templates", "build", "cli-fails")
    assert proc.returncode == 2
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("following job ") and lines[0].endswith("build template cli-fails")
    assert any(" provision: " in line for line in lines[1:-1])
    assert lines[-1].startswith("job ") and " build template cli-fails failed" in lines[-1]
    job_id = lines[0].split()[2].rstrip(":")
    job = json.loads(cli("jobs", "show", job_id, "--json").stdout)
    assert job["status"] == "failed"
    error = proc.stderr.strip()
    step = job["failed_step"]
    assert error.startswith(f"error: job {job_id} (build template cli-fails) failed at step {step}")
    assert "\n" not in error

    listed = json.loads(cli("jobs", "--json").stdout)
    assert job_id in [j["id"] for j in listed["data"]]
    assert job_id in cli("jobs").stdout
    followed = cli("jobs", "follow", job_id)
    assert followed.returncode == 2
    assert "PLAY RECAP" in followed.stdout  # Ansible's own output, replayed from the start


def test_no_follow_prints_the_queued_job(cli) -> None:
    assert cli("templates", "create", "cli-queued", "--appliance", "debian-12-standard").returncode == 0
    proc = cli("templates", "build", "cli-queued", "--no-follow", "--json")
    assert proc.returncode == 0, proc.stderr
    job: dict[str, Any] = json.loads(proc.stdout)
    assert job["kind"] == "build" and job["template_name"] == "cli-queued"
    assert job["status"] in ("queued", "running", "failed")


# --- the MUST-SHOW: the tree and a follow of the canonical chain, captured ------------------------

@pytest.mark.host
@pytest.mark.slow
def test_tree_and_follow_of_the_canonical_chain(job_service, canonical_chain, tmp_path) -> None:
    token = job_service.alice.http.headers["Authorization"].removeprefix("Bearer ")
    env = cli_env(os.environ, tmp_path / "config", job_service.service.url, token)
    records = canonical_chain["templates"]

    tree = run(env, "templates")
    assert tree.returncode == 0, tree.stderr
    keep("tree.txt", tree.stdout)
    lines = tree.stdout.splitlines()
    want = {
        "base": f"base · ready · VMID {records['base']['vmid']} · no stacks · default",
        "nodejs": f"nodejs · ready · VMID {records['nodejs']['vmid']} · nodejs, claude_cli · default",
        "fullstack": (f"fullstack · ready · VMID {records['fullstack']['vmid']} · "
                      "nodejs, claude_cli, postgresql, redis"),
    }
    at = {name: next(i for i, line in enumerate(lines) if line.lstrip("│ └├─").startswith(text))
          for name, text in want.items()}
    assert at["base"] < at["nodejs"] < at["fullstack"]
    indent = {name: len(lines[i]) - len(lines[i].lstrip("│ └├─")) for name, i in at.items()}
    assert indent["base"] < indent["nodejs"] < indent["fullstack"]  # each under its parent

    refused = run(env, "templates", "rebuild", "base")  # nodejs is a linked clone of base's CT
    one_line_error(refused, messages.REBUILD_HAS_CHILDREN.format(name="base", children="nodejs"))

    job = canonical_chain["jobs"]["fullstack"][0]
    followed = run(env, "jobs", "follow", job["id"])
    assert followed.returncode == 0, followed.stderr
    keep("follow.txt", followed.stdout)
    log = followed.stdout
    assert log.startswith(f"following job {job['id']}: build template fullstack")
    assert log.index("PLAY [") < log.index("PLAY RECAP")
    assert log.rstrip().splitlines()[-1].startswith(f"job {job['id']}: build template fullstack successful")
    quiet = run(env, "jobs", "follow", job["id"], "--quiet")
    keep("follow-quiet.txt", quiet.stdout)
    steps = [line.split()[1] for line in quiet.stdout.splitlines()[1:-1]]
    assert steps and set(steps) <= {"provision:", "finalize:"} and "finalize:" in steps


# --- apply against the service: --plan and refusals change nothing --------------------------------

def test_apply_plan_prints_the_steps_and_changes_nothing(cli) -> None:
    before = json.loads(cli("templates", "--json").stdout)["count"]
    proc = cli("apply", str(REPO / "examples" / "family.yml"), "--plan")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"plan for {REPO / 'examples' / 'family.yml'}: 6 steps",
        "  1. create template base: from debian-12-standard, no stacks", "  2. build template base: new",
        "  3. create template nodejs: under base, nodejs, claude_cli", "  4. build template nodejs: new",
        "  5. create template fullstack: under nodejs, postgresql, redis",
        "  6. build template fullstack: new"]
    as_json = json.loads(cli("apply", str(REPO / "examples" / "family.yml"), "--plan", "--json").stdout)
    assert [(s["kind"], s["name"]) for s in as_json][:2] == [("create", "base"), ("build", "base")]
    assert as_json[2]["parent"] == "base" and as_json[2]["body"]["tech_stacks"] == ["nodejs", "claude_cli"]
    assert json.loads(cli("templates", "--json").stdout)["count"] == before


def test_apply_refuses_a_file_it_cannot_carry_out_in_one_line(cli, tmp_path) -> None:
    from ctforge import apply

    before = json.loads(cli("templates", "--json").stdout)["count"]
    path = tmp_path / "family.yml"
    path.write_text("templates:\n  - {name: a, appliance: debian-12-standard, stacks: [cobol]}\n")
    proc = cli("apply", str(path))
    assert proc.returncode == 2 and proc.stderr.startswith("error: template 'a': unknown stack 'cobol'; ")
    assert "\n" not in proc.stderr.strip()
    path.write_text("templates:\n  - {name: b, parent: cli-pending, stacks: []}\n")
    one_line_error(cli("apply", str(path)), apply.EXTERNAL_PARENT_NOT_READY.format(
        name="b", parent="cli-pending", status="pending"))
    assert json.loads(cli("templates", "--json").stdout)["count"] == before
