"""Workspaces through the API, on SQLite and PostgreSQL (no containers: the create job is queued,
not run): which template a request picks, the record and job it makes, who sees it, the actions'
rules, and a template that workspaces are made from. The real builds are in test_workspaces.py."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ctforge import messages
from ctforge.db.models import Job, Workspace
from service_helpers import ApiClient, service_settings

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNhbmFyeWNh alice@laptop"
FINGERPRINT = "SHA256:" + "A" * 43
FULL = ["nodejs", "claude_cli", "postgresql", "redis", "python"]


def ready(api: ApiClient, who: str, name: str, *, keyless: bool = False, **fields) -> dict:
    """A template record made ready as a build would leave it (trusting the build key unless keyless)."""
    record = api.create(who, name, **fields)
    api.move(record["id"], "provisioning", "staging", "ready",
             build_key_fingerprint=None if keyless else FINGERPRINT)
    return api.get(f"/templates/{record['id']}", who).json()


@pytest.fixture
def family(api: ApiClient) -> dict[str, dict]:
    """base → nodejs → fullstack, and a python leaf of base: alice's, base and nodejs the defaults."""
    base = ready(api, "alice", "base", is_default=True)
    nodejs = ready(api, "alice", "nodejs", parent_id=base["id"], tech_stacks=["nodejs", "claude_cli"],
                   is_default=True)
    fullstack = ready(api, "alice", "fullstack", parent_id=nodejs["id"], tech_stacks=["postgresql", "redis"])
    python = ready(api, "alice", "python", parent_id=base["id"], tech_stacks=["python"])
    return {"base": base, "nodejs": nodejs, "fullstack": fullstack, "python": python}


def make(api: ApiClient, who: str, name: str, stacks: list[str], **body):
    """POST /workspaces with the test's key."""
    body = {"name": name, "stacks": stacks, "ssh_public_keys": [KEY], **body}
    return api.post("/workspaces", who, json=body)


def plan(api: ApiClient, who: str = "alice", **body) -> dict:
    answer = api.post("/workspaces/plan", who, json={"name": "w", "ssh_public_keys": [KEY], **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_template_that_covers_the_most_is_picked_and_only_the_rest_installed(api, family) -> None:
    full = plan(api, stacks=FULL)
    assert full["template_name"] == "fullstack"
    assert full["install"] == ["python"] and full["extra"] == []
    assert full["covered"] == ["nodejs", "claude_cli", "postgresql", "redis"]
    # python alone: the python leaf covers it and carries nothing else; fullstack covers none of it
    assert plan(api, stacks=["python"])["template_name"] == "python"
    # requirements come along: claude_cli needs nodejs, which nodejs covers with nothing extra
    claude = plan(api, stacks=["claude_cli"])
    assert claude["template_name"] == "nodejs" and claude["wanted"] == ["nodejs", "claude_cli"]
    # redis: fullstack covers it (with three extra), the others do not cover it at all
    assert plan(api, stacks=["redis"])["template_name"] == "fullstack"


def test_a_tie_goes_to_the_fewest_extra_stacks_then_a_default_then_your_own(api, family) -> None:
    # devtools: nobody covers it; base carries nothing extra
    assert plan(api, stacks=["devtools"])["template_name"] == "base"
    # bob's own python leaf ties with alice's python leaf; neither is a default: bob's own wins for bob
    # (he may use alice's only if it is a default, so make it one to have a real tie)
    api.patch(f"/templates/{family['python']['id']}", "alice", json={"is_default": True})
    bobs = ready(api, "bob", "bob-python", parent_id=family["base"]["id"], tech_stacks=["python"])
    assert plan(api, "bob", stacks=["python"])["template_name"] == "python"  # the default first
    api.patch(f"/templates/{family['python']['id']}", "alice", json={"is_default": False})
    assert plan(api, "bob", stacks=["python"])["template_id"] == bobs["id"]  # alice's is not his to use


def test_project_files_give_the_stacks_and_say_what_gave_them_away(api, family) -> None:
    files = {"package.json": '{"name": "app", "engines": {"node": ">=20"}}',
             "docker-compose.yml": "services:\n  cache:\n    image: redis:7\n  db:\n    image: postgres:16\n",
             "go.mod": "module example.com/app\n"}
    answer = plan(api, project_files=files)
    assert answer["template_name"] == "fullstack" and answer["install"] == []
    assert set(answer["wanted"]) == {"nodejs", "redis", "postgresql"}
    detected = {s["id"]: s["evidence"] for s in answer["detected"]["stacks"]}
    assert any(e["file"] == "docker-compose.yml" for e in detected["redis"])
    assert any(u["file"] == "go.mod" for u in answer["detected"]["unknown"])


def test_a_large_lock_file_fits_and_a_larger_body_is_refused_by_its_own_cap(api, family) -> None:
    # a lock file of a real project is often far over the 64 KiB every other body gets
    lock = json.dumps({"name": "app", "lockfileVersion": 3,
                       "packages": {f"node_modules/p{n}": {"version": "1.0.0"} for n in range(20_000)}})
    assert len(lock) > 10 * api.settings.max_body_bytes
    files = {"package.json": '{"name": "app"}', "package-lock.json": lock}
    answer = plan(api, project_files=files)
    assert answer["wanted"] == ["nodejs"]
    assert any(e["file"] == "package-lock.json" for e in answer["detected"]["stacks"][0]["evidence"])
    limit = api.settings.max_project_bytes
    files["package-lock.json"] = "x" * (limit + 1)
    refused = make(api, "alice", "huge", [], project_files=files)
    assert refused.status_code == 413
    assert refused.json()["detail"] == messages.BODY_TOO_LARGE.format(limit=limit,
                                                                    setting="CTFORGE_MAX_PROJECT_BYTES")
    assert api.get("/workspaces", "alice").json()["count"] == 0


def test_create_claims_a_workspace_vmid_and_queues_its_job(api, family) -> None:
    answer = make(api, "alice", "dev-1", FULL)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    workspace, job = body["workspace"], body["job"]
    assert answer.headers["Location"].endswith(f"/workspaces/{workspace['id']}")
    assert workspace["status"] == "pending" and workspace["template_name"] == "fullstack"
    assert workspace["vmid"] == api.settings.workspace_vmids.first  # 100 by default
    assert workspace["installed_stacks"] == ["python"] and workspace["ssh_public_keys"] == [KEY]
    assert workspace["template_stacks"] == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert (job["kind"], job["status"], job["steps"]) == ("create", "queued", ["workspace"])
    assert (job["workspace_id"], job["workspace_name"], job["template_name"]) == (
        workspace["id"], "dev-1", "fullstack")
    assert api.get(f"/workspaces/{workspace['id']}", "alice").json() == workspace
    # the template's own actions are not blocked by a workspace's job
    assert api.post(f"/templates/{family['python']['id']}/destroy", "alice").status_code == 202


def test_bad_requests_are_refused_and_leave_nothing(api, family) -> None:
    def refused(who: str, body: dict, status: int, detail: str | None = None) -> None:
        answer = api.post("/workspaces", who, json=body)
        assert answer.status_code == status, answer.text
        if detail is not None:
            assert answer.json()["detail"] == detail

    refused("alice", {"name": "w", "stacks": ["python"], "ssh_public_keys": []}, 422)
    refused("alice", {"name": "w", "stacks": ["python"], "ssh_public_keys": ["ssh-ed25519 not-a-key"]}, 422)
    refused("alice", {"name": "Not A Hostname", "stacks": ["python"], "ssh_public_keys": [KEY]}, 422)
    refused("alice", {"name": "w", "stacks": ["cobol"], "ssh_public_keys": [KEY]}, 422)
    refused("alice", {"name": "w", "ssh_public_keys": [KEY]}, 422, messages.WORKSPACE_NEEDS_STACKS)
    refused("alice", {"name": "w", "stacks": ["python"], "ssh_public_keys": [KEY],
                      "template_id": str(uuid.uuid4())}, 404)
    with api.db.reading() as session:
        assert session.query(Workspace).count() == 0 and session.query(Job).count() == 0
    make(api, "alice", "w", ["python"])
    refused("alice", {"name": "w", "stacks": ["python"], "ssh_public_keys": [KEY]}, 409,
            messages.WORKSPACE_NAME_TAKEN.format(name="w"))


def test_a_named_template_must_be_ready_and_reachable(api, family) -> None:
    staging = api.create("alice", "staging", parent_id=family["base"]["id"])
    api.move(staging["id"], "provisioning", "staging")
    keyless = ready(api, "alice", "keyless", parent_id=family["base"]["id"], keyless=True)
    body = {"name": "w", "stacks": ["python"], "ssh_public_keys": [KEY]}
    answer = api.post("/workspaces", "alice", json={**body, "template_id": staging["id"]})
    assert answer.status_code == 409
    assert answer.json()["detail"] == messages.WORKSPACE_TEMPLATE_NOT_READY.format(name="staging",
                                                                                 status="staging")
    answer = api.post("/workspaces", "alice", json={**body, "template_id": keyless["id"]})
    assert answer.status_code == 409
    assert answer.json()["detail"] == messages.WORKSPACE_TEMPLATE_KEYLESS.format(name="keyless")
    # picked, the keyless leaf never wins (it would cover as much as base)
    assert plan(api, stacks=["devtools"])["template_name"] == "base"


def test_without_a_ready_template_the_answer_says_to_build_one(api) -> None:
    api.create("carol", "never-built")
    answer = make(api, "carol", "w", ["python"])
    assert answer.status_code == 409 and answer.json()["detail"] == messages.WORKSPACE_NO_TEMPLATE


def test_a_workspace_is_its_owners_and_the_admins(api, family) -> None:
    api.patch(f"/templates/{family['fullstack']['id']}", "alice", json={"is_default": True})
    made = make(api, "bob", "bobs", ["redis"])
    workspace = made.json()["workspace"]
    assert api.get(f"/workspaces/{workspace['id']}", "carol").status_code == 404
    assert api.get(f"/workspaces/{workspace['id']}", "alice").status_code == 200  # an admin
    assert api.get("/workspaces", "carol").json()["count"] == 0
    assert [w["name"] for w in api.get("/workspaces", "bob").json()["data"]] == ["bobs"]
    # its job too: carol cannot read it, though she sees the (default) template it comes from
    job = made.json()["job"]
    assert api.get(f"/jobs/{job['id']}", "carol").status_code == 404
    assert job["id"] not in {j["id"] for j in api.get("/jobs", "carol").json()["data"]}
    assert job["id"] in {j["id"] for j in api.get("/jobs", "bob").json()["data"]}
    assert api.post(f"/workspaces/{workspace['id']}/destroy", "carol").status_code == 404


def test_actions_take_their_statuses_and_one_job_at_a_time(api, family) -> None:
    made = make(api, "alice", "w", ["python"])
    workspace, job = made.json()["workspace"], made.json()["job"]
    answer = api.post(f"/workspaces/{workspace['id']}/start", "alice")
    assert answer.status_code == 409  # its create job runs first
    assert answer.json()["detail"] == messages.WORKSPACE_JOB_RUNNING.format(
        name="w", kind="create", status="queued", job_id=job["id"])
    assert api.post(f"/workspaces/{workspace['id']}/cancel", "alice").status_code == 422  # no such action
    with api.db.writing() as session:  # the job ends as a run that failed would end it
        from ctforge.records import jobs as job_records

        row = session.get(Job, uuid.UUID(job["id"]))
        job_records.finish(session, row, "failed", failed_step="clone", error="clone failed: refused")
        job_records.fail_record(session, row, "clone failed: refused")
    failed = api.get(f"/workspaces/{workspace['id']}", "alice").json()
    assert failed["status"] == "error" and failed["error_message"] == "clone failed: refused"
    answer = api.post(f"/workspaces/{workspace['id']}/stop", "alice")
    assert answer.status_code == 409
    assert answer.json()["detail"] == messages.WORKSPACE_ACTION_NEEDS_STATUS.format(
        action="stop", name="w", status="error", wanted="running")
    retry = api.post(f"/workspaces/{workspace['id']}/retry", "alice")
    assert retry.status_code == 202 and retry.json()["steps"] == ["workspace"]
    assert api.get(f"/workspaces/{workspace['id']}", "alice").json()["status"] == "provisioning"


def test_a_template_with_workspaces_is_kept_unless_destroyed_with_force(api, family) -> None:
    python = family["python"]
    made = make(api, "alice", "w", ["python"])
    assert made.json()["workspace"]["template_id"] == python["id"]
    with api.db.writing() as session:  # the create job ended well
        from ctforge.records import jobs as job_records

        job_records.finish(session, session.get(Job, uuid.UUID(made.json()["job"]["id"])), "successful")
    refused = api.post(f"/templates/{python['id']}/destroy", "alice")
    assert refused.status_code == 409
    assert refused.json()["detail"] == messages.TEMPLATE_HAS_WORKSPACES.format(name="python",
                                                                             workspaces="'w'")
    rebuild = api.post(f"/templates/{python['id']}/rebuild", "alice")
    assert rebuild.status_code == 409
    assert rebuild.json()["detail"] == messages.REBUILD_HAS_WORKSPACES.format(name="python", workspaces="'w'")
    deleted = api.delete(f"/templates/{python['id']}", "alice")
    assert deleted.status_code == 409
    forced = api.post(f"/templates/{python['id']}/destroy", "alice", params={"force": "true"})
    assert forced.status_code == 202 and forced.json()["steps"] == ["workspaces", "destroy"]


def test_twenty_workspaces_at_once_get_twenty_vmids(fresh_postgresql_database, tmp_path: Path) -> None:
    api = ApiClient(fresh_postgresql_database, service_settings(tmp_path / "state"))
    ready(api, "alice", "base")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda n: api.post("/workspaces", "alice", json={
            "name": f"w{n:02d}", "stacks": ["python"], "ssh_public_keys": [KEY]}), range(20)))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers if a.status_code != 202]
    vmids = [a.json()["workspace"]["vmid"] for a in answers]
    assert sorted(vmids) == list(range(100, 120))
