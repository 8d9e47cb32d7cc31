"""The hand-use prepare script is generated from the prepare_template role and never drifts from it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
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
    """The role sends prepare-template.sh.j2 and check.sh.j2 through Ansible's template lookup; both
    renders appear verbatim in the script for use by hand."""
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"ansible.builtin.copy": {
            "dest": str(tmp_path / f"{name}.sh"),
            "content": f"{{{{ lookup('ansible.builtin.template', '{ROLE / 'templates' / name}.sh.j2') }}}}"}}
            for name in ("common", "prepare-template", "check")],
    }]))
    subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                    "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
                   cwd=REPO, check=True, capture_output=True, timeout=300)
    script = SCRIPT.read_text()
    assert (tmp_path / "common.sh").read_text() in script, f"common.sh.j2 is not in {SCRIPT.name}"
    for name in ("prepare-template", "check"):
        rendered = (tmp_path / f"{name}.sh").read_text()
        assert rendered.count("\n") > 10, rendered
        assert rendered in script, f"{name}.sh.j2 as the role runs it is not in {SCRIPT.name}"


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


def test_agent_names_default_to_the_product_and_are_configurable():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["prepare_template_agent_unit"] == "vibe-anywhere-agent"
    assert defaults["prepare_template_agent_env_file"] == "/etc/vibe-anywhere-agent.env"
    text = SCRIPT.read_text()
    assert "AGENT_UNIT=${AGENT_UNIT:-vibe-anywhere-agent}" in text


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
