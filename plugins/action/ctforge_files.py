"""Action plugin ctforge_files: ensure whole files and single lines on a host, in one plain shell call.

A stack role that configures a service usually writes one settings file of its own and adds one line to the
package's main file (redis.conf's `include`). ansible.builtin.template and lineinfile do that in three
Python starts on the host (stat, copy, lineinfile): 1.3 to 2.5 s in the profiled builds. Here the
content is rendered by the caller (a `template` lookup), sent base64-encoded with the script on stdin, and
compared on the host: a file is replaced (through a dotfile temporary in its directory, then renamed) only
when its content, mode, owner or group differ; a line is appended only when no line of the file equals it.

Check mode compares and reports, and writes nothing. Contents never appear in the result, but the task's
arguments carry them: a file holding a secret needs the task's no_log, as with template.
"""

from __future__ import annotations

import base64
import re

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: ctforge_files
short_description: Ensure files hold given contents and files contain given lines, in one shell call
options:
  files:
    description: Whole files; each is dest, content, mode (octal string), owner and group (default root).
    type: list
    elements: dict
    default: []
  lines:
    description: >-
      Lines; each is path and line. The line is appended (after a newline, if the file lacks a final one)
      unless the file has a line equal to it. The file must exist.
    type: list
    elements: dict
    default: []
"""

RETURN = r"""
written: {description: The files replaced (or that would be, in check mode)., type: list}
appended: {description: The files a line was appended to (or would be)., type: list}
"""

# Data lines: `file DEST MODE OWNER GROUP CONTENT` and `line PATH LINE`, paths and texts base64-encoded.
SCRIPT = r"""
set -u
check=%(check)s
dec() { [ "$1" = - ] || printf '%%s' "$1" | base64 -d; }  # "-" stands for the empty text
while read -r kind fields; do
  set -- $fields  # base64 and plain names: no blanks or glob characters
  case $kind in
    file)  # DEST MODE OWNER GROUP CONTENT
      dest=$(dec "$1"); dir=$(dirname -- "$dest")
      [ -d "$dir" ] || { echo "$dest: its directory $dir does not exist" >&2; exit 1; }
      if dec "$5" | cmp -s - "$dest" && [ "$(stat -c '%%a %%U %%G' -- "$dest")" = "$2 $3 $4" ]; then
        continue
      fi
      if [ -z "$check" ]; then
        tmp=$(mktemp "$dir/.ctforge.XXXXXX") || exit 1  # a dotfile: conf.d readers skip it
        dec "$5" > "$tmp" && chown "$3:$4" "$tmp" && chmod "$2" "$tmp" && mv -f -- "$tmp" "$dest" \
          || { rm -f -- "$tmp"; exit 1; }
      fi
      echo "wrote $1" ;;
    line)  # PATH LINE
      path=$(dec "$1"); line=$(dec "$2")
      [ -f "$path" ] || { echo "$path does not exist" >&2; exit 1; }
      grep -qxF -- "$line" "$path" && continue
      if [ -z "$check" ]; then
        if [ -s "$path" ] && [ -n "$(tail -c 1 -- "$path")" ]; then echo >> "$path"; fi
        printf '%%s\n' "$line" >> "$path" || exit 1
      fi
      echo "appended $1" ;;
  esac
done <<'DATA'
%(data)s
DATA
"""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files", "lines"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        data = [self._file_line(item) for item in self._task.args.get("files") or []]
        data += [self._line_line(item) for item in self._task.args.get("lines") or []]
        if not data:
            raise AnsibleActionFail("ctforge_files needs `files`, `lines` or both")

        script = SCRIPT % {"check": "1" if self._task.check_mode else "", "data": "\n".join(data)}
        out = self._low_level_execute_command("/bin/sh -s", sudoable=True, in_data=f"cd /\n{script}".encode())
        written, appended = [], []
        for text in out.get("stdout", "").splitlines():
            verb, _, encoded = text.partition(" ")
            if verb in ("wrote", "appended"):
                (written if verb == "wrote" else appended).append(base64.b64decode(encoded).decode())
        result.update(changed=bool(written or appended), written=written, appended=appended)
        if out.get("rc", 1) != 0:
            result.update(failed=True, rc=out.get("rc", 1),
                          msg=f"ctforge_files: {out.get('stderr', '').strip() or 'the shell call failed'}")
        return result

    @staticmethod
    def _file_line(item: dict) -> str:
        dest, content = item.get("dest"), item.get("content")
        if not dest or not str(dest).startswith("/") or content is None:
            raise AnsibleActionFail(f"ctforge_files: a file needs an absolute dest and content; got {dest!r}")
        mode = str(item.get("mode", "0644"))
        if not re.fullmatch(r"0?[0-7]{3,4}", mode):
            raise AnsibleActionFail(f"ctforge_files: {dest}: mode is octal text like '0640'; got {mode!r}")
        owner, group = str(item.get("owner", "root")), str(item.get("group", "root"))
        for name in (owner, group):
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
                raise AnsibleActionFail(f"ctforge_files: {dest}: {name!r} is not a user or group name")
        # stat's %a prints the mode without leading zeros: compare in that form.
        return " ".join(("file", _b64(dest), f"{int(mode, 8):o}", owner, group, _b64(content) or "-"))

    @staticmethod
    def _line_line(item: dict) -> str:
        path, line = item.get("path"), item.get("line")
        if not path or not str(path).startswith("/") or not line or "\n" in str(line):
            raise AnsibleActionFail(f"ctforge_files: each line needs an absolute path and one line of text; "
                                    f"got path {path!r}")
        return " ".join(("line", _b64(path), _b64(line)))


def _b64(text) -> str:
    return base64.b64encode(str(text).encode()).decode()
