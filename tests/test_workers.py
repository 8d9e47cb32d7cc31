"""The ctforge_workers callback: a task's worker, which Ansible starts in a session of its own, dies
when ansible-playbook is killed; without the callback it runs on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook_helpers import REPO

PLAY = """\
- name: A task that runs in its worker for a long while
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Wait in the worker
      ansible.builtin.pause:
        seconds: 300
"""
WAIT_SECONDS = 60  # bounds every wait below; each ends as soon as its condition holds


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session id) of a live process, None once it is gone or a zombie."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else (fields[0], int(fields[1]), int(fields[3]))


def _until(condition, what: str):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if (found := condition()) is not None:
            return found
        time.sleep(0.05)  # between looks; the deadline bounds the wait
    raise AssertionError(f"not within {WAIT_SECONDS} s: {what}")


def _worker_of(parent: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == parent \
                and stat[2] != parent:  # its own session: the worker Ansible detached
            return int(entry.name)
    return None


@pytest.mark.parametrize(("enabled", "dies"), [(None, True), ("ctforge_preload", False)])
def test_a_worker_dies_with_a_killed_ansible_playbook_only_with_the_callback(tmp_path: Path, enabled, dies):
    (tmp_path / "play.yml").write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    if enabled is not None:  # the environment outranks ansible.cfg's callbacks_enabled
        env["ANSIBLE_CALLBACKS_ENABLED"] = enabled
    playbook = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # its own group, as the shim gives it
    worker = None
    try:
        worker = _until(lambda: _worker_of(playbook.pid), "the pause task's worker starts")
        os.killpg(playbook.pid, signal.SIGKILL)  # what the shim and ansible-runner do to end a run
        playbook.wait(WAIT_SECONDS)
        if dies:
            _until(lambda: True if _stat(worker) is None else None, f"worker {worker} ends")
        else:
            assert _stat(worker) is not None, "the worker was expected to outlive ansible-playbook"
    finally:
        if playbook.poll() is None:
            os.killpg(playbook.pid, signal.SIGKILL)
            playbook.wait()
        if worker is not None and _stat(worker) is not None:
            os.kill(worker, signal.SIGKILL)  # started by this test's ansible-playbook: ours to end
