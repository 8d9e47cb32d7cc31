"""Callback ctforge_workers: the workers ansible-playbook forks die when it dies.

Ansible starts every task's worker in a session of its own (WorkerProcess._detach calls setsid), so
a kill of ansible-playbook's process group misses them. ctforge kills that group when a run must end
(ctforge.jobs.shim when the service dies, ansible-runner on cancel and timeout), and a worker that
outlives it finishes its task, a clone or a start, for a run nobody follows any more. This plugin
asks the kernel, in each process forked from ansible-playbook (and from those), for SIGKILL when its
parent dies (PR_SET_PDEATHSIG). It prints nothing; enabled in ansible.cfg (callbacks_enabled).
"""

from __future__ import annotations

import ctypes
import os
import signal

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: ctforge_workers
type: aggregate
short_description: a forked worker is killed when ansible-playbook dies
description:
  - Sets PR_SET_PDEATHSIG (SIGKILL) in every process forked from ansible-playbook's own process and
    from its workers, so that killing ansible-playbook (even with SIGKILL) ends the tasks it was running.
  - Linux only; elsewhere it does nothing.
requirements: [enabled in callbacks_enabled]
"""

_PR_SET_PDEATHSIG = 1
_forking_pid = 0  # set in the process about to fork, read by its child
_armed = False


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent(prctl) -> None:
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != _forking_pid:  # the parent died before prctl took hold
        os.kill(os.getpid(), signal.SIGKILL)


def arm() -> bool:
    """Register the fork hooks in this process, once; False where prctl is not to be had."""
    global _armed
    if not _armed:
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up now, not in the child
        except (OSError, AttributeError):
            return False
        os.register_at_fork(before=_before_fork, after_in_child=lambda: _die_with_parent(prctl))
        _armed = True
    return True


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ctforge_workers"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        arm()  # here, not at import: Ansible imports every callback on its path to see which are enabled
