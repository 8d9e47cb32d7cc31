"""Workspaces through the HTTP API on minipve: `ctforge serve` runs playbooks/workspace.yml (and
workspace_power.yml, destroy.yml) with ansible-runner against real LXC containers, cloned from the
session's canonical chain (conftest.canonical_chain) and a python leaf built here."""

from __future__ import annotations

import concurrent.futures
import shlex
import subprocess
from pathlib import Path

import pytest

from ctforge import messages
from ctforge.catalog import load_catalog

pytestmark = [pytest.mark.host, pytest.mark.slow]

FULL = ["nodejs", "claude_cli", "postgresql", "redis", "python"]
DEV_USER = "kobozo"


@pytest.fixture(scope="module")
def owner_key(tmp_path_factory) -> tuple[Path, str]:
    """A person's own key pair (not the build key): (private key path, public key line)."""
    key = tmp_path_factory.mktemp("owner-key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(key)],
                   check=True)
    return key, key.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def python_template(canonical_chain, job_service) -> dict:
    """A python leaf of base, so that the family has a template made for {python}."""
    api = job_service.alice
    base = canonical_chain["templates"]["base"]
    record = api.create("python", parent_id=base["id"], tech_stacks=["python"])
    job = api.wait(api.act(record["id"], "build")["id"])
    assert job["status"] == "successful", job
    return api.template(record["id"])


def ssh(ip: str, key: Path, user: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
         "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "IdentitiesOnly=yes",
         f"{user}@{ip}", command], capture_output=True, text=True, timeout=120, check=False)


def _on_cluster(job_service) -> set[int]:
    status, reason, body = job_service.pve.request("GET", "/api2/json/cluster/resources?type=vm")
    assert status == 200, reason
    return {int(r["vmid"]) for r in body["data"]}


def _claims(job_service) -> set[int]:
    claims = job_service.alice.get("/vmids", params={"limit": 1000}).json()["data"]
    return {c["vmid"] for c in claims if c["kind"] == "workspace"}


def test_a_workspace_for_five_stacks_comes_from_fullstack_with_only_python_on_top(
        canonical_chain, job_service, owner_key) -> None:
    api = job_service.alice
    key, public = owner_key
    workspace, job = api.make_workspace("dev-full", stacks=FULL, ssh_public_keys=[public])
    assert workspace["template_name"] == "fullstack" and workspace["installed_stacks"] == ["python"]
    # the address shows as soon as the owner can log in, while python still installs
    early = api.wait_for_workspace(workspace["id"],
                                   lambda w: w["ip"] or w["status"] not in ("pending", "provisioning"))
    assert early["status"] == "provisioning" and early["ip"] and early["dev_user"] == DEV_USER, early
    assert ssh(early["ip"], key, early["dev_user"], "true").returncode == 0
    streamed = list(api.stream(job["id"]))
    assert streamed[-1][0] == "end" and streamed[-1][1]["status"] == "successful", api.job(job["id"])
    tasks = [d["task"] for kind, d in streamed if kind == "playbook_on_task_start"]
    assert any("python" in str(t).lower() for t in tasks), tasks  # the python role ran
    record = api.workspace(workspace["id"])
    assert record["status"] == "running" and record["ip"] and record["dev_user"] == DEV_USER, record
    assert record["template_stacks"] == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert record["installed_stacks"] == ["python"]
    assert record["vmid"] in range(7900, 8000)
    # the owner gets in as the dev user with their own key, and every stack answers there, in the
    # login shell an interactive session gets (the npm prefix's bin is on a login shell's PATH)
    catalog = load_catalog()
    for stack in FULL:
        verify = ssh(record["ip"], key, DEV_USER, f"bash -lc {shlex.quote(catalog.get(stack).verify)}")
        assert verify.returncode == 0, (stack, verify.stdout, verify.stderr)
    assert ssh(record["ip"], key, "root", "true").returncode == 255  # their key is not root's
    # python comes without what its packages only recommend (pipx's docs, pip's C toolchain), and
    # its venv still gets pip: the verify above made one
    status = ssh(record["ip"], key, DEV_USER,
                 r"dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' pipx mkdocs build-essential")
    installed = {line.split()[0] for line in status.stdout.splitlines() if line.split()[1:] == ["ii"]}
    assert "pipx" in installed and not installed & {"mkdocs", "build-essential"}, status
    # stop, start (a new lease may bring a new address), destroy: each a job
    stopped = api.wait(api.act_on_workspace(workspace["id"], "stop")["id"])
    assert stopped["status"] == "successful", stopped
    halted = api.workspace(workspace["id"])
    assert halted["status"] == "stopped" and halted["ip"] is None and halted["dev_user"] == DEV_USER
    started = api.wait(api.act_on_workspace(workspace["id"], "start")["id"])
    assert started["status"] == "successful", started
    again = api.workspace(workspace["id"])
    assert again["status"] == "running" and ssh(again["ip"], key, DEV_USER, "true").returncode == 0
    destroyed = api.wait(api.act_on_workspace(workspace["id"], "destroy")["id"])
    assert destroyed["status"] == "successful", destroyed
    assert api.get(f"/workspaces/{workspace['id']}").status_code == 404
    assert record["vmid"] not in _on_cluster(job_service) and record["vmid"] not in _claims(job_service)


def test_a_python_workspace_comes_from_the_python_template(python_template, job_service, owner_key) -> None:
    api = job_service.alice
    planned = api.post("/workspaces/plan", json={"name": "py", "stacks": ["python"],
                                                 "ssh_public_keys": [owner_key[1]]}).json()
    assert (planned["template_name"], planned["install"], planned["extra"]) == ("python", [], [])
    workspace, job = api.make_workspace("py", stacks=["python"], ssh_public_keys=[owner_key[1]])
    assert workspace["template_id"] == python_template["id"] and workspace["installed_stacks"] == []
    assert api.wait(job["id"])["status"] == "successful"
    record = api.workspace(workspace["id"])
    assert record["status"] == "running"
    assert ssh(record["ip"], owner_key[0], DEV_USER, "python3 --version").returncode == 0
    assert api.wait(api.act_on_workspace(workspace["id"], "destroy")["id"])["status"] == "successful"


def test_twenty_workspaces_at_once_get_twenty_vmids_and_give_them_back(python_template, job_service,
                                                                      owner_key) -> None:
    api = job_service.alice
    body = {"stacks": ["python"], "ssh_public_keys": [owner_key[1]]}
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        made = list(pool.map(lambda n: api.make_workspace(f"many-{n:02d}", **body), range(20)))
        ended = list(pool.map(lambda m: api.wait(m[1]["id"]), made))
    vmids = [workspace["vmid"] for workspace, _ in made]
    assert len(set(vmids)) == 20 and set(vmids) <= _on_cluster(job_service)
    assert [job["status"] for job in ended] == ["successful"] * 20, [j["error"] for j in ended]
    records = [api.workspace(workspace["id"]) for workspace, _ in made]
    assert {r["status"] for r in records} == {"running"}
    assert len({r["ip"] for r in records}) == 20
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        gone = list(pool.map(lambda m: api.wait(api.act_on_workspace(m[0]["id"], "destroy")["id"]), made))
    assert [job["status"] for job in gone] == ["successful"] * 20
    assert not set(vmids) & _on_cluster(job_service) and not set(vmids) & _claims(job_service)


def test_a_workspace_job_killed_with_the_service_is_taken_up_and_a_canceled_one_cleaned_up(
        python_template, job_service, owner_key) -> None:
    api, service = job_service.alice, job_service.service
    key, public = owner_key
    body = {"stacks": ["python", "redis"], "ssh_public_keys": [public], "template_id": python_template["id"]}
    workspace, job = api.make_workspace("survivor", **body)
    api.wait_for_task(job["id"], "Ensure redis-server is installed")  # installing what the template lacks
    service.kill()
    service.start()  # reaps its dead self at start, before it serves
    dead = api.job(job["id"])
    assert dead["status"] == "failed" and dead["error"] == messages.JOB_SERVICE_RESTARTED, dead
    record = api.workspace(workspace["id"])
    assert record["status"] == "error" and record["error_message"] == messages.JOB_SERVICE_RESTARTED
    assert record["vmid"] in _on_cluster(job_service)  # its CT, the record's own, is kept for the retry
    retried = api.wait(api.act_on_workspace(workspace["id"], "retry")["id"])
    assert retried["status"] == "successful", retried
    again = api.workspace(workspace["id"])
    assert again["status"] == "running" and again["installed_stacks"] == ["redis"], again
    assert ssh(again["ip"], key, DEV_USER, "bash -lc 'redis-cli --version'").returncode == 0

    second, job = api.make_workspace("canceled", **body)
    api.wait_for_task(job["id"], "Ensure redis-server is installed")
    assert api.post(f"/jobs/{job['id']}/cancel").status_code == 202
    ended = api.wait(job["id"])
    assert ended["status"] == "canceled" and ended["error"] == messages.JOB_CANCELED_BY.format(user="alice")
    canceled = api.workspace(second["id"])
    assert canceled["status"] == "error" and canceled["error_message"] == "canceled by alice"
    for made in (workspace, second):
        assert api.wait(api.act_on_workspace(made["id"], "destroy")["id"])["status"] == "successful"
    assert not {workspace["vmid"], second["vmid"]} & (_on_cluster(job_service) | _claims(job_service))


def test_a_template_with_workspaces_goes_only_with_force_and_takes_them(python_template, job_service,
                                                                       owner_key) -> None:
    """Last of the module: the python template goes."""
    api = job_service.alice
    workspace, job = api.make_workspace("on-python", stacks=["python"], ssh_public_keys=[owner_key[1]],
                                        template_id=python_template["id"])
    assert api.wait(job["id"])["status"] == "successful"
    refused = api.post(f"/templates/{python_template['id']}/destroy")
    assert refused.status_code == 409
    assert refused.json()["detail"] == messages.TEMPLATE_HAS_WORKSPACES.format(name="python",
                                                                             workspaces="'on-python'")
    forced = api.post(f"/templates/{python_template['id']}/destroy", params={"force": "true"})
    assert forced.status_code == 202, forced.text
    assert api.wait(forced.json()["id"])["status"] == "successful"
    assert api.get(f"/workspaces/{workspace['id']}").status_code == 404
    assert api.template(python_template["id"])["status"] == "destroyed"
    assert not {workspace["vmid"], python_template["vmid"]} & _on_cluster(job_service)
