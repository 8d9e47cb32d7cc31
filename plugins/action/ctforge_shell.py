"""Action plugin ctforge_shell: ansible.builtin.shell without the Python start on the host.

The stack roles' verify and prepare entry points each run one shell probe or clean-up, and the smoke test
runs every installed stack's verify on a fresh clone. Through ansible.builtin.shell each of those is a
Python start on the host, about 0.45 s before the script itself runs. Here the script goes to the host's
shell as one plain call, on stdin: no Python, no TTY (so stderr stays out of stdout, without CRLF), and the
task's `environment` is exported inside the script rather than put on a command line, so a secret passed
that way (redis' REDISCLI_AUTH) shows neither in the CT's process list nor in a -vvv log.

What the task sees is what shell gives: rc, stdout and stderr (trailing newlines stripped), their _lines,
changed (true unless changed_when says otherwise) and failed on a non-zero rc. Like shell, it does not run
in check mode unless the task sets `check_mode: false`.
"""

from __future__ import annotations

import re
import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: ctforge_shell
short_description: Run a shell script on the host in one plain call, without a Python module
options:
  cmd:
    description: The script.
    type: str
    required: true
  executable:
    description: The shell that reads the script from stdin.
    type: str
    default: /bin/sh
  chdir:
    description: Change into this directory first (by default the script starts in the login directory).
    type: path
"""

RETURN = r"""
rc: {description: The script's exit status., type: int}
stdout: {description: Its standard output, trailing newlines stripped., type: str}
stderr: {description: Its standard error, trailing newlines stripped., type: str}
"""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = False
    _VALID_ARGS = frozenset(("cmd", "executable", "chdir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        script = args.get("cmd")
        if not isinstance(script, str) or not script.strip():
            raise AnsibleActionFail("ctforge_shell needs `cmd`, the script to run")
        executable = args.get("executable") or "/bin/sh"

        environment: dict = {}
        self._compute_environment_string(environment)
        for name in environment:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
                raise AnsibleActionFail(f"ctforge_shell: {name!r} is not an environment variable name")
        prologue = [f"export {name}={shlex.quote(str(value))}" for name, value in environment.items()]
        if args.get("chdir"):
            prologue.append(f"cd {shlex.quote(str(args['chdir']))} || exit 1")
        stdin = "\n".join([*prologue, script]) + "\n"

        out = self._low_level_execute_command(shlex.quote(executable) + " -s", sudoable=True,
                                              in_data=stdin.encode())
        stdout, stderr = out.get("stdout", "").rstrip("\n"), out.get("stderr", "").rstrip("\n")
        rc = out.get("rc", 1)
        result.update(rc=rc, stdout=stdout, stderr=stderr, stdout_lines=stdout.splitlines(),
                      stderr_lines=stderr.splitlines(), changed=True)
        if rc != 0:
            result.update(failed=True, msg="non-zero return code")
        return result
