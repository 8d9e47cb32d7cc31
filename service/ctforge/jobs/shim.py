"""`ctforge-ansible-playbook`: ansible-playbook, with secrets asked for on the terminal and a life
no longer than the service that started it.

ctforge.jobs.runner starts every run through this command. CTFORGE_RUN_SECRETS names the
environment variables to ask for (`PROXMOX_TOKEN_SECRET`); each is read with getpass from the run's
terminal, which ansible-runner answers from memory, so the secret is in ansible-playbook's
environment and in no file. By hand it asks you the same way:

    CTFORGE_RUN_SECRETS=PROXMOX_TOKEN_SECRET ctforge-ansible-playbook playbooks/destroy.yml -e ctforge_vmid=9

The playbook runs as a child in this process's group. When the service dies (even by SIGKILL), the
kernel sends this process SIGTERM (PR_SET_PDEATHSIG): it then kills its whole process group, so no
playbook goes on changing containers for a job that nobody watches any more. ansible-runner's cancel
and timeout kill the same group. The workers ansible-playbook forks are in sessions of their own
(Ansible detaches them), out of the group's reach: the ctforge_workers callback has each of them
killed when ansible-playbook dies.
"""

from __future__ import annotations

import ctypes
import getpass
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

SECRETS_VAR = "CTFORGE_RUN_SECRETS"
PROMPT = "ctforge: {name} for this run: "
_PR_SET_PDEATHSIG = 1


def _end_group(signum: int, _frame: FrameType | None) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)  # the playbook, its forks, their modules, and this process


def _die_with_parent() -> None:
    expected = os.environ.pop("CTFORGE_PARENT_PID", None)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if expected and os.getppid() != int(expected):  # the parent died before prctl took hold
        sys.exit(125)


def main() -> int:
    names = [name for name in os.environ.pop(SECRETS_VAR, "").split(",") if name]
    env = dict(os.environ)
    for name in names:
        env[name] = getpass.getpass(PROMPT.format(name=name))
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _end_group)
    _die_with_parent()
    playbook = Path(sys.executable).parent / "ansible-playbook"
    child = subprocess.Popen([str(playbook), *sys.argv[1:]], env=env)
    return child.wait()


if __name__ == "__main__":
    raise SystemExit(main())
