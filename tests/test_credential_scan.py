"""ctforge_credential_scan (roles/prepare_template/action_plugins) through ansible-playbook, on this machine.

The host side is a plain tar of a temporary directory, as the role's scan.sh.j2 writes it: what comes back
is which files hold a credential and of what kind, which key files were removed, and never a secret.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from playbook_helpers import REPO, local_play

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Scan
      ctforge_credential_scan:
        cmd: "cd / && find {{ tree | quote }} -type f -printf '%P\\\\0' | sed -z 's|^|{{ tree[1:] }}/|'
              | tar -C / --null --no-recursion -T - -czf - | base64 -w0"
        remove_key_files: "{{ remove | default(false) }}"
        known: "{{ known | default([]) }}"
      register: scan
      check_mode: "{{ check | default(false) }}"
    - ansible.builtin.copy: {content: "{{ scan | to_json }}", dest: "{{ result_file }}"}
      check_mode: false
"""
GITHUB_TOKEN = "ghp_ctforgecanary0123456789abcdefghijklm"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    plugins = [REPO / "plugins" / "action", REPO / "roles" / "prepare_template" / "action_plugins"]
    monkeypatch.setenv("ANSIBLE_ACTION_PLUGINS", ":".join(map(str, plugins)))
    home = tmp_path / "home"
    (home / "app").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "app" / "deploy_key")],
                   check=True)
    (home / "app" / ".env").write_text(f"GITHUB_TOKEN={GITHUB_TOKEN}\nDEBUG=1\n")
    (home / ".bashrc").write_text("export PATH=$HOME/bin:$PATH\n")
    script = home / "app" / "setup.sh"  # a key inside a script: the scan cannot know what else the file is
    key = (home / "app" / "deploy_key").read_text()
    script.write_text(f"cat > key <<'EOF'\n{key}EOF\nchmod 600 key\n")
    return home


def scan(tmp_path, tree, **extra):
    proc, result = local_play(tmp_path, PLAY, {"tree": str(tree), **extra})
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc, result


def test_finds_credentials_by_what_they_are_and_names_files_only(tmp_path, tree):
    proc, result = scan(tmp_path, tree)
    assert result["found"] == [
        f"{tree}/app/.env (GitHub Token: line 1)",
        f"{tree}/app/deploy_key (Private Key: line 1)",
        f"{tree}/app/setup.sh (Private Key: line 2)",
    ]
    assert result["paths"] == [f"{tree}/app/.env", f"{tree}/app/deploy_key", f"{tree}/app/setup.sh"]
    assert result["scanned"] == 5 and result["removed"] == [] and not result["changed"]
    assert GITHUB_TOKEN not in json.dumps(result) and GITHUB_TOKEN not in proc.stdout


def test_removes_a_file_that_is_only_a_key_with_its_pub_and_reports_the_rest(tmp_path, tree):
    _, result = scan(tmp_path, tree, remove=True)
    assert result["removed"] == [f"{tree}/app/deploy_key"] and result["changed"]
    assert not (tree / "app" / "deploy_key").exists() and not (tree / "app" / "deploy_key.pub").exists()
    assert result["paths"] == [f"{tree}/app/.env", f"{tree}/app/setup.sh"]
    assert (tree / "app" / "setup.sh").exists()


def test_check_mode_removes_nothing(tmp_path, tree):
    _, result = scan(tmp_path, tree, remove=True, check=True)
    assert result["removed"] == [f"{tree}/app/deploy_key"]
    assert (tree / "app" / "deploy_key").exists()


def test_a_key_file_that_cannot_be_removed_stays_reported(tmp_path, tree):
    key = tree / "app" / "deploy_key"
    if subprocess.run(["chattr", "+i", str(key)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root and a file system that supports it")
    try:
        _, result = scan(tmp_path, tree, remove=True)
    finally:
        subprocess.run(["chattr", "-i", str(key)], check=True)
    assert result["removed"] == [] and f"{tree}/app/deploy_key" in result["paths"]
    assert key.exists()


def test_paths_named_by_the_check_by_path_are_not_named_twice(tmp_path, tree):
    _, result = scan(tmp_path, tree, known=[f"{tree}/app (token)", f"{tree}/other"])
    assert result["found"] == []


def test_a_line_marked_as_allowed_is_not_reported(tmp_path, tree):
    (tree / "app" / ".env").write_text(f"GITHUB_TOKEN={GITHUB_TOKEN}  # pragma: allowlist secret\n")
    _, result = scan(tmp_path, tree)
    assert f"{tree}/app/.env" not in result["paths"]


def test_a_host_that_sends_no_tar_fails_with_its_error(tmp_path, tree):
    play = PLAY.replace('cmd: "cd /', 'cmd: "echo cannot read >&2; exit 3; cd /')
    proc, result = local_play(tmp_path, play, {"tree": str(tree)})
    assert proc.returncode != 0 and result == {}
    assert "did not send its candidate files as a tar" in proc.stdout and "cannot read" in proc.stdout
