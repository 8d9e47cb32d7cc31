"""The bridge to ansible-runner: the one module of ctforge that imports ansible_runner.

    outcome = run_playbook(job_dir, "provision.yml", request, inventories=[...], env={...},
                           secrets={"PROXMOX_TOKEN_SECRET": ...}, on_event=..., should_cancel=...)

Each run is one ansible-runner ident under the job's private_data_dir: artifacts/<ident>/ holds its
stdout, its events and the `command` file. The extra vars are the typed request, written by
ctforge.requests.write_extravars as `!unsafe` YAML (so no user string is ever rendered as Jinja).

Secrets never touch the disk. ansible-runner writes the whole environment of the run into
artifacts/<ident>/command, so a secret cannot be an ordinary environment variable of the run. It is
taken out of the run's environment, and the run starts through `ctforge-ansible-playbook`
(ctforge.jobs.shim), which asks for each secret on its terminal (echo off) and starts
ansible-playbook with it in the environment. ansible-runner answers those prompts from memory
through its `passwords` mechanism (pexpect), and with suppress_env_files nothing of it is written.
The playbooks read PROXMOX_TOKEN_SECRET from the environment as they do for a person at a shell.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from ctforge.catalog import REPO_ROOT
from ctforge.jobs.shim import PROMPT, SECRETS_VAR
from ctforge.requests import write_extravars

PLAYBOOKS = REPO_ROOT / "playbooks"
CALLBACKS = REPO_ROOT / "plugins" / "callback"  # ctforge_preload (ansible.cfg's callbacks_enabled)
SHIM = Path(sys.executable).parent / "ctforge-ansible-playbook"
# How often ansible-runner's loop looks at the cancel callback (and the job timeout), in seconds.
CANCEL_POLL_SECONDS = 1


@dataclass
class RunOutcome:
    status: str  # successful | failed | canceled | timeout (ansible-runner's words)
    rc: int | None
    stats: dict[str, Any] | None  # what the playbook reported with set_stats, if it got that far
    artifacts: Path
    failures: list[dict[str, Any]] = field(default_factory=list)  # the failed/unreachable events


def run_playbook(private_data_dir: Path, ident: str, playbook: str, request: Any, *,
                 inventories: list[Path], env: Mapping[str, str], secrets: Mapping[str, str],
                 on_event: Callable[[dict[str, Any]], None], should_cancel: Callable[[], bool],
                 timeout: int | None) -> RunOutcome:
    """Run playbooks/<playbook> with `request` as its extra vars; returns when the run has ended."""
    write_extravars(request, private_data_dir)
    stats: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []

    def event_handler(event: dict[str, Any]) -> bool:
        kind = event.get("event")
        if kind == "playbook_on_stats":
            stats.update((event.get("event_data") or {}).get("artifact_data") or {})
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not (
                (event.get("event_data") or {}).get("ignore_errors")):
            failures.append(event)
        on_event(event)
        return True  # keep ansible-runner's own copy of the event under artifacts/<ident>/job_events

    config = ansible_runner.RunnerConfig(
        private_data_dir=str(private_data_dir),
        ident=ident,
        project_dir=str(REPO_ROOT),
        binary=str(SHIM),
        cmdline=shlex.quote(str(PLAYBOOKS / playbook)),
        inventory=[str(path) for path in inventories],
        # ansible-runner puts its own callback directory after this one: ansible.cfg's is not read then
        envvars={"ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS), **env},
        passwords={re.escape(PROMPT.format(name=name)): value for name, value in secrets.items()},
        settings={"pexpect_timeout": CANCEL_POLL_SECONDS, "suppress_ansible_output": True},
        timeout=timeout,
        quiet=True,
        suppress_env_files=True,
    )
    config.prepare()
    # The environment ansible-runner writes to artifacts/<ident>/command: without any secret, by name
    # or by value (the service's own environment may hold PROXMOX_TOKEN_SECRET too).
    values = {value for value in secrets.values() if value}
    for name in [n for n, v in config.env.items() if n in secrets or v in values]:
        del config.env[name]
    config.env[SECRETS_VAR] = ",".join(secrets)
    config.env["CTFORGE_PARENT_PID"] = str(os.getpid())
    runner = ansible_runner.Runner(config, event_handler=event_handler, cancel_callback=should_cancel)
    status, rc = runner.run()
    return RunOutcome(status=status, rc=rc, stats=stats or None,
                      artifacts=Path(config.artifact_dir), failures=failures)
