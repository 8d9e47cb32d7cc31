"""A user's strings are never rendered as Jinja, for real: provision.yml on minipve through ansible-runner,
the way the service runs it, with a description and env vars that would create files on the controller if
any task rendered them. The CT's description in the Proxmox API is that text, and no file appears.

One provision from the appliance (about a minute), VMID 7500, destroyed by playbooks/destroy.yml.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ctforge.requests import DestroyRequest, ProvisionRequest, ProvisionResult, write_extravars
from playbook_helpers import REPO, api, destroy

pytestmark = [pytest.mark.host, pytest.mark.slow]

VMID = 7500


def jinja(marker: Path) -> str:
    return "{{ lookup('pipe', 'touch " + str(marker) + "') }}"


def run_playbook(pve_env: dict, playbook: str, request, job: Path):
    """The playbook through ansible-runner with the request's extravars file, as ctforge's jobs run it."""
    import ansible_runner

    write_extravars(request, job)
    env = {**pve_env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    return ansible_runner.run(private_data_dir=str(job), project_dir=str(REPO),
                              playbook=str(REPO / "playbooks" / playbook),
                              inventory=str(REPO / "inventories" / "minipve.yml"), envvars=env, quiet=True)


def stats(run) -> dict:
    return next(e["event_data"].get("artifact_data", {}) for e in run.events
                if e["event"] == "playbook_on_stats")


def test_a_description_and_env_vars_holding_jinja_are_stored_as_text(minipve, tmp_path: Path) -> None:
    env = minipve.env
    node = env["PROXMOX_NODE"]
    key = tmp_path / "build_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    markers = {name: tmp_path / f"rendered-{name}" for name in ("description", "env", "env_name")}
    description = f"before {jinja(markers['description'])} after\n{{% raw %}}second line"
    request = ProvisionRequest(
        ctforge_template_name="injection", ctforge_vmid=VMID, ctforge_base_ct_template="debian-12-standard",
        ctforge_node=node, ctforge_ssh_private_key_file=str(key), ctforge_description=description,
        ctforge_env_vars={"EVIL": jinja(markers["env"]), "ALSO": "{{ " + f"'x' if lookup('pipe', 'touch "
                          f"{markers['env_name']}') else 'y'" + " }}"})
    px = api(env)
    try:
        run = run_playbook(env, "provision.yml", request, tmp_path / "provision")
        assert run.rc == 0, run.stdout.read()[-4000:]
        result = ProvisionResult.model_validate(stats(run))
        assert result.vmid == VMID and result.node == node
        config = px.nodes(node).lxc(VMID).config.get()
        assert config["description"].rstrip("\n") == description
        assert config["hostname"] == "injection"
        assert not [m.name for m in markers.values() if m.exists()]
        extravars = (tmp_path / "provision" / "env" / "extravars").read_text()
        assert extravars.startswith("---\n!unsafe\n") and "EVIL:" in extravars
    finally:
        gone = run_playbook(env, "destroy.yml", DestroyRequest(ctforge_vmid=VMID), tmp_path / "destroy")
        if any(ct["vmid"] == VMID for ct in px.nodes(node).lxc.get()):
            destroy(px, node, VMID)
        assert gone.rc == 0, gone.stdout.read()[-4000:]
