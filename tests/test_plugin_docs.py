"""ctforge's own Ansible plugins describe themselves through ansible-doc, and ssh_fingerprint agrees
with ssh-keygen."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from playbook_helpers import REPO

MODULE_DOCS = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("name", MODULE_DOCS)
def test_ansible_doc_renders_each_module(name):
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-doc"), "-t", "module", name],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr
    assert f"MODULE {name}" in proc.stdout and "OPTIONS" in proc.stdout


def _filter():
    path = REPO / "plugins" / "filter" / "ctforge_ssh.py"
    spec = importlib.util.spec_from_file_location("ctforge_ssh", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ssh_fingerprint_is_what_ssh_keygen_prints(tmp_path: Path):
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "a b c", "-f", str(key)], check=True)
    listed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key}.pub"], check=True,
                            capture_output=True, text=True).stdout.split()[1]
    assert _filter().ssh_fingerprint(key.with_suffix(".pub").read_text()) == listed


@pytest.mark.parametrize("line", ["", "ssh-ed25519", "ssh-ed25519 not-base64!"])
def test_ssh_fingerprint_refuses_what_is_no_public_key(line):
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="ssh_fingerprint"):
        _filter().ssh_fingerprint(line)
