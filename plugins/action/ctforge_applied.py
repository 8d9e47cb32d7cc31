"""Action plugin ctforge_applied: has this stack role already been applied, with these settings and this code?

A stack role records a fingerprint in its local fact (/etc/ansible/facts.d/ctforge_<stack>.fact) when it
finishes. The fingerprint hashes the values of the role's `main` options (from meta/argument_specs.yml)
together with the role's own tasks, vars, templates and files. When the fact on the host carries the same
fingerprint, the role has nothing to do, and skips its install, which is what makes a no-op re-run cheap.

Options marked no_log (at any depth) stay out of the fingerprint, since the fact is world-readable; while
any of them is set the role always runs in full. `ctforge_reapply: true` forces a full pass too.

Runs on the controller only; reads ansible_local from the gathered facts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: ctforge_applied
short_description: Tell whether a ctforge stack role already ran with the same settings and code
description:
  - Computes the role's fingerprint from its main options and its files, and compares it with the one
    recorded in the local fact ctforge_<stack>.
options:
  stack:
    description: The stack id; the fact read is ansible_local.ctforge_<stack>.
    type: str
    required: true
"""

CODE_DIRS = ("tasks", "vars", "templates", "files")
NOT_HASHED = {"ctforge_reapply"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("stack",))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        stack = self._task.args.get("stack")
        if not stack:
            raise AnsibleActionFail("ctforge_applied needs `stack`, the stack id whose fact to read")
        role_path = Path(task_vars.get("role_path") or "")
        specs_file = role_path / "meta" / "argument_specs.yml"
        if not specs_file.is_file():
            raise AnsibleActionFail(f"ctforge_applied runs inside a role with meta/argument_specs.yml; "
                                    f"{specs_file} is missing")
        options = yaml.safe_load(specs_file.read_text())["argument_specs"]["main"].get("options") or {}

        settings, secrets = {}, []
        for name in sorted(set(options) - NOT_HASHED):
            settings[name] = scrub(options[name], self._templar.template(task_vars.get(name)), secrets)
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
        for sub in CODE_DIRS:
            for path in sorted((role_path / sub).rglob("*")):
                if path.is_file():
                    digest.update(str(path.relative_to(role_path)).encode() + b"\0" + path.read_bytes())
        fingerprint = digest.hexdigest()

        recorded = (task_vars.get("ansible_local") or {}).get(f"ctforge_{stack}") or {}
        reapply = boolean(self._templar.template(task_vars.get("ctforge_reapply", False)), strict=False)
        result.update(
            changed=False,
            fingerprint=fingerprint,
            # A secret is not in the fingerprint, so a changed one would go unnoticed: run in full.
            applied=not reapply and not any(secrets) and recorded.get("fingerprint") == fingerprint,
        )
        return result


def scrub(spec: dict, value, secrets: list):
    """The value without its no_log parts (at any depth); those parts are appended to `secrets`."""
    if spec.get("no_log"):
        secrets.append(value)
        return None
    suboptions = spec.get("options")
    if not suboptions:
        return value
    if isinstance(value, dict):
        return {key: scrub(suboptions.get(key, {}), item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(spec, item, secrets) if isinstance(item, dict) else item for item in value]
    return value
