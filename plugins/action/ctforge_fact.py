"""Action plugin ctforge_fact: ensure a stack's local fact records what is installed, in one or two calls.

A stack role ends by recording /etc/ansible/facts.d/ctforge_<stack>.fact (JSON: stack, version, the role's
own fields and installed_at); `ansible_local` carries it from then on, and ctforge_applied and the roles'
verify read it. Done with modules that was four runs (read the version, the directory, slurp, copy), each a
Python start on the CT. Here the version and the recorded fact come back from one plain shell call, the
comparison runs in the controller's worker, and a second call writes the file only when it differs, so an
unchanged fact costs one call and reports ok. installed_at is left out of the comparison.

Check mode reads and compares, and writes nothing.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: ctforge_fact
short_description: Ensure /etc/ansible/facts.d/ctforge_<stack>.fact records the installed stack
description:
  - Reads the installed version (from O(version_command), or takes O(version)) and the recorded fact in one
    shell call, and rewrites the fact (mode 0644) only when a recorded field differs.
options:
  stack:
    description: The stack id; the file is ctforge_<stack>.fact.
    type: str
    required: true
  version:
    description: The version, when the controller knows it already.
    type: str
  version_command:
    description: Shell command whose output holds the version (run as the connection user, with become).
    type: str
  version_pattern:
    description: Regex applied to that output; the first group (or the whole match) is the version.
    type: str
    default: "[0-9][0-9.]*"
  fields:
    description: Further fields to record; compared with the recorded ones too.
    type: dict
    default: {}
  facts_dir:
    description: The local facts directory.
    type: str
    default: /etc/ansible/facts.d
"""

RETURN = r"""
version: {description: The version recorded., type: str}
fact: {description: The fact as recorded after the task., type: dict}
"""

SEPARATOR = "--- ctforge recorded fact ---"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("stack", "version", "version_command", "version_pattern", "fields", "facts_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        stack = args.get("stack")
        if not stack or not re.fullmatch(r"[a-z0-9_]+", str(stack)):
            raise AnsibleActionFail(f"ctforge_fact needs `stack`, a stack id such as redis; got {stack!r}")
        if bool(args.get("version")) == bool(args.get("version_command")):
            raise AnsibleActionFail("ctforge_fact needs exactly one of `version` and `version_command`")
        facts_dir = args.get("facts_dir") or "/etc/ansible/facts.d"
        path = f"{facts_dir.rstrip('/')}/ctforge_{stack}.fact"

        read = f"cat {shlex.quote(path)} 2>/dev/null || true"
        if args.get("version_command"):
            read = f"{{ {args['version_command']}\n}} || exit $?\necho {shlex.quote(SEPARATOR)}\n{read}"
        out = self._shell(read)
        if out["rc"] != 0:
            return {**result, "failed": True, **out,
                    "msg": f"the version command failed (rc {out['rc']}): {args['version_command']}: "
                           f"{out['stderr'].strip()}"}
        version_text, _, recorded_text = out["stdout"].rpartition(SEPARATOR) if args.get("version_command") \
            else ("", "", out["stdout"])

        version = args.get("version")
        if not version:
            match = re.search(args.get("version_pattern") or "[0-9][0-9.]*", version_text)
            if not match:
                return {**result, "failed": True, "stdout": version_text, "msg":
                        f"no version in the output of {args['version_command']!r}: {version_text.strip()!r}"}
            version = match.group(1) if match.groups() else match.group(0)

        try:
            recorded = json.loads(recorded_text) if recorded_text.strip() else {}
        except ValueError:
            recorded = {}  # unreadable: rewritten below
        wanted = {"stack": stack, "version": str(version), **(args.get("fields") or {})}
        same = isinstance(recorded, dict) and all(recorded.get(k) == v for k, v in _plain(wanted).items())
        result.update(changed=not same, version=str(version), fact=recorded)
        if same:
            return result

        fact = {**wanted, "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        # The layout of Ansible's to_nice_json, which wrote these files before.
        text = json.dumps(fact, indent=4, sort_keys=True, separators=(",", ": "), ensure_ascii=False) + "\n"
        result["fact"] = fact
        if self._task.check_mode:
            return result
        payload = base64.b64encode(text.encode()).decode()
        quoted = shlex.quote(path)
        write = (f"set -e; umask 022; mkdir -p {shlex.quote(facts_dir)}\n"
                 f"echo {payload} | base64 -d > {quoted}.new\n"
                 f"chmod 0644 {quoted}.new; mv -f {quoted}.new {quoted}")
        out = self._shell(write)
        if out["rc"] != 0:
            return {**result, "failed": True, "rc": out["rc"],
                    "msg": f"writing {path} failed: {out['stderr'].strip()}"}
        return result

    def _shell(self, script: str) -> dict:
        """One plain shell call on the host (no module start), from /. The script goes on stdin, which
        also keeps the SSH connection from allocating a TTY (that would mix stderr in, with CRLF endings)."""
        stdin = f"cd /\n{script}\n".encode()
        out = self._low_level_execute_command("/bin/sh -s", sudoable=True, in_data=stdin)
        return {"rc": out.get("rc", 1), "stdout": out.get("stdout", ""), "stderr": out.get("stderr", "")}


def _plain(value):
    """JSON's view of a value (tuples become lists, and so on), to compare with what was read back."""
    return json.loads(json.dumps(value, default=str))
