"""Every stack role option that reaches a shell, a config file or SQL is refused by the role's preflight when
it holds a newline, a quote or shell syntax, before the role changes anything (a cheap localhost play of the
real preflight.yml); and no role check anchors a pattern with `$`, which lets a trailing newline through.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbook_helpers import REPO, local_play

ROLES = ["base", "packages", "nodejs", "claude_cli", "python", "devtools", "postgresql", "redis"]
PLAY = """\
- name: Run a role's preflight
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Check the options
      ansible.builtin.include_role:
        name: "{{ role_under_test }}"
        tasks_from: preflight
"""

BAD: list[tuple[str, str, Any]] = [
    ("base", "ctforge_dev_user", "kobozo\n"),
    ("base", "ctforge_dev_user", "kobozo;id"),
    ("base", "base_dev_user_shell", "/bin/bash -c id"),
    ("base", "base_locale", "en_US.UTF-8\nLC_ALL=x"),
    ("base", "base_timezone", "Etc/UTC\n"),
    ("base", "base_agent_unit_name", "agent\nExecStartPre=/bin/id"),
    ("base", "base_agent_env_file", "/etc/agent.env\nExecStartPre=/bin/id"),
    ("base", "base_agent_binary_src", "https://example.com/agent $(id)"),
    ("packages", "packages_stacks", ["nodejs\n"]),
    ("packages", "packages_cache_valid_time", "3600; id"),
    ("nodejs", "nodejs_version", "22\n"),
    ("nodejs", "nodejs_npm_version", "10.9.4;id"),
    ("nodejs", "nodejs_npm_registry", "https://registry.npmjs.org/$(id)"),
    ("nodejs", "nodejs_npm_cafile", "/etc/ssl/ca.crt\nprefix=/tmp"),
    ("nodejs", "nodejs_npm_global_dir", '.npm-global"; id; "'),
    ("nodejs", "nodejs_npm_global_dir", "../../etc"),
    ("claude_cli", "claude_cli_version", "latest\n"),
    ("claude_cli", "claude_cli_package", "@anthropic-ai/claude-code'; touch /tmp/pwned; '"),
    ("python", "python_version", "3.11\n"),
    ("python", "python_user_tool", "pipx; id"),
    ("python", "python_pipx_apps", ["ruff\n"]),
    ("devtools", "devtools_extra_packages", ["git\n"]),
    ("postgresql", "postgresql_version", "15\n"),
    ("postgresql", "postgresql_users", [{"name": "app\n"}]),
    ("postgresql", "postgresql_users", [{"name": "app", "role_attr_flags": "LOGIN; DROP TABLE x"}]),
    ("postgresql", "postgresql_databases", [{"name": "app", "encoding": "UTF8'"}]),
    ("postgresql", "postgresql_databases", [{"name": "app", "owner": "app\n"}]),
    ("redis", "redis_bind", ["127.0.0.1\nrequirepass x"]),
    ("redis", "redis_port", "6379\nrename-command CONFIG x"),
    ("redis", "redis_password", "s3cret\nrename-command CONFIG x"),
]


@pytest.mark.parametrize(("role", "option", "value"), BAD,
                         ids=[f"{r}-{o}-{i}" for i, (r, o, _) in enumerate(BAD)])
def test_a_role_refuses_a_metacharacter_in_an_option_before_it_changes_anything(
        tmp_path: Path, role: str, option: str, value: Any) -> None:
    proc, _ = local_play(tmp_path, PLAY, {"role_under_test": role, option: value})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    failed = re.findall(r"^TASK \[([^\]]*)\]", out, flags=re.M)[-1]
    assert failed.startswith(f"{role} : Check"), (failed, out[-3000:])
    assert option.split("_", 1)[1] in failed + out.split("FAILED!", 1)[-1], out[-3000:]
    assert "changed=0" in out


def option_checks(role: str) -> list[str]:
    """The preflight's unconditional asserts on the role's options alone (no registered result, no fact)."""
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "preflight.yml").read_text())
    names = []
    for task in tasks:
        check = task.get("ansible.builtin.assert")
        if not check or not task["name"].startswith("Check") or "when" in task:
            continue
        that = " ".join(check["that"] if isinstance(check["that"], list) else [check["that"]])
        if "ansible_facts" not in that and set(re.findall(r"\b__\w+", that)) <= set(task.get("vars", {})):
            names.append(task["name"])
    return names


GOOD_PLAY = PLAY.replace("gather_facts: false", "gather_facts: true")


@pytest.mark.parametrize("role", ROLES)
def test_the_defaults_pass_every_option_check(tmp_path: Path, role: str) -> None:
    """With its defaults each role passes its option checks (a later host check, such as a missing dev
    user on this machine, may still stop the play)."""
    proc, _ = local_play(tmp_path, GOOD_PLAY, {"role_under_test": role})
    out = proc.stdout + proc.stderr
    header = r"^TASK \[[^:\]]+ : ([^\]]*)\][^\n]*\n"
    status = dict(re.findall(header + r"(?:[^\n]*\n)*?(ok|fatal|skipping|changed):", out, flags=re.M))
    checks = option_checks(role)
    assert checks
    assert {name: status.get(name) for name in checks} == dict.fromkeys(checks, "ok"), out[-3000:]


@pytest.mark.parametrize("role", ROLES)
def test_no_role_check_anchors_a_pattern_with_a_dollar(role: str) -> None:
    """`^...$` passes "value\\n" (re.match's `$` matches before a final newline); the checks use \\A...\\Z."""
    for path in sorted((REPO / "roles" / role / "tasks").glob("preflight*.yml")):
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            if "match(" in line or "'match'" in line:
                assert not re.search(r"\$'\)|\$\)'|\$'", line), f"{path}:{line_no}: {line.strip()}"
