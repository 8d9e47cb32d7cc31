"""Lifecycle jobs through the HTTP API: `ctforge serve` (a real process) runs the real playbooks with
ansible-runner against minipve's real LXC containers.

The canonical chain is built once per session (conftest.canonical_chain) and shared."""

from __future__ import annotations

import concurrent.futures
import re
import time

import pytest

from ctforge import messages

pytestmark = [pytest.mark.host, pytest.mark.slow]


def _resources(job_service) -> list[dict]:
    """Every guest minipve lists, as Proxmox's /cluster/resources gives them."""
    status, reason, body = job_service.pve.request("GET", "/api2/json/cluster/resources?type=vm")
    assert status == 200, reason
    return body["data"]


def test_the_canonical_chain_builds_through_the_api_alone(canonical_chain, job_service) -> None:
    templates = canonical_chain["templates"]
    for name in ("base", "nodejs", "fullstack"):
        assert templates[name]["status"] == "ready", templates[name]
        assert templates[name]["vmid"] is not None and templates[name]["staging_container_ip"] is None
        assert [job["status"] for job in canonical_chain["jobs"][name]] == ["successful"] * len(
            canonical_chain["jobs"][name]), canonical_chain["jobs"][name]
    assert templates["fullstack"]["effective_stacks"] == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert templates["fullstack"]["built_stacks"] == templates["fullstack"]["effective_stacks"]
    assert templates["nodejs"]["built_fingerprint"].startswith("sha256:")
    # The statuses move as described (a watcher reading every 0.1 s; builds take minutes).
    assert canonical_chain["seen"]["base"] == ["provisioning", "staging", "ready"]
    assert canonical_chain["seen"]["nodejs"] == ["provisioning", "staging", "ready"]
    staged = canonical_chain["staged"]
    assert staged["status"] == "staging"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", staged["staging_container_ip"])
    # The CTs are real: Proxmox lists each as a template at the record's VMID.
    by_vmid = {int(r["vmid"]): r for r in _resources(job_service)}
    for name in ("base", "nodejs", "fullstack"):
        assert by_vmid[templates[name]["vmid"]].get("template") == 1


def test_the_stream_shows_the_tasks_as_they_run_and_ends_with_the_job(canonical_chain) -> None:
    streamed = canonical_chain["streamed"]["fullstack"]
    kinds = [kind for kind, _ in streamed]
    tasks = [data["task"] for kind, data in streamed if kind == "playbook_on_task_start"]
    assert kinds[-1] == "end" and streamed[-1][1]["status"] == "successful"
    assert "Install the stacks" in tasks and "Convert the CT into a template" in tasks
    assert tasks.index("Install the stacks") < tasks.index("Convert the CT into a template")
    seqs = [data["seq"] for kind, data in streamed if kind != "end"]
    assert seqs == list(range(1, len(seqs) + 1))  # every event once, in order
    assert any(kind == "runner_on_ok" for kind in kinds)


def test_events_log_and_a_stream_from_an_event_number(canonical_chain, job_service) -> None:
    api = job_service.alice
    job = canonical_chain["jobs"]["fullstack"][0]
    page = api.get(f"/jobs/{job['id']}/events", params={"after": 10, "limit": 5}).json()
    assert [e["seq"] for e in page["data"]] == [11, 12, 13, 14, 15] and page["next"] == 15
    assert page["done"] is False
    rest = list(api.stream(job["id"], after=job["event_count"] - 3))
    assert [data.get("seq") for _, data in rest[:-1]] == [job["event_count"] - 2, job["event_count"] - 1,
                                                          job["event_count"]]
    log = api.get(f"/jobs/{job['id']}/log")
    assert log.status_code == 200 and "PLAY RECAP" in log.text and "TASK [Install the stacks]" in log.text
    assert "\x1b[" not in log.text  # plain output, no terminal colours


def test_the_proxmox_token_is_in_no_file_log_or_event(canonical_chain, job_service) -> None:
    from job_helpers import files_containing

    secret = job_service.env["PROXMOX_TOKEN_SECRET"]
    assert len(secret) >= 16
    state = job_service.state_dir
    assert list((state / "jobs").rglob("command")), "the runs' artifacts are there to be searched"
    assert files_containing(state, secret) == []  # job dirs (artifacts, env, inventory), the db, the log
    api = job_service.alice
    for jobs in canonical_chain["jobs"].values():
        for job in jobs:
            assert secret not in api.get(f"/jobs/{job['id']}/log").text
            assert secret not in api.get(f"/jobs/{job['id']}/events", params={"limit": 1000}).text


def test_one_job_at_a_time_and_destroy_keeps_the_record(canonical_chain, job_service) -> None:
    api = job_service.alice
    base = canonical_chain["templates"]["base"]
    child = api.create("waits-for-parent", parent_id=base["id"], tech_stacks=[])
    first = api.act(child["id"], "provision")
    second = api.post(f"/templates/{child['id']}/provision")
    assert second.status_code == 409
    assert second.json()["detail"] in {messages.JOB_RUNNING_ON_TEMPLATE.format(
        name="waits-for-parent", kind="provision", status=status, job_id=first["id"])
        for status in ("queued", "running")}
    finished = api.wait(first["id"])
    assert finished["status"] == "successful" and api.template(child["id"])["status"] == "staging"
    kept = api.http.delete(f"/templates/{child['id']}")  # its CT would be left without an owner
    assert kept.status_code == 409 and kept.json()["detail"] == messages.DELETE_CT_EXISTS.format(
        name="waits-for-parent", vmid=api.template(child["id"])["vmid"], id=child["id"])
    # bob may not act on alice's template
    assert job_service.bob.post(f"/templates/{child['id']}/destroy").status_code == 403
    # finalize needs staging; destroy frees the VMID and keeps the record
    assert api.post(f"/templates/{base['id']}/finalize").status_code == 409
    vmid = api.template(child["id"])["vmid"]
    destroyed = api.wait(api.act(child["id"], "destroy")["id"])
    assert destroyed["status"] == "successful"
    record = api.template(child["id"])
    assert record["status"] == "destroyed" and record["vmid"] is None
    assert vmid not in {int(r["vmid"]) for r in _resources(job_service)}
    assert api.http.delete(f"/templates/{child['id']}").status_code == 204  # now the record may go
    # a parent with live children cannot be destroyed
    refused = api.post(f"/templates/{base['id']}/destroy")
    assert refused.status_code == 409 and "nodejs" in refused.json()["detail"]


def test_twenty_builds_at_once_on_a_bounded_pool(canonical_chain, job_service) -> None:
    api = job_service.alice
    base = canonical_chain["templates"]["base"]
    children = [api.create(f"many-{n:02d}", parent_id=base["id"], tech_stacks=[]) for n in range(20)]
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        jobs = list(pool.map(lambda t: api.act(t["id"], "build"), children))
        ended = list(pool.map(lambda j: api.wait(j["id"]), jobs))
    records = [api.template(t["id"]) for t in children]
    vmids = [r["vmid"] for r in records]
    assert len(set(vmids)) == 20 and None not in vmids
    for record, job in zip(records, ended, strict=True):
        assert job["status"] in ("successful", "failed"), job
        assert (record["status"], job["status"]) in (("ready", "successful"), ("error", "failed")), record
        if record["status"] == "error":
            assert record["error_message"] and job["failed_step"]
    running = api.get("/jobs", params={"status": "running"}).json()["count"]
    assert running == 0
    not_ready = [(r["name"], r["status"], r["error_message"]) for r in records if r["status"] != "ready"]
    assert not_ready == []
    # clean up: twenty destroys, at once as well
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        gone = list(pool.map(lambda t: api.wait(api.act(t["id"], "destroy")["id"]), children))
    assert [j["status"] for j in gone] == ["successful"] * 20


# --- a service killed in the middle of a build ------------------------------------------------------

def _processes_mentioning(text: str) -> list[str]:
    """The processes whose command line holds `text` (the dead run's ansible-playbook and its
    workers would), as "PID: command line"."""
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(proc.name + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _cts_in_range(job_service) -> set[int]:
    from job_helpers import JOB_TEMPLATE_VMIDS

    first, last = (int(n) for n in JOB_TEMPLATE_VMIDS.split("-"))
    return {int(r["vmid"]) for r in _resources(job_service) if first <= int(r["vmid"]) <= last}


def _owned_vmids(api) -> set[int]:
    records = api.get("/templates", params={"limit": 500}).json()["data"]
    return {r["vmid"] for r in records if r["vmid"] is not None and r["status"] != "destroyed"}


# (the task the run is in when the service is killed, the playbook it belongs to)
KILL_POINTS = (
    ("Ensure the staging CT exists as a clone of its parent", "provision"),
    ("Wait for the staging CT's IP and SSH", "provision"),
    ("Wait for the clone's IP and SSH", "finalize"),  # the smoke clone exists: it must be removed
)


def test_a_service_killed_mid_build_fails_the_job_and_leaves_nothing_behind(canonical_chain,
                                                                          job_service) -> None:
    api, service = job_service.alice, job_service.service
    base = canonical_chain["templates"]["base"]
    child = api.create("survives-crashes", parent_id=base["id"], tech_stacks=[])
    job = api.act(child["id"], "build")
    tried = []
    for task, playbook in KILL_POINTS:
        api.wait_for_task(job["id"], task)
        service.kill()
        job_dir = str(job_service.state_dir / "jobs" / job["id"])
        service.start()  # reaps its dead self at start, before it serves
        dead = api.job(job["id"])
        assert dead["status"] == "failed" and dead["error"] == messages.JOB_SERVICE_RESTARTED, dead
        assert dead["playbook"] == playbook
        record = api.template(child["id"])
        assert record["status"] == "error" and record["error_message"] == messages.JOB_SERVICE_RESTARTED
        # no container that no record owns (the smoke clone is destroyed), and no run goes on
        assert _cts_in_range(job_service) <= _owned_vmids(api)
        assert _processes_mentioning(job_dir) == []
        tried.append(task)
        job = api.act(child["id"], "retry")
        assert job["steps"] == (["provision", "finalize"] if playbook == "provision" else ["finalize"])
    finished = api.wait(job["id"])
    assert finished["status"] == "successful", finished
    assert api.template(child["id"])["status"] == "ready"
    assert len(tried) == len(KILL_POINTS) == 3
    assert api.wait(api.act(child["id"], "destroy")["id"])["status"] == "successful"


# --- a failure at each step, injected by minipve's fault switch ---------------------------------------

# (step, fault settings, the playbook the failure is in); each is retried into the next one
PROVISION_FAULTS = (
    ("clone", {"endpoints": {"POST /nodes/{node}/lxc/{vmid}/clone": "fault: clone refused"}}),
    ("start", {"endpoints": {"POST /nodes/{node}/lxc/{vmid}/status/start": "fault: start refused"}}),
    ("ip", {"endpoints": {"GET /nodes/{node}/lxc/{vmid}/interfaces": "fault: no interfaces"}}),
)  # ssh: on a service with a short SSH wait (test_install_and_ssh_failures_...)
FINALIZE_FAULTS = (
    ("stop", {"endpoints": {"POST /nodes/{node}/lxc/{vmid}/status/shutdown": "fault: shutdown refused"}}),
    ("convert", {"endpoints": {"POST /nodes/{node}/lxc/{vmid}/template": "fault: convert refused"}}),
    ("smoke clone", {"endpoints": {"POST /nodes/{node}/lxc/{vmid}/clone": "fault: smoke clone refused"}}),
)


def _fail_with(api, job_service, template_id, action, step, fault):
    job_service.pve.faults(**fault)
    try:
        job = api.wait(api.act(template_id, action)["id"])
    finally:
        job_service.pve.faults()
    record = api.template(template_id)
    assert job["status"] == "failed" and job["failed_step"] == step, (step, job)
    assert record["status"] == "error" and record["error_message"] == job["error"]
    assert record["error_message"].startswith(f"{step} failed: "), record["error_message"]
    texts = [t for f in fault.values() if isinstance(f, dict) for t in f.values()]
    assert all(text in record["error_message"] for text in texts), record["error_message"]
    assert _cts_in_range(job_service) <= _owned_vmids(api)  # nothing left that no record owns
    return job


def test_a_failure_at_each_step_names_it_and_retry_completes(canonical_chain, job_service) -> None:
    api = job_service.alice
    base = canonical_chain["templates"]["base"]
    child = api.create("faulty", parent_id=base["id"], tech_stacks=[])
    action = "build"
    for step, fault in PROVISION_FAULTS:
        job = _fail_with(api, job_service, child["id"], action, step, fault)
        assert job["playbook"] == "provision"
        action = "retry"
    staged = api.wait(api.act(child["id"], "retry")["id"])
    assert staged["status"] == "successful" and api.template(child["id"])["status"] == "ready"
    # the finalize steps: a second child, provisioned, then finalized into each fault
    other = api.create("faulty-finalize", parent_id=base["id"], tech_stacks=[])
    assert api.wait(api.act(other["id"], "provision")["id"])["status"] == "successful"
    action = "finalize"
    for step, fault in FINALIZE_FAULTS:
        job = _fail_with(api, job_service, other["id"], action, step, fault)
        assert job["playbook"] == "finalize"
        action = "retry"
    done = api.wait(api.act(other["id"], "retry")["id"])
    assert done["status"] == "successful" and api.template(other["id"])["status"] == "ready"
    for template in (child, other):
        assert api.wait(api.act(template["id"], "destroy")["id"])["status"] == "successful"


def test_cancel_stops_a_running_job_and_the_template_says_who(canonical_chain, job_service) -> None:
    api = job_service.alice
    base = canonical_chain["templates"]["base"]
    child = api.create("canceled", parent_id=base["id"], tech_stacks=[])
    job = api.act(child["id"], "build")
    api.wait_for_task(job["id"], "Wait for the staging CT's IP and SSH")
    reply = api.post(f"/jobs/{job['id']}/cancel")
    assert reply.status_code == 202 and reply.json()["cancel_requested_by"] == "alice"
    ended = api.wait(job["id"])
    assert ended["status"] == "canceled" and ended["error"] == messages.JOB_CANCELED_BY.format(user="alice")
    record = api.template(child["id"])
    assert record["status"] == "error" and record["error_message"] == "canceled by alice"
    again = api.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert _cts_in_range(job_service) <= _owned_vmids(api)
    assert api.wait(api.act(child["id"], "destroy")["id"])["status"] == "successful"


def test_rebuild_replaces_the_ct_and_keeps_the_record_ready(canonical_chain, job_service) -> None:
    from job_helpers import StatusWatch

    api = job_service.alice
    base = canonical_chain["templates"]["base"]
    refused = api.post(f"/templates/{base['id']}/rebuild")  # linked clones use base's CT
    assert refused.status_code == 409 and "nodejs" in refused.json()["detail"]
    child = api.create("rebuilt", parent_id=base["id"], tech_stacks=[])
    assert api.wait(api.act(child["id"], "build")["id"])["status"] == "successful"
    before = api.template(child["id"])
    edited = api.http.patch(f"/templates/{child['id']}", json={"env_vars": {"TEAM": "forge"}})
    assert edited.status_code == 200 and edited.json()["needs_rebuild"] is True
    with StatusWatch(api, child["id"]) as watch:
        job = api.wait(api.act(child["id"], "rebuild")["id"])
    assert job["status"] == "successful" and job["steps"] == ["provision", "finalize", "replace"], job
    assert watch.seen == ["ready"]  # the old CT served until the new one replaced it
    after = api.template(child["id"])
    assert after["vmid"] != before["vmid"] and after["needs_rebuild"] is False
    assert after["ready_at"] > before["ready_at"]
    on_cluster = {int(r["vmid"]): r for r in _resources(job_service)}
    assert before["vmid"] not in on_cluster and on_cluster[after["vmid"]].get("template") == 1
    assert _cts_in_range(job_service) <= _owned_vmids(api)
    assert api.wait(api.act(child["id"], "destroy")["id"])["status"] == "successful"


def test_install_and_ssh_failures_name_their_step(canonical_chain, job_service, tmp_path) -> None:
    """A service whose CTs get an apt proxy that refuses every connection (a closed port on
    minipve's own bridge), so apt really fails in the install step; and a 20-s SSH wait, so
    minipve's ssh_unreachable fails the SSH step quickly. Retry completes the SSH case."""
    import ipaddress

    from job_helpers import own_service

    gateway = ipaddress.ip_network(job_service.pve.subnet)[1]
    base = canonical_chain["templates"]["base"]
    with own_service(tmp_path, job_service.pve, base, job_service.state_dir, template_vmids="7450-7469",
                     workspace_vmids="7970-7989", apt_proxy=f"http://{gateway}:9",
                     ssh_timeout_seconds="20") as api:
        child = api.create("no-apt", parent_id=base["id"], tech_stacks=["redis"])
        job = api.wait(api.act(child["id"], "build")["id"])
        record = api.template(child["id"])
        assert job["status"] == "failed" and job["failed_step"] == "install", job
        assert record["status"] == "error" and record["error_message"].startswith("install failed: ")
        assert f"{gateway}" in record["error_message"] or "apt" in record["error_message"].lower()
        cts = {int(r["vmid"]) for r in _resources(job_service) if 7450 <= int(r["vmid"]) <= 7469}
        assert cts == {record["vmid"]}  # only the record's own CT, kept for a retry
        assert api.wait(api.act(child["id"], "destroy")["id"])["status"] == "successful"
        # SSH: the CT runs, but the address Proxmox reports answers nobody
        quiet = api.create("no-ssh", parent_id=base["id"], tech_stacks=[])
        job_service.pve.faults(ssh_unreachable=True)
        try:
            job = api.wait(api.act(quiet["id"], "build")["id"])
        finally:
            job_service.pve.faults()
        record = api.template(quiet["id"])
        assert job["status"] == "failed" and job["failed_step"] == "ssh", job
        assert record["error_message"].startswith("ssh failed: SSH does not answer on "), record
        assert api.wait(api.act(quiet["id"], "retry")["id"])["status"] == "successful"
        assert api.template(quiet["id"])["status"] == "ready"
        assert api.wait(api.act(quiet["id"], "destroy")["id"])["status"] == "successful"


def test_a_run_that_hangs_ends_at_the_job_timeout(canonical_chain, job_service, tmp_path) -> None:
    """minipve makes every task wait 30 s; the service's job timeout (20 s) ends the run. The timeout
    leaves the clean-up's destroy job, which also runs under it, a few times what it takes on a busy
    machine."""
    from job_helpers import own_service

    base = canonical_chain["templates"]["base"]
    with own_service(tmp_path, job_service.pve, base, job_service.state_dir, template_vmids="7470-7479",
                     workspace_vmids="7990-7999", job_timeout_seconds="20") as api:
        child = api.create("hangs", parent_id=base["id"], tech_stacks=[])
        job_service.pve.faults(slow=30)
        try:
            job = api.wait(api.act(child["id"], "build")["id"])
        finally:
            job_service.pve.faults()
        record = api.template(child["id"])
        assert job["status"] == "timeout" and job["failed_step"] == "clone", job
        assert record["status"] == "error"
        assert record["error_message"] == messages.JOB_TIMED_OUT.format(seconds=20, step="clone")
        # minipve's clone task goes on after the run was ended (as Proxmox's would): the CT it makes
        # is the record's own; wait for the task to end, then destroy it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entry = next((r for r in _resources(job_service) if int(r["vmid"]) == record["vmid"]), None)
            if entry is not None and not entry.get("lock"):
                break
            time.sleep(0.5)  # the task's own wait; the deadline bounds it
        assert api.wait(api.act(child["id"], "destroy")["id"])["status"] == "successful"
        assert record["vmid"] not in {int(r["vmid"]) for r in _resources(job_service)}


def test_a_subscriber_hears_of_the_job_and_the_status_it_moved(canonical_chain, job_service) -> None:
    import json

    from test_webhooks import Receiver, verified

    api = job_service.alice
    receiver = Receiver()
    try:
        events = ["job.finished", "template.status"]
        made = api.post("/webhooks", json={"url": receiver.url, "events": events})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        record = api.create("heard-of", base_ct_template="debian-12-standard", tech_stacks=[])
        job = api.wait(api.act(record["id"], "destroy")["id"])
        got = receiver.wait_for(2)
        bodies = [json.loads(r.body) for r in got]
        assert all(verified(secret, r) for r in got)
        by_event = {b["event"]: b["data"] for b in bodies}
        moved, finished = by_event["template.status"], by_event["job.finished"]
        assert (moved["from"], moved["to"], moved["job_id"]) == ("pending", "destroyed", job["id"])
        assert (finished["id"], finished["status"]) == (job["id"], "successful")
        assert api.http.delete(f"/webhooks/{made.json()['id']}").status_code == 204
    finally:
        receiver.close()
