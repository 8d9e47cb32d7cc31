"""The hand-use prepare script is generated from the prepare_template role and never drifts from it."""

from __future__ import annotations

import importlib.util
import subprocess
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
