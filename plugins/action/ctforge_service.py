"""Action plugin ctforge_service: ensure systemd units are enabled and started (or restarted) in one call.

The stack roles end by making sure their services run: PostgreSQL's wrapper unit and its cluster, Redis
after its settings changed. With ansible.builtin.systemd_service that is one Python start on the host per
unit and state, 0.6 to 1.3 s each; a role took three or four. Here one plain shell call reads every unit's
state and changes only what differs, in the order given: daemon-reload when asked, then per unit enable or
disable, then start, stop or restart. A unit that is enabled already (enabled, static, indirect, generated:
whatever `systemctl is-enabled` accepts) and running reports ok.

Check mode reads and reports what would change, and changes nothing. A failing systemctl fails the task with
its own message, as the module does.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: ctforge_service
short_description: Ensure systemd units are enabled and started, stopped or restarted, in one shell call
options:
  name:
    description: The unit, or a list of units, handled in this order.
    type: list
    elements: str
    required: true
  enabled:
    description: Whether the units start at boot; left alone when omitted.
    type: bool
  state:
    description: C(restarted) always restarts (and so reports changed); the others act only when needed.
    type: str
    choices: [started, stopped, restarted]
  daemon_reload:
    description: Run C(systemctl daemon-reload) first, for unit files that just changed.
    type: bool
    default: false
"""

RETURN = r"""
actions: {description: What was done (or would be, in check mode), one "verb unit" item each., type: list}
status:
  description: Each unit's is-enabled and is-active after the task (in check mode, as they are).
  type: dict
"""

STATES = ("started", "stopped", "restarted")
# One unit's part of the script: act when its state differs (or always, for restart), then print its state.
UNIT_SCRIPT = """\
u={unit}
{enable}
{state}
printf 'status\\t%s\\t%s\\t%s\\n' "$u" "$(systemctl is-enabled -- "$u" 2>/dev/null)" \\
  "$(systemctl is-active -- "$u")"
"""
ENABLE = {
    True: 'systemctl -q is-enabled -- "$u" 2>/dev/null || act enable "$u"',
    False: '! systemctl -q is-enabled -- "$u" 2>/dev/null || act disable "$u"',
}
STATE = {
    "started": 'systemctl -q is-active -- "$u" || act start "$u"',
    "stopped": '! systemctl -q is-active -- "$u" || act stop "$u"',
    "restarted": 'act restart "$u"',
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("name", "enabled", "state", "daemon_reload"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        units = args.get("name")
        units = [units] if isinstance(units, str) else list(units or [])
        if not units or not all(isinstance(u, str) and u.strip() for u in units):
            raise AnsibleActionFail(f"ctforge_service needs `name`, a unit or a list of units; got {units!r}")
        state = args.get("state")
        if state is not None and state not in STATES:
            raise AnsibleActionFail(f"ctforge_service: state is one of {', '.join(STATES)}; got {state!r}")
        enabled = None if args.get("enabled") is None else boolean(args["enabled"])
        if enabled is None and state is None:
            raise AnsibleActionFail("ctforge_service needs `enabled`, `state` or both")

        # `act VERB [UNIT]` reports the action and, outside check mode, runs it; a failure ends the script
        # with systemctl's own message.
        script = [
            "check=" + ("1" if self._task.check_mode else ""),
            'act() { echo "did $*"; [ -n "$check" ] && return 0; '
            'err=$(systemctl "$@" 2>&1 >/dev/null) || { printf \'%s\\n\' "$err" >&2; exit 1; }; }',
        ]
        if boolean(args.get("daemon_reload", False)):
            script.append("act daemon-reload")
        for unit in units:
            script.append(UNIT_SCRIPT.format(
                unit=shlex.quote(unit),
                enable=ENABLE[enabled] if enabled is not None else ":",
                state=STATE[state] if state else ":"))
        out = self._shell("\n".join(script))

        actions, status = [], {}
        for line in out["stdout"].splitlines():
            if line.startswith("did "):
                actions.append(line[4:])
            elif line.startswith("status\t"):
                _, unit, is_enabled, is_active = [*line.split("\t"), "", ""][:4]
                status[unit] = {"enabled": is_enabled, "active": is_active}
        result.update(changed=bool(actions), actions=actions, status=status)
        if out["rc"] != 0:
            # Worded as the module words it: "Unable to start service redis-server: ...".
            verb, _, unit = (actions[-1] if actions else "").partition(" ")
            what = f"Unable to {verb} service {unit}" if unit else "Unable to reload the unit files"
            result.update(failed=True, rc=out["rc"], stderr=out["stderr"],
                          msg=f"{what}: {out['stderr'].strip() or 'systemctl failed'}")
        return result

    def _shell(self, script: str) -> dict:
        """One plain shell call on the host, from /, the script on stdin (no TTY; see ctforge_fact)."""
        stdin = f"cd /\n{script}\n".encode()
        out = self._low_level_execute_command("/bin/sh -s", sudoable=True, in_data=stdin)
        return {"rc": out.get("rc", 1), "stdout": out.get("stdout", ""), "stderr": out.get("stderr", "")}
