"""The ctforge_files action plugin: whole files and single lines ensured in one shell call.

Runs the real plugin through ansible-playbook with the local connection, on files in the test's own
directory, owned by the user running the tests; the redis role's molecule scenario and the chain tests run
it on containers.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
from pathlib import Path

from playbook_helpers import local_play

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name

PLAY = """\
- name: Ensure the files
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Ensure the files and lines
      ctforge_files:
        files: "{{ files | default([]) }}"
        lines: "{{ lines | default([]) }}"
      register: __files

    - name: Write the result where the test reads it
      ansible.builtin.copy:
        content: "{{ __files | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      check_mode: false
"""


def ensure(tmp_path: Path, check: bool = False, **extra) -> tuple[subprocess.CompletedProcess, dict]:
    return local_play(tmp_path, PLAY, extra, *(["--check"] if check else []))


def settings(path: Path, content: str = "port 6379\nrequirepass s3cret\n", mode: str = "0640") -> dict:
    return {"dest": str(path), "content": content, "mode": mode, "owner": OWNER, "group": GROUP}


def test_writes_a_file_once_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "conf" / "ctforge.conf"
    dest.parent.mkdir()
    proc, first = ensure(tmp_path, files=[settings(dest)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert first["changed"] is True and first["written"] == [str(dest)]
    assert dest.read_text() == "port 6379\nrequirepass s3cret\n"
    assert dest.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in dest.parent.iterdir()] == ["ctforge.conf"]  # no temporary left behind
    inode = dest.stat().st_ino

    proc, again = ensure(tmp_path, files=[settings(dest)])
    assert proc.returncode == 0 and again["changed"] is False and again["written"] == []
    assert dest.stat().st_ino == inode
    assert "s3cret" not in json.dumps(again) + proc.stdout  # contents never come back


def test_new_content_or_mode_replaces_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "ctforge.conf"
    ensure(tmp_path, files=[settings(dest)])
    proc, result = ensure(tmp_path, files=[settings(dest, content="port 6380\n")])
    assert proc.returncode == 0 and result["written"] == [str(dest)] and dest.read_text() == "port 6380\n"
    proc, result = ensure(tmp_path, files=[settings(dest, content="port 6380\n", mode="0600")])
    assert proc.returncode == 0 and result["written"] == [str(dest)]
    assert dest.stat().st_mode & 0o777 == 0o600
    proc, result = ensure(tmp_path, files=[settings(dest, content="")])
    assert proc.returncode == 0 and result["written"] == [str(dest)] and dest.read_text() == ""


def test_appends_a_line_once_after_a_missing_final_newline(tmp_path: Path) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text("# packaged\nport 6379")  # no final newline
    line = {"path": str(conf), "line": "include /etc/redis/ctforge.conf"}
    proc, first = ensure(tmp_path, lines=[line])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert first["changed"] is True and first["appended"] == [str(conf)]
    assert conf.read_text() == "# packaged\nport 6379\ninclude /etc/redis/ctforge.conf\n"
    proc, again = ensure(tmp_path, lines=[line])
    assert proc.returncode == 0 and again["changed"] is False
    assert conf.read_text().count("include") == 1


def test_check_mode_reports_and_writes_nothing(tmp_path: Path) -> None:
    dest, conf = tmp_path / "ctforge.conf", tmp_path / "redis.conf"
    conf.write_text("port 6379\n")
    proc, result = ensure(tmp_path, check=True, files=[settings(dest)],
                          lines=[{"path": str(conf), "line": "include x"}])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["changed"] is True
    assert result["written"] == [str(dest)] and result["appended"] == [str(conf)]
    assert not dest.exists() and conf.read_text() == "port 6379\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["play.yml", "redis.conf", "result.json"]


def test_a_missing_directory_or_file_fails_with_its_path(tmp_path: Path) -> None:
    proc, _ = ensure(tmp_path, files=[settings(tmp_path / "nowhere" / "x.conf")])
    assert proc.returncode != 0 and f"its directory {tmp_path / 'nowhere'} does not exist" in proc.stdout
    proc, _ = ensure(tmp_path, lines=[{"path": str(tmp_path / "absent.conf"), "line": "x"}])
    assert proc.returncode != 0 and f"{tmp_path / 'absent.conf'} does not exist" in proc.stdout


def test_bad_arguments_are_refused_before_the_host_is_touched(tmp_path: Path) -> None:
    proc, _ = ensure(tmp_path, files=[settings(tmp_path / "x.conf", mode="rw-r-----")])
    assert proc.returncode != 0 and "mode is octal text like '0640'" in proc.stdout
    proc, _ = ensure(tmp_path, files=[{**settings(tmp_path / "x.conf"), "owner": "root;rm"}])
    assert proc.returncode != 0 and "is not a user or group name" in proc.stdout
    proc, _ = ensure(tmp_path, lines=[{"path": str(tmp_path / "x.conf"), "line": "two\nlines"}])
    assert proc.returncode != 0 and "one line of text" in proc.stdout
    assert not (tmp_path / "x.conf").exists()
