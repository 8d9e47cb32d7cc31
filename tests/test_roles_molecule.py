"""Every role's molecule scenario on minipve: create a CT through community.proxmox, prepare,
converge, idempotence (second converge changed=0), verify with the role's own verify entry point,
destroy. Also checks that scenarios stay thin: the shared base at .config/molecule/ does the rest."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from playbook_helpers import REPO, api

ROLES = REPO / "roles"
VENV_BIN = REPO / ".venv" / "bin"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCENARIOS = sorted(p.parent.parent.parent.name for p in ROLES.glob("*/molecule/default/molecule.yml"))


def test_some_roles_have_scenarios():
    assert {"base", "devtools", "python", "postgresql"} <= set(SCENARIOS)


@pytest.mark.parametrize("role", SCENARIOS)
def test_scenario_sets_only_its_variables(role):
    """A scenario names no driver, platform, playbook or sequence of its own: the shared base does."""
    scenario = yaml.safe_load((ROLES / role / "molecule" / "default" / "molecule.yml").read_text())
    assert set(scenario) <= {"provisioner"}, f"{role}: keys beside provisioner: {sorted(scenario)}"
    assert set(scenario.get("provisioner", {})) <= {"inventory"}
    assert set(scenario.get("provisioner", {}).get("inventory", {})) <= {"group_vars", "host_vars"}


def leftover_cts(pve_env: dict, role: str) -> list[int]:
    px = api(pve_env)
    hostname = "molecule-" + role.replace("_", "-")
    return [ct["vmid"] for ct in px.nodes(pve_env["PROXMOX_NODE"]).lxc.get() if ct.get("name") == hostname]


@pytest.mark.host
@pytest.mark.slow
@pytest.mark.parametrize("role", SCENARIOS)
def test_molecule(minipve, role):
    env = {
        **os.environ,
        **minipve.env,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
        "NO_COLOR": "1",
    }
    env.pop("MOLECULE_PROJECT_DIRECTORY", None)
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test"],
        cwd=ROLES / role,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    output = ANSI.sub("", proc.stdout + proc.stderr)
    assert proc.returncode == 0, output[-6000:]
    # The sequence really ran its proving steps: second converge changed=0, then the role's verify.
    for step in ("create", "converge", "idempotence", "verify", "destroy"):
        ran = re.search(rf"{step}: Executed: Successful", output)
        assert ran, f"molecule did not run {step}:\n{output[-3000:]}"
    assert leftover_cts(minipve.env, role) == [], f"molecule destroy left the {role} CT behind"
