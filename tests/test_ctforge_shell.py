"""The ctforge_shell action plugin: a shell script run in one plain call, answering as ansible.builtin.shell.

Runs the real plugin through ansible-playbook with the local connection; the stack roles' molecule
scenarios and the chain tests run it on containers over SSH.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from playbook_helpers import local_play

PLAY = """\
- name: Run the script
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Run it
      ctforge_shell: "{{ shell_args }}"
      environment: "{{ shell_env | default({}) }}"
      check_mode: "{{ task_check_mode | default(omit) }}"
      register: __shell
      ignore_errors: true

    - name: Write the result where the test reads it
      ansible.builtin.copy:
        content: "{{ __shell | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      check_mode: false
"""


def run(tmp_path: Path, *options: str, **extra) -> tuple[subprocess.CompletedProcess, dict]:
    proc, result = local_play(tmp_path, PLAY, extra, *options)
    assert result, proc.stdout + proc.stderr
    return proc, result


def test_answers_as_shell_does(tmp_path: Path) -> None:
    script = "echo 'it''s out'\necho warn >&2\nx=a-b-c; echo \"${x//-/ }\"\necho\n"
    _, result = run(tmp_path, shell_args={"cmd": script, "executable": "/bin/bash"})
    assert result["rc"] == 0 and result["changed"] is True and not result.get("failed")
    assert result["stdout"] == "its out\na b c"  # bash features; trailing newlines stripped
    assert result["stdout_lines"] == ["its out", "a b c"]
    assert result["stderr"] == "warn" and result["stderr_lines"] == ["warn"]  # no TTY: kept apart


def test_a_non_zero_exit_fails_the_task(tmp_path: Path) -> None:
    _, result = run(tmp_path, shell_args={"cmd": "echo partial; exit 3"})
    assert result["failed"] is True and result["rc"] == 3 and result["msg"] == "non-zero return code"
    assert result["stdout"] == "partial"


def test_the_environment_is_exported_inside_the_script_not_on_a_command_line(tmp_path: Path) -> None:
    secret = "s3cr'et value"
    proc, result = run(tmp_path, "-vvv", shell_args={"cmd": 'printf %s "$SECRET" | sha256sum; echo "$PLAIN"'},
                       shell_env={"SECRET": secret, "PLAIN": "x"})
    assert result["stdout_lines"] == [hashlib.sha256(secret.encode()).hexdigest() + "  -", "x"]
    assert "s3cr" not in proc.stdout + proc.stderr  # -vvv logs each command line; the secret is on none


def test_chdir(tmp_path: Path) -> None:
    _, result = run(tmp_path, shell_args={"cmd": "pwd", "chdir": str(tmp_path)})
    assert result["stdout"] == str(tmp_path)


def test_it_does_not_run_in_check_mode_unless_told_to(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _, result = run(tmp_path, "--check", shell_args={"cmd": f"touch {marker}"})
    assert result.get("skipped") is True and not marker.exists()
    _, result = run(tmp_path, "--check", shell_args={"cmd": f"touch {marker}"}, task_check_mode=False)
    assert result["rc"] == 0 and marker.exists()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    _, result = run(tmp_path, shell_args={"cmd": ""})
    assert result["failed"] is True and "needs `cmd`" in result["msg"]
    _, result = run(tmp_path, shell_args={"cmd": "true"}, shell_env={"NOT-A-NAME": "x"})
    assert result["failed"] is True and "is not an environment variable name" in result["msg"]
