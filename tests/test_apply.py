"""`ctforge apply`: the plan from a family file and the records (no server), the service's rule that a
new CT inherits what its parent's CT was built with, and a three-template family applied for real:
built once, then nothing, then a change to the middle template rebuilds it and its child only."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ctforge import apply
from ctforge.apply import Family, FamilyError, load_family, make_plan, plan_text
from ctforge.cli import EXIT_ERROR, app
from ctforge.db.models import Template

REPO = Path(__file__).resolve().parents[1]
STACKS = ["nodejs", "claude_cli", "postgresql", "redis", "python", "devtools"]


def record(name: str, *, parent: dict[str, Any] | None = None, status: str = "ready",
           stacks: list[str] | None = None, needs_rebuild: bool = False) -> dict[str, Any]:
    """A TemplatePublic as the API answers it (effective: inherited + own, as the chain has them)."""
    own = list(stacks or [])
    inherited = list(parent["effective_stacks"]) if parent else []
    effective = [*inherited, *(s for s in own if s not in inherited)]
    return {"id": str(uuid.uuid4()), "name": name, "owner": "alice",
            "parent_id": parent["id"] if parent else None, "base_ct_template": "debian-12-standard",
            "status": status, "tech_stacks": own, "inherited_tech_stacks": inherited,
            "effective_stacks": effective, "needs_rebuild": needs_rebuild, "description": "",
            "is_default": False, "built_stacks": effective if status == "ready" else None}


def chain(**overrides: dict[str, Any]) -> list[dict[str, Any]]:
    base = {**record("base"), **overrides.get("base", {})}
    nodejs = {**record("nodejs", parent=base, stacks=["nodejs", "claude_cli"]), **overrides.get("nodejs", {})}
    fullstack = {**record("fullstack", parent=nodejs, stacks=["postgresql", "redis"]),
                 **overrides.get("fullstack", {})}
    return [base, nodejs, fullstack]


def family(**changes: dict[str, Any]) -> Family:
    templates = [
        {"name": "base", "appliance": "debian-12-standard", "stacks": []},
        {"name": "nodejs", "parent": "base", "stacks": ["nodejs", "claude_cli"]},
        {"name": "fullstack", "parent": "nodejs", "stacks": ["postgresql", "redis"]},
    ]
    for entry in templates:
        entry.update(changes.get(entry["name"], {}))
    return Family.model_validate({"templates": templates})


def steps(plan: list[apply.Step]) -> list[tuple[str, str]]:
    return [(s.kind, s.name) for s in plan]


def test_an_empty_service_gets_the_family_created_and_built_parents_first() -> None:
    leaf_first = list(reversed(family().model_dump()["templates"]))
    listed_leaf_first = Family.model_validate({"templates": leaf_first})
    plan = make_plan(listed_leaf_first, [], [], STACKS)
    assert steps(plan) == [("create", "base"), ("build", "base"), ("create", "nodejs"), ("build", "nodejs"),
                           ("create", "fullstack"), ("build", "fullstack")]
    assert plan[0].body == {"name": "base", "tech_stacks": [], "base_ct_template": "debian-12-standard"}
    assert plan[2].parent == "base"
    assert plan[2].body == {"name": "nodejs", "tech_stacks": ["nodejs", "claude_cli"]}


def test_everything_current_is_nothing_to_do() -> None:
    assert make_plan(family(), chain(), [], STACKS) == []
    assert plan_text(Path("f.yml"), []) == [apply.NOTHING_TO_DO]


def test_a_change_of_the_middle_stacks_destroys_its_child_rebuilds_it_and_builds_the_child_again() -> None:
    plan = make_plan(family(nodejs={"stacks": ["nodejs", "claude_cli", "python"]}), chain(), [], STACKS)
    assert steps(plan) == [("change", "nodejs"), ("destroy", "fullstack"), ("rebuild", "nodejs"),
                           ("build", "fullstack")]
    assert plan[0].body == {"tech_stacks": ["nodejs", "claude_cli", "python"]}
    text = plan_text(Path("f.yml"), plan)
    assert text[0] == "plan for f.yml: 4 steps"
    assert text[1] == "  1. change template nodejs: stacks nodejs, claude_cli → nodejs, claude_cli, python"
    assert text[3] == "  3. rebuild template nodejs: its stacks changed"


def test_a_root_its_roles_changed_rebuilds_the_whole_chain_deepest_destroyed_first() -> None:
    plan = make_plan(family(), chain(base={"needs_rebuild": True}), [], STACKS)
    assert steps(plan) == [("destroy", "fullstack"), ("destroy", "nodejs"), ("rebuild", "base"),
                           ("build", "nodejs"), ("build", "fullstack")]
    assert "needs_rebuild" in plan[2].why


def test_a_leaf_changed_is_rebuilt_alone() -> None:
    plan = make_plan(family(fullstack={"stacks": ["redis"]}), chain(), [], STACKS)
    assert steps(plan) == [("change", "fullstack"), ("rebuild", "fullstack")]


def test_a_description_change_is_an_edit_without_a_rebuild() -> None:
    plan = make_plan(family(nodejs={"description": "Node"}), chain(), [], STACKS)
    assert steps(plan) == [("change", "nodejs")] and plan[0].body == {"description": "Node"}


def test_a_child_that_inherits_what_its_parent_no_longer_has_is_rebuilt() -> None:
    records = chain()
    records[2]["inherited_tech_stacks"] = ["nodejs"]  # made before nodejs got claude_cli
    records[2]["effective_stacks"] = ["nodejs", "postgresql", "redis"]
    assert steps(make_plan(family(), records, [], STACKS)) == [("rebuild", "fullstack")]


@pytest.mark.parametrize(("status", "expected"), [
    ("pending", [("build", "fullstack")]), ("error", [("build", "fullstack")]),
    ("destroyed", [("build", "fullstack")]), ("staging", [("finalize", "fullstack")])])
def test_a_template_not_ready_is_built_or_finalized(status: str, expected: list[tuple[str, str]]) -> None:
    assert steps(make_plan(family(), chain(fullstack={"status": status}), [], STACKS)) == expected


def test_a_parent_not_ready_builds_its_children_again_after_it() -> None:
    plan = make_plan(family(), chain(nodejs={"status": "error"}), [], STACKS)
    assert steps(plan) == [("destroy", "fullstack"), ("build", "nodejs"), ("build", "fullstack")]


def test_a_parent_outside_the_file_is_used_as_it_is() -> None:
    records = chain()
    mine = Family.model_validate({"templates": [{"name": "api", "parent": "nodejs", "stacks": ["python"]}]})
    plan = make_plan(mine, records, [], STACKS)
    assert steps(plan) == [("create", "api"), ("build", "api")] and plan[0].parent == "nodejs"
    records[1]["status"] = "staging"
    with pytest.raises(FamilyError) as refused:
        make_plan(mine, records, [], STACKS)
    assert refused.value.message == apply.EXTERNAL_PARENT_NOT_READY.format(name="api", parent="nodejs",
                                                                           status="staging")


def test_workspaces_are_made_last_and_only_when_missing() -> None:
    with_workspace = Family.model_validate({**family().model_dump(), "workspaces": [
        {"name": "dev", "template": "fullstack", "stacks": ["python"]}]})
    plan = make_plan(with_workspace, [], [], STACKS)
    assert plan[-1].kind == "workspace" and plan[-1].name == "dev" and plan[-1].parent == "fullstack"
    existing = [{"name": "dev", "template_id": chain()[2]["id"]}]
    assert make_plan(with_workspace, chain(), existing, STACKS) == []


def refusal(file: Family, records: list[dict[str, Any]],
            workspaces: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(FamilyError) as refused:
        make_plan(file, records, workspaces or [], STACKS)
    return refused.value.message


def test_what_cannot_be_applied_is_refused_before_any_step() -> None:
    records = chain()
    assert refusal(family(nodejs={"stacks": ["nodejs", "cobol"]}), records) == apply.UNKNOWN_STACK.format(
        name="nodejs", stack="cobol", known=", ".join(sorted(STACKS)))
    assert refusal(family(nodejs={"parent": "nobody"}), []) == apply.UNKNOWN_PARENT.format(
        name="nodejs", parent="nobody")
    assert refusal(family(base={"parent": "fullstack", "appliance": None}), []) == apply.CYCLE.format(
        chain="base → fullstack → nodejs → base")
    assert refusal(family(base={"appliance": None}), []) == apply.ROOT_NEEDS_APPLIANCE.format(name="base")
    assert refusal(family(nodejs={"appliance": "debian-12-standard"}), []) == \
        apply.CHILD_HAS_APPLIANCE.format(name="nodejs")
    assert refusal(family(fullstack={"parent": "base"}), records) == apply.PARENT_DIFFERS.format(
        name="fullstack", wanted="'base'", found="'nodejs'")
    assert refusal(family(), chain(fullstack={"status": "provisioning"})) == \
        apply.BUSY.format(name="fullstack", status="provisioning")


def test_a_rebuild_that_would_pin_ct_outside_the_plan_is_refused() -> None:
    records = chain()
    records.append(record("someone-elses", parent=records[2]))
    assert refusal(family(fullstack={"stacks": ["redis"]}), records) == apply.CHILD_NOT_IN_FILE.format(
        name="fullstack", why="rebuilt", children="someone-elses")
    records.pop()
    workspaces = [{"name": "dev", "template_id": records[2]["id"]}]
    assert refusal(family(fullstack={"stacks": ["redis"]}), records, workspaces) == \
        apply.HAS_WORKSPACES.format(name="fullstack", why="rebuilt", workspaces="dev")


@pytest.mark.parametrize(("text", "start"), [
    ("templates: [", "not valid YAML"),
    ("- a list\n", "the file: Input should be"),
    ("templates:\n  - name: a\n    stacks: []\n    colour: red\n", "templates.0.colour: Extra inputs"),
    ("templates:\n  - name: a\n    appliance: x\n  - name: a\n    appliance: x\n",
     "the template 'a' is listed twice"),
    ("templates:\n  - name: a\n    name: b\n", "not valid YAML: the key 'name' appears twice"),
])
def test_a_bad_file_is_one_line(tmp_path: Path, text: str, start: str) -> None:
    path = tmp_path / "family.yml"
    path.write_text(text)
    with pytest.raises(FamilyError) as refused:
        load_family(path)
    assert refused.value.message.startswith(f"{path}: {start}"), refused.value.message
    assert "\n" not in refused.value.message
    result = CliRunner().invoke(app, ["apply", str(path)], env={"CTFORGE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == EXIT_ERROR
    assert result.stderr == f"error: {refused.value.message}\n"  # read before the service is asked


def test_the_example_family_is_the_canonical_chain() -> None:
    example = load_family(REPO / "examples" / "family.yml")
    assert [(t.name, t.parent, t.stacks) for t in example.templates] == [
        ("base", None, []), ("nodejs", "base", ["nodejs", "claude_cli"]),
        ("fullstack", "nodejs", ["postgresql", "redis"])]
    assert example.templates[0].appliance == "debian-12-standard"
    assert steps(make_plan(example, [], [], STACKS))[::2] == [("create", "base"), ("create", "nodejs"),
                                                              ("create", "fullstack")]


# --- the service's rule: a new CT inherits what its parent's CT was built with ----------------------

def test_a_build_inherits_what_the_parents_ct_was_built_with_now(api) -> None:
    base = api.create("alice", "base")
    api.make_ready(base["id"])
    child = api.create("alice", "child", parent_id=base["id"], tech_stacks=["redis"])
    assert child["inherited_tech_stacks"] == []
    with api.db.writing() as session:  # the parent rebuilt with python since the child was made
        row = session.get(Template, uuid.UUID(base["id"]))
        row.tech_stacks, row.built_stacks = ["python"], ["python"]
    answer = api.post(f"/templates/{child['id']}/build", "alice")
    assert answer.status_code == 202, answer.text
    now = api.get(f"/templates/{child['id']}", "alice").json()
    assert now["inherited_tech_stacks"] == ["python"] and now["effective_stacks"] == ["python", "redis"]


# --- the MUST-SHOW: a three-template family applied for real ---------------------------------------

def write_family(path: Path, root_parent: str, middle_stacks: list[str]) -> None:
    path.write_text(json.dumps({"templates": [  # JSON is YAML
        {"name": "apply-root", "parent": root_parent, "stacks": []},
        {"name": "apply-middle", "parent": "apply-root", "stacks": middle_stacks},
        {"name": "apply-leaf", "parent": "apply-middle", "stacks": []},
    ]}))


@pytest.mark.host
@pytest.mark.slow
def test_apply_builds_three_then_none_then_the_changed_middle_and_its_child(job_service, canonical_chain,
                                                                           tmp_path) -> None:
    from test_cli_remote import cli_env, keep, run

    api = job_service.alice
    token = api.http.headers["Authorization"].removeprefix("Bearer ")
    env = cli_env(os.environ, tmp_path / "config", job_service.service.url, token)
    path = tmp_path / "family.yml"
    write_family(path, "base", ["redis"])  # under the canonical base: a linked clone, no appliance

    def jobs_of(name: str) -> list[dict[str, Any]]:
        template = next(t for t in api.get("/templates", params={"limit": 500}).json()["data"]
                        if t["name"] == name)
        return api.get("/jobs", params={"template_id": template["id"], "limit": 100}).json()["data"]

    first = run(env, "apply", str(path), timeout=1800)
    keep("apply-first.txt", first.stdout)
    assert first.returncode == 0, first.stdout + first.stderr
    assert [line for line in first.stdout.splitlines() if line.startswith("step ")] == [
        "step 1/6: create template apply-root: under base, no stacks",
        "step 2/6: build template apply-root: new",
        "step 3/6: create template apply-middle: under apply-root, redis",
        "step 4/6: build template apply-middle: new",
        "step 5/6: create template apply-leaf: under apply-middle, no stacks",
        "step 6/6: build template apply-leaf: new"]
    names = ("apply-root", "apply-middle", "apply-leaf")
    built = {name: jobs_of(name) for name in names}
    assert {name: [(j["kind"], j["status"]) for j in jobs] for name, jobs in built.items()} == {
        name: [("build", "successful")] for name in names}
    base_jobs = api.get("/jobs", params={"template_id": canonical_chain["templates"]["base"]["id"]}).json()

    second = run(env, "apply", str(path))
    keep("apply-second.txt", second.stdout)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == apply.NOTHING_TO_DO
    assert {name: len(jobs_of(name)) for name in names} == dict.fromkeys(names, 1)

    write_family(path, "base", [])  # the middle loses redis
    planned = run(env, "apply", str(path), "--plan")
    keep("apply-change-plan.txt", planned.stdout)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.splitlines() == [
        f"plan for {path}: 4 steps", "  1. change template apply-middle: stacks redis → no stacks",
        "  2. destroy template apply-leaf: its parent apply-middle gets a new CT, which linked clones of "
        "the old one would pin",
        "  3. rebuild template apply-middle: its stacks changed",
        "  4. build template apply-leaf: again, on its parent apply-middle's new CT"]
    assert {name: len(jobs_of(name)) for name in names} == dict.fromkeys(names, 1)  # --plan did nothing
    middle_before = next(t for t in api.get("/templates", params={"limit": 500}).json()["data"]
                         if t["name"] == "apply-middle")
    assert middle_before["tech_stacks"] == ["redis"]

    third = run(env, "apply", str(path), timeout=1800)
    keep("apply-change.txt", third.stdout)
    assert third.returncode == 0, third.stdout + third.stderr
    after = {name: jobs_of(name) for name in names}
    assert [j["kind"] for j in after["apply-root"]] == ["build"]  # nothing else
    assert [(j["kind"], j["status"]) for j in after["apply-middle"]][:1] == [("rebuild", "successful")]
    assert [(j["kind"], j["status"]) for j in after["apply-leaf"]][:2] == [
        ("build", "successful"), ("destroy", "successful")]  # newest first
    assert len(after["apply-middle"]) == 2 and len(after["apply-leaf"]) == 3
    assert api.get("/jobs", params={"template_id": canonical_chain["templates"]["base"]["id"]}).json()[
        "count"] == base_jobs["count"]
    records = {t["name"]: t for t in api.get("/templates", params={"limit": 500}).json()["data"]}
    assert records["apply-middle"]["effective_stacks"] == [] and records["apply-middle"]["status"] == "ready"
    assert records["apply-leaf"]["inherited_tech_stacks"] == []
    assert records["apply-leaf"]["built_stacks"] == []
    assert records["apply-middle"]["vmid"] != middle_before["vmid"]  # a new CT

    fourth = run(env, "apply", str(path))
    assert fourth.returncode == 0 and fourth.stdout.strip() == apply.NOTHING_TO_DO

    for name in reversed(names):  # leave the session's service as it was: no CTs of this test
        api.wait(api.act(records[name]["id"], "destroy")["id"])
