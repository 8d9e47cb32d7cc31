"""The hand-use prepare script is generated from the prepare_template role and never drifts from it."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "prepare_template"
SCRIPT = REPO / "scripts" / "prepare-proxmox-template.sh"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_prepare_script", REPO / "scripts" / "gen-prepare-script.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_script_is_the_render_of_the_role():
    assert SCRIPT.read_text() == _generator().render(), "run: python scripts/gen-prepare-script.py"


def test_script_holds_what_the_role_runs_as_ansible_renders_it(tmp_path):
    """The role sends scrub.sh.j2, check.sh.j2 and prepare-template.sh.j2 through Ansible's template
    lookup; each render appears verbatim in the script for use by hand, in the role's order."""
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"ansible.builtin.copy": {
            "dest": str(tmp_path / f"{name}.sh"),
            "content": f"{{{{ lookup('ansible.builtin.template', '{ROLE / 'templates' / name}.sh.j2') }}}}"}}
            for name in ("common", "scrub", "check", "prepare-template")],
    }]))
    subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                    "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    script = SCRIPT.read_text()
    assert (tmp_path / "common.sh").read_text() in script, f"common.sh.j2 is not in {SCRIPT.name}"
    positions = []
    for name in ("scrub", "check", "prepare-template"):
        rendered = (tmp_path / f"{name}.sh").read_text()
        assert rendered.count("\n") > 10, rendered
        assert rendered in script, f"{name}.sh.j2 as the role runs it is not in {SCRIPT.name}"
        positions.append(script.index(rendered))
    assert positions == sorted(positions), "the script must scrub, check, then prepare, as the role does"


def test_script_names_every_path_the_role_removes():
    data = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    text = SCRIPT.read_text()
    for key in (
        "_prepare_template_home_histories",
        "_prepare_template_home_credentials",
        "_prepare_template_home_caches",
        "_prepare_template_remove_paths",
        "_prepare_template_empty_dirs",
        "_prepare_template_truncate",
    ):
        for path in data[key]:
            assert path in text, f"{path} ({key}) is missing from {SCRIPT.name}"


def test_role_covers_the_credentials_the_stacks_leave():
    data = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    creds = set(data["_prepare_template_home_credentials"])
    assert {
        ".claude",
        ".claude.json",
        ".git-credentials",
        ".config/gh",
        ".pgpass",
        ".docker/config.json",
    } <= creds
    assert ".bash_history" in data["_prepare_template_home_histories"]


def test_role_covers_by_path_the_credentials_a_person_leaves():
    """Every class of issue 11: by path here; tests/test_scrub.py plants each and finds none in a clone."""
    data = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    creds = set(data["_prepare_template_home_credentials"])
    assert {
        ".ssh/id_ed25519", ".ssh/id_rsa", ".ssh/authorized_keys2",  # keys
        ".aws", ".config/gcloud", ".azure", ".kube", ".netrc",  # cloud CLIs, cluster clients
        ".pypirc", ".cargo/credentials", ".cargo/credentials.toml", ".gem/credentials",  # package indexes
        ".docker/config.json", ".config/containers/auth.json",  # container registries
        ".git-credentials", ".config/git/credentials",  # git's credential store
    } <= creds
    assert {".config/pip/pip.conf", ".pip/pip.conf"} <= set(data["_prepare_template_home_url_configs"])
    assert "/etc/pip.conf" in data["_prepare_template_system_url_configs"]


def test_homes_are_every_users_but_not_system_directories():
    """homes() of common.sh.j2, run against a passwd database of service users and system accounts (in
    /var/tmp: homes() leaves out /tmp, which the scrub empties)."""
    common = _generator().render().split("\nhomes() {", 1)[1].split("\n}\n", 1)[0]
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        for home in ("home/dev", "var/lib/postgresql", "var/lib/redis"):
            os.makedirs(f"{tmp}/{home}")
        passwd = "\n".join(f"{name}:x:{uid}:{uid}::{home}:/bin/sh" for uid, (name, home) in enumerate([
            ("root", "/root"), ("dev", f"{tmp}/home/dev"), ("postgres", f"{tmp}/var/lib/postgresql"),
            ("redis", f"{tmp}/var/lib/redis"), ("gone", f"{tmp}/var/lib/gone"), ("sync", "/bin"),
            ("sshd", "/run/sshd"), ("systemd-network", "/"), ("_apt", "/nonexistent"),
            ("daemon", "/usr/sbin"), ("tmpuser", "/tmp"),
        ]))
        script = f"getent() {{ printf '%s\\n' {shlex.quote(passwd)}; }}\nhomes() {{{common}\n}}\nhomes\n"
        out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
        assert out.split() == sorted(["/root", f"{tmp}/home/dev", f"{tmp}/var/lib/postgresql",
                                      f"{tmp}/var/lib/redis"])


def test_script_says_the_scan_by_content_needs_the_controller():
    text = SCRIPT.read_text()
    assert "by where they are only" in text and "on the controller" in text


def test_agent_names_default_to_the_product_and_are_configurable():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["prepare_template_agent_unit"] == "vibe-anywhere-agent"
    assert defaults["prepare_template_agent_env_file"] == "/etc/vibe-anywhere-agent.env"
    text = SCRIPT.read_text()
    assert "AGENT_UNIT=${AGENT_UNIT:-vibe-anywhere-agent}" in text


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
