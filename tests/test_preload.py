"""The ctforge_preload callback: a task's forked worker finds ctforge's catalog imported already, so
ctforge_stacks and ctforge_workspace_request do not import it each time; without the callback it does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playbook_helpers import REPO

PROBE = '''\
import sys
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        return {"changed": False, "imported": "ctforge.catalog" in sys.modules}
'''
PLAY = """\
- name: Look into a task's worker
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Ask the worker what it has imported
      imported_probe:
      register: probe
    - name: Write it where the test reads it
      ansible.builtin.copy:
        content: "{{ probe.imported | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
"""


@pytest.mark.parametrize(("enabled", "imported"), [(None, True), ("ansible.posix.timer", False)])
def test_a_tasks_worker_has_the_catalog_imported_only_with_the_callback(tmp_path: Path, enabled, imported):
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "imported_probe.py").write_text(PROBE)
    (tmp_path / "play.yml").write_text(PLAY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_ACTION_PLUGINS": f"{tmp_path / 'actions'}:{REPO / 'plugins' / 'action'}"}
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    if enabled is not None:  # the environment outranks ansible.cfg's callbacks_enabled: another callback only
        env["ANSIBLE_CALLBACKS_ENABLED"] = enabled
    result = tmp_path / "result.json"
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml"),
         "-e", json.dumps({"result_file": str(result), "ansible_python_interpreter": sys.executable})],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(result.read_text()) is imported
