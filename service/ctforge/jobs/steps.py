"""Which step of a build a failure belongs to, and its cause, from the run's events.

A step is named from the failed task and the include tasks that led to it (the playbooks name
their tasks after what they do, and tests/test_jobs_faults.py keeps this table honest by failing
each step for real). The cause is the task's own message: Proxmox's error text comes through it.
"""

from __future__ import annotations

from typing import Any

# (step, phrases), matched in lower case against the failed task's name, then against the include
# tasks on the way to it from the innermost out; within one name, the first step that matches.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("smoke clone", ("smoke-test clone exists", "smoke-test clone is running", "clone's ip and ssh",
                     "reserve a vmid for the smoke-test clone", "start the smoke-test clone",
                     "report the failed smoke test")),  # the rescue of a clone that did not come up
    ("smoke test", ("smoke test", "check the clone", "keeps no key")),
    ("clone", ("as a clone of its parent", "as a clone of its template")),
    ("create", ("created from the appliance",)),
    ("configure", ("hostname, resources and network",)),
    ("start", ("staging ct is running", "restart the staging ct", "workspace ct is running")),
    ("ssh", ("ip and ssh", "ssh answers", "never answered", "wait for the restarted")),
    # a workspace's: the owner's keys for the dev user; the build key refused, or removed at the end
    ("keys", ("owner's ssh keys", "lets ctforge in with the build key", "no longer trusts the build key")),
    ("verify", ("passes its verify",)),  # a workspace's stacks (a template's are its smoke test)
    ("install", ("install", "apt proxy is not left")),
    ("prepare", ("prepare", "shed", "identity and stacks", "marked as prepared", "mark the staging ct")),
    ("stop", ("stopped cleanly", "workspace ct is shut down")),
    ("convert", ("converted to a template", "wait for the conversion", "prepared nor the staging mark",
                 "convert the ct")),
    ("validate", ("validate", "request", "credentials", "locate the ct", "ensure the ct exists",
                  "build key", "parent", "appliance", "storage", "vmid", "is a workspace, not a template")),
    ("destroy", ("destroy", "shut down", "deleted")),
)


def cause_of(event: dict[str, Any]) -> str:
    """The failed task's message; a generic one ("non-zero return code") with the command's stderr."""
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    texts = [" ".join(res[key].split()) for key in ("msg", "stderr", "module_stderr", "stdout")
             if isinstance(res.get(key), str) and res[key].strip()]
    if not texts:
        return f"task {data.get('task')!r} failed on {data.get('host')}"
    cause = texts[0]
    if len(texts) > 1 and cause.lower() in GENERIC_MESSAGES:
        cause = f"{cause}: {texts[1][-1500:]}"
    return cause[:2000]


GENERIC_MESSAGES = frozenset({"non-zero return code", "module failure", "mkdir failed"})


def step_of(playbook: str, failed_task: str, includes: list[str], cause: str) -> str:
    """The step: the failed task's own name decides first, then the includes from the innermost out."""
    for name in [failed_task.lower(), *(include.lower() for include in reversed(includes))]:
        for step, phrases in STEPS:
            if any(phrase in name for phrase in phrases):
                return _ip_or_ssh(cause) if step == "ssh" else step
    return playbook.removesuffix(".yml")


def _ip_or_ssh(cause: str) -> str:
    """One task waits for both: an address that never came (or the interfaces call that failed) is
    the IP step; an address on which SSH never answered is the SSH step."""
    lowered = cause.lower()
    if "ssh does not answer" in lowered:
        return "ssh"
    return "ip" if "ipv4" in lowered or "/interfaces" in lowered else "ssh"
