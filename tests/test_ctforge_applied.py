"""The ctforge_applied action plugin: when may a stack role skip its install on a re-run?

Runs the real plugin through ansible-playbook on the controller, inside a throwaway role; the
recorded fact (ansible_local) is passed in as a variable, as fact gathering would set it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SPECS = """\
argument_specs:
  main:
    short_description: A throwaway stack role
    options:
      demo_version: {type: str, default: "1"}
      demo_token: {type: str, default: "", no_log: true}
      demo_users:
        type: list
        elements: dict
        default: []
        options:
          name: {type: str}
          password: {type: str, no_log: true}
      ctforge_reapply: {type: bool, default: false}
"""
DEFAULTS = 'demo_version: "1"\ndemo_token: ""\ndemo_users: []\nctforge_reapply: false\n'
TASKS = """\
- name: Decide whether the demo stack is applied already
  ctforge_applied:
    stack: demo
  register: __demo_state

- name: Write the decision where the test reads it
  ansible.builtin.copy:
    content: "{{ __demo_state | to_json }}"
    dest: "{{ demo_out }}"
    mode: "0644"
"""
PLAY = """\
- name: Apply the demo role
  hosts: localhost
  connection: local
  gather_facts: false
  roles: [demo]
"""


@pytest.fixture
def role(tmp_path: Path) -> Path:
    root = tmp_path / "roles" / "demo"
    for sub, name, text in (("meta", "argument_specs.yml", SPECS), ("defaults", "main.yml", DEFAULTS),
                            ("tasks", "main.yml", TASKS)):
        (root / sub).mkdir(parents=True)
        (root / sub / name).write_text(text)
    (tmp_path / "play.yml").write_text(PLAY)
    return root


def decide(role: Path, recorded: str | None = None, **extra) -> dict:
    """Run the role; `recorded` is the fingerprint the host's fact holds, if any."""
    out = role.parent.parent / "decision.json"
    facts = {"ctforge_demo": {"fingerprint": recorded}} if recorded else {}
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_ROLES_PATH": str(role.parent)}
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,",
           str(role.parent.parent / "play.yml"),
           "-e", json.dumps({"demo_out": str(out), "ansible_local": facts, **extra,
                             "ansible_python_interpreter": sys.executable})]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_same_settings_and_code_are_applied(role: Path) -> None:
    first = decide(role)
    assert first["applied"] is False and len(first["fingerprint"]) == 40
    again = decide(role, first["fingerprint"])
    assert again == {**first, "applied": True}


def test_a_changed_setting_or_changed_code_runs_again(role: Path) -> None:
    recorded = decide(role)["fingerprint"]
    assert decide(role, recorded, demo_version="2")["applied"] is False
    (role / "tasks" / "install.yml").write_text("---\n[]\n")
    assert decide(role, recorded)["applied"] is False


def test_reapply_forces_a_full_pass(role: Path) -> None:
    recorded = decide(role)["fingerprint"]
    result = decide(role, recorded, ctforge_reapply=True)
    assert result["applied"] is False and result["fingerprint"] == recorded


def test_secrets_stay_out_of_the_fingerprint_and_disable_the_shortcut(role: Path) -> None:
    recorded = decide(role)["fingerprint"]
    with_token = decide(role, recorded, demo_token="s3cret")
    assert with_token["fingerprint"] == recorded and with_token["applied"] is False
    users = [{"name": "app", "password": "s3cret"}]
    with_password = decide(role, None, demo_users=users)
    without_password = decide(role, None, demo_users=[{"name": "app", "password": None}])
    assert with_password["fingerprint"] == without_password["fingerprint"]
    assert decide(role, with_password["fingerprint"], demo_users=users)["applied"] is False
    no_password = [{"name": "app", "password": None}]
    assert decide(role, without_password["fingerprint"], demo_users=no_password)["applied"] is True
