"""The ctforge_fact action plugin: a stack's local fact, written only when what it records changes.

Runs the real plugin through ansible-playbook with the local connection, against a facts directory of
the test's own; the roles' molecule scenarios and the chain tests run it on containers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from playbook_helpers import local_play

PLAY = """\
- name: Record the demo stack's fact
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Ensure the local fact records the demo stack
      ctforge_fact:
        stack: demo
        facts_dir: "{{ facts_dir }}"
        version_command: "{{ version_command | default(omit) }}"
        version_pattern: "{{ version_pattern | default(omit) }}"
        version: "{{ version | default(omit) }}"
        fields: "{{ fields | default({}) }}"
      register: __fact

    - name: Write the result where the test reads it
      ansible.builtin.copy:
        content: "{{ __fact | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      check_mode: false
"""


def record(tmp_path: Path, *options: str, check: bool = False,
           **extra) -> tuple[subprocess.CompletedProcess, dict]:
    extra = {"facts_dir": str(tmp_path / "facts.d"), **extra}
    return local_play(tmp_path, PLAY, extra, *options, *(["--check"] if check else []))


@pytest.fixture
def fact_file(tmp_path: Path) -> Path:
    return tmp_path / "facts.d" / "ctforge_demo.fact"


def test_first_run_writes_the_fact_and_a_second_changes_nothing(tmp_path: Path, fact_file: Path) -> None:
    args = {"version_command": "echo 'demo v=7.0.15 sha=0'", "version_pattern": "v=([0-9.]+)",
            "fields": {"port": 6379, "fingerprint": "abc"}}
    proc, first = record(tmp_path, **args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert first["changed"] is True and first["version"] == "7.0.15"
    written = json.loads(fact_file.read_text())
    assert {k: v for k, v in written.items() if k != "installed_at"} == {
        "stack": "demo", "version": "7.0.15", "port": 6379, "fingerprint": "abc"}
    assert fact_file.stat().st_mode & 0o777 == 0o644
    assert fact_file.read_text().startswith('{\n    "fingerprint": "abc",\n')  # to_nice_json's layout

    proc, again = record(tmp_path, **args)
    assert proc.returncode == 0 and again["changed"] is False
    assert json.loads(fact_file.read_text()) == written  # installed_at kept too


def test_a_changed_version_or_field_rewrites_it(tmp_path: Path, fact_file: Path) -> None:
    record(tmp_path, version="1.0", fields={"user": "kobozo"})
    _, newer = record(tmp_path, version="1.1", fields={"user": "kobozo"})
    assert newer["changed"] is True and json.loads(fact_file.read_text())["version"] == "1.1"
    _, other_user = record(tmp_path, version="1.1", fields={"user": "dev"})
    assert other_user["changed"] is True and json.loads(fact_file.read_text())["user"] == "dev"


def test_an_unreadable_fact_is_replaced(tmp_path: Path, fact_file: Path) -> None:
    fact_file.parent.mkdir(parents=True)
    fact_file.write_text("{not json")
    proc, result = record(tmp_path, version="2")
    assert proc.returncode == 0 and result["changed"] is True
    assert json.loads(fact_file.read_text())["version"] == "2"


def test_check_mode_reports_the_change_and_writes_nothing(tmp_path: Path, fact_file: Path) -> None:
    record(tmp_path, version="1")
    before = fact_file.read_text()
    proc, result = record(tmp_path, version="2", check=True)
    assert proc.returncode == 0 and result["changed"] is True
    assert fact_file.read_text() == before


def test_a_failing_version_command_fails_the_task_with_its_error(tmp_path: Path, fact_file: Path) -> None:
    proc, _ = record(tmp_path, version_command="echo 'demo: not installed' >&2; exit 3")
    assert proc.returncode != 0
    assert "the version command failed (rc 3)" in proc.stdout and "demo: not installed" in proc.stdout
    assert not fact_file.exists()


def test_output_without_a_version_fails_the_task(tmp_path: Path, fact_file: Path) -> None:
    proc, _ = record(tmp_path, version_command="echo unknown", version_pattern="v=([0-9.]+)")
    assert proc.returncode != 0 and "no version in the output of" in proc.stdout
    assert not fact_file.exists()
