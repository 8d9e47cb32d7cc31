"""The pve_api action plugin through ansible-playbook against minipve: data back from a GET, a worker
task's failure reported with the task's own message (not at the timeout), Proxmox's HTTP errors, an
unreachable API, check mode, and a token secret that never reaches the output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from playbook_helpers import REPO, api, destroy, wait_task

pytestmark = [pytest.mark.host]

VMID = 7390


@pytest.fixture
def faults(minipve):
    yield minipve.faults
    minipve.faults()


def run_tasks(pve_env: dict, tmp_path: Path, tasks: list[dict], *args: str) -> tuple[int, list[dict], str]:
    """Runs tasks on localhost; returns rc, each task's result and the raw output (json callback)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, **pve_env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "json"}
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook), *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    plays = json.loads(proc.stdout[proc.stdout.find("{\n"):])["plays"]  # -v lines come before the document
    return proc.returncode, [task["hosts"]["localhost"] for play in plays for task in play["tasks"]], output


def test_get_returns_the_replys_data(minipve, tmp_path):
    rc, results, _ = run_tasks(minipve.env, tmp_path, [{"pve_api": {"path": "/version"}}])
    assert rc == 0
    assert results[0]["data"]["version"]
    assert results[0]["changed"] is False


def test_a_failed_task_fails_the_call_with_the_tasks_own_message(minipve, faults, tmp_path):
    px = api(minipve.env)
    node = minipve.env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]
    faults(tasks={"vzcreate": "injected: the storage went away"})
    rc, results, _ = run_tasks(minipve.env, tmp_path, [{"pve_api": {
        "method": "POST", "path": f"/nodes/{node}/lxc", "timeout": 600,
        "data": {"vmid": VMID, "ostemplate": appliance, "storage": "local", "rootfs": "local:1"}}}])
    assert rc != 0
    failed = results[0]
    assert failed["failed"] is True
    assert failed["msg"] == f"Proxmox task vzcreate {VMID} failed: injected: the storage went away"
    assert failed["upid"].startswith("UPID:") and "vzcreate" in failed["upid"]
    assert any("injected: the storage went away" in line for line in failed["task_log"])
    assert all(ct["vmid"] != VMID for ct in px.nodes(node).lxc.get())


def test_proxmoxs_http_error_is_the_message(minipve, faults, tmp_path):
    faults(endpoints={"GET /cluster/nextid": "injected: nextid is down"})
    rc, results, _ = run_tasks(minipve.env, tmp_path, [{"pve_api": {"path": "/cluster/nextid"}}])
    assert rc != 0
    assert results[0]["msg"].startswith("GET /cluster/nextid: HTTP 500 injected: nextid is down")
    assert results[0]["status"] == 500


def test_an_unreachable_api_says_where_it_looked(minipve, tmp_path):
    closed = {**minipve.env, "PROXMOX_PORT": "1"}  # nothing listens on port 1 of loopback
    rc, results, _ = run_tasks(closed, tmp_path, [{"pve_api": {"path": "/version"}}])
    assert rc != 0
    where = f"https://{closed['PROXMOX_HOST']}:1/"
    assert results[0]["msg"].startswith(f"GET /version: cannot reach Proxmox at {where}")


def test_check_mode_reads_and_changes_nothing(minipve, tmp_path):
    node = minipve.env["PROXMOX_NODE"]
    rc, results, _ = run_tasks(minipve.env, tmp_path, [
        {"pve_api": {"path": "/cluster/nextid"}},
        {"pve_api": {"method": "POST", "path": f"/nodes/{node}/lxc/{VMID}/status/start"}},
    ], "--check")
    assert rc == 0
    assert int(results[0]["data"]) >= 100
    assert results[1]["skipped"] is True
    assert "not sent" in results[1]["msg"]


def test_the_token_secret_never_reaches_the_output(minipve, tmp_path):
    secret = minipve.env["PROXMOX_TOKEN_SECRET"]
    rc, _, output = run_tasks(minipve.env, tmp_path, [
        {"pve_api": {"path": "/version", "api_token_secret": secret}},
        {"pve_api": {"path": "/nodes/nosuchnode/lxc"}, "ignore_errors": True},
    ], "-vvv")
    assert rc == 0
    assert secret not in output


def test_follow_waits_for_a_task_it_did_not_start(minipve, tmp_path):
    px = api(minipve.env)
    node = minipve.env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]
    create = {"vmid": VMID, "ostemplate": appliance, "storage": "local", "rootfs": "local:1"}
    rc, results, _ = run_tasks(minipve.env, tmp_path, [
        {"pve_api": {"method": "POST", "path": f"/nodes/{node}/lxc", "wait": False, "data": create},
         "register": "made"},
        {"pve_api": {"follow": "{{ made.upid }}"}},
        {"pve_api": {"method": "DELETE", "path": f"/nodes/{node}/lxc/{VMID}"}},
    ])
    assert rc == 0, results
    assert "exitstatus" not in results[0]
    assert results[1]["exitstatus"] == "OK" and results[1]["upid"] == results[0]["upid"]


def test_a_module_step_reports_a_failed_task_in_proxmoxs_words_without_waiting_out_a_timeout(
        minipve, faults, tmp_path):
    """playbooks/tasks/pve_ct.yml: community.proxmox.proxmox notices a failed task only at its own timeout."""
    px = api(minipve.env)
    node = minipve.env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]
    faults(tasks={"vzcreate": "injected: the storage went away"})
    rc, _, output = run_tasks(minipve.env, tmp_path, [{
        "ansible.builtin.include_tasks": str(REPO / "playbooks" / "tasks" / "pve_ct.yml"),
        "vars": {"__ct": {"vmid": VMID, "node": node, "hostname": "probe", "ostemplate": appliance,
                          "storage": "local", "disk": "local:1", "timeout": 2}}}])
    assert rc != 0
    assert f"Proxmox task vzcreate {VMID} failed: injected: the storage went away" in output
    assert all(ct["vmid"] != VMID for ct in px.nodes(node).lxc.get())


def test_an_ssh_wait_that_runs_out_says_whether_the_address_or_ssh_is_missing(minipve, faults, tmp_path):
    """until: ssh on .../interfaces: a stopped CT has no address; with minipve's ssh_unreachable fault it
    shows one on which nothing answers; without the fault the same wait returns the CT's address."""
    px = api(minipve.env)
    node = minipve.env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]
    path = f"/nodes/{node}/lxc/{VMID}/interfaces"
    wait = {"pve_api": {"path": path, "until": "ssh", "timeout": 2}, "ignore_errors": True}
    try:
        create = {"vmid": VMID, "ostemplate": appliance, "storage": "local", "rootfs": "local:1",
                  "net0": "name=eth0,bridge=vmbr0,ip=dhcp"}
        wait_task(px, node, px.nodes(node).lxc.post(**create))
        _, results, _ = run_tasks(minipve.env, tmp_path, [wait])
        assert results[0]["failed"] is True
        assert results[0]["msg"] == f"CT {VMID} has no global IPv4 address after 2 s"
        assert "ipv4" not in results[0]

        wait_task(px, node, px.nodes(node).lxc(VMID).status.start.post())
        rc, results, _ = run_tasks(minipve.env, tmp_path, [{"pve_api": {"path": path, "until": "ssh"}}])
        assert rc == 0, results
        real = results[0]["ipv4"]

        faults(ssh_unreachable=True)
        _, results, _ = run_tasks(minipve.env, tmp_path, [wait])
        shown = results[0].get("ipv4")
        assert shown and shown != real
        assert results[0]["msg"] == f"SSH does not answer on {shown}:22 after 2 s"
    finally:
        faults()
        if any(ct["vmid"] == VMID for ct in px.nodes(node).lxc.get()):
            destroy(px, node, VMID)
