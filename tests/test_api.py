"""The HTTP API on real migrations, on SQLite and on PostgreSQL (every test runs on both), each
test rolled back: the seed's family, every product rule as its 4xx and message constant, a failed
request changing no row, tokens and ownership, paged lists, bad input, and the service routes."""

from __future__ import annotations

import json
import logging
import uuid
from importlib.metadata import version

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ctforge import messages
from ctforge.api import create_app
from ctforge.db import Database
from ctforge.db.models import Template, User, VmidClaim
from ctforge.devdb import free_port
from ctforge.records import templates as records
from ctforge.records.errors import Conflict
from ctforge.records.templates import TRANSITIONS
from service_helpers import API, APPLIANCE, HEAD_REVISION, service_settings, table_rows


def unknown_stack(api, stack_id: str) -> str:
    return messages.UNKNOWN_STACK.format(stack_id=stack_id, known=", ".join(api.catalog.ids()))


def detail(answer) -> str:
    body = answer.json()
    assert set(body) >= {"detail"}, body
    return body["detail"]


# --- the rollback itself --------------------------------------------------------------------------

def test_sessions_are_savepoints_inside_the_tests_transaction(db) -> None:
    with db.writing() as session:
        session.add(User(name="kept"))
    with pytest.raises(RuntimeError), db.writing() as session:
        session.add(User(name="undone"))
        session.flush()
        raise RuntimeError("the request failed")
    with db.writing() as session:
        with session.begin_nested():
            session.add(User(name="inner"))
        try:
            with session.begin_nested():
                session.add(User(name="inner-undone"))
                session.flush()
                raise RuntimeError
        except RuntimeError:
            pass
    with db.reading() as session:
        assert set(session.scalars(select(User.name))) == {"kept", "inner"}


# --- the seed's family ----------------------------------------------------------------------------

def seed_family(api) -> tuple[dict, dict, dict]:
    base = api.create("alice", "base", tech_stacks=[], base_ct_template=APPLIANCE)
    api.make_ready(base["id"])
    parent = api.create("alice", "agent", parent_id=base["id"], tech_stacks=["nodejs", "claude_cli"])
    api.make_ready(parent["id"])
    child = api.create("alice", "fullstack", parent_id=parent["id"], tech_stacks=["postgresql", "redis"])
    return base, parent, child


def test_the_seeds_family_through_the_api(api) -> None:
    base, parent, child = seed_family(api)
    assert base["tech_stacks"] == [] and base["base_ct_template"] == APPLIANCE
    assert parent["inherited_tech_stacks"] == [] and parent["base_ct_template"] == APPLIANCE
    effective = api.get(f"/templates/{child['id']}/effective-stacks", "alice")
    assert effective.status_code == 200
    assert effective.json()["effective"] == ["nodejs", "claude_cli", "postgresql", "redis"]
    assert effective.json()["own"] == ["postgresql", "redis"]
    parent_effective = api.get(f"/templates/{parent['id']}/effective-stacks", "alice").json()["effective"]
    assert parent_effective == ["nodejs", "claude_cli"]
    assert child["inherited_tech_stacks"] == parent_effective
    assert api.row(child["id"]).inherited_tech_stacks == parent_effective
    assert child["status"] == "pending" and child["parent_id"] == parent["id"]

    tree = api.get("/templates/tree", "alice").json()
    assert tree["count"] == 3
    [root] = tree["data"]
    assert root["id"] == base["id"] and root["effective_stacks"] == []
    [middle] = root["children"]
    assert middle["id"] == parent["id"] and middle["effective_stacks"] == ["nodejs", "claude_cli"]
    [leaf] = middle["children"]
    assert leaf["id"] == child["id"] and leaf["children"] == []
    assert leaf["effective_stacks"] == ["nodejs", "claude_cli", "postgresql", "redis"]


# --- the product's rules --------------------------------------------------------------------------

def test_a_created_templates_location_is_its_url(api) -> None:
    answer = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE})
    assert answer.status_code == 201
    assert answer.headers["Location"] == f"{API}/templates/{answer.json()['id']}"
    followed = api.client.get(answer.headers["Location"], headers=api.auth("bob"))
    assert followed.status_code == 200 and followed.json() == answer.json()


def test_the_tree_roots_a_child_whose_parent_you_may_not_see(api) -> None:
    shared = api.create("alice", "shared", is_default=True)
    api.make_ready(shared["id"])
    mine = api.create("carol", "mine", parent_id=shared["id"])
    nested = api.get("/templates/tree", "carol").json()
    assert [(n["name"], [c["name"] for c in n["children"]]) for n in nested["data"]] == [("shared", ["mine"])]
    assert api.patch(f"/templates/{shared['id']}", "alice", json={"is_default": False}).status_code == 200
    rooted = api.get("/templates/tree", "carol").json()
    assert rooted["count"] == 1 and [n["id"] for n in rooted["data"]] == [mine["id"]]
    assert api.get("/templates/tree").json() == {"data": [], "count": 0}


def test_a_child_needs_a_ready_parent(api) -> None:
    base = api.create("bob", "base")
    answer = api.post("/templates", "bob", json={"name": "child", "parent_id": base["id"]})
    assert answer.status_code == 409
    assert detail(answer) == messages.PARENT_NOT_READY.format(name="base", status="pending")
    api.move(base["id"], "provisioning", "staging")
    answer = api.post("/templates", "bob", json={"name": "child", "parent_id": base["id"]})
    assert answer.status_code == 409
    assert detail(answer) == messages.PARENT_NOT_READY.format(name="base", status="staging")


def test_an_unknown_parent_is_refused(api) -> None:
    missing = uuid.uuid4()
    answer = api.post("/templates", "bob", json={"name": "child", "parent_id": str(missing)})
    assert answer.status_code == 422
    assert detail(answer) == messages.PARENT_NOT_FOUND.format(id=missing)


def test_someone_elses_private_parent_is_unknown(api) -> None:
    base = api.create("bob", "base")
    api.make_ready(base["id"])
    answer = api.post("/templates", "carol", json={"name": "child", "parent_id": base["id"]})
    assert answer.status_code == 422
    assert detail(answer) == messages.PARENT_NOT_FOUND.format(id=base["id"])


def test_a_cycle_in_the_parent_chain_is_refused_naming_it(api) -> None:
    a = api.create("bob", "a")
    api.make_ready(a["id"])
    b = api.create("bob", "b", parent_id=a["id"])
    api.make_ready(b["id"])
    c = api.create("bob", "c", parent_id=b["id"])
    api.make_ready(c["id"])
    before = table_rows(api.db)
    answer = api.patch(f"/templates/{a['id']}", "bob", json={"parent_id": c["id"]})
    assert answer.status_code == 422
    assert detail(answer) == messages.PARENT_CYCLE.format(name="a", parent="c", chain="a → c → b → a")
    answer = api.patch(f"/templates/{b['id']}", "bob", json={"parent_id": b["id"]})
    assert answer.status_code == 422
    assert detail(answer) == messages.PARENT_CYCLE.format(name="b", parent="b", chain="b → b")
    assert table_rows(api.db) == before


def test_a_template_moved_under_a_parent_takes_its_base_and_stacks(api) -> None:
    ubuntu = api.create("bob", "ubuntu", base_ct_template="ubuntu-24.04-standard", tech_stacks=["claude_cli"])
    api.make_ready(ubuntu["id"])
    web = api.create("bob", "web", tech_stacks=["redis"])
    api.make_ready(web["id"])
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"parent_id": ubuntu["id"]})
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert moved["parent_id"] == ubuntu["id"] and moved["needs_rebuild"] is True
    assert moved["inherited_tech_stacks"] == ["nodejs", "claude_cli"]
    assert moved["effective_stacks"] == ["nodejs", "claude_cli", "redis"]
    # as create has it (CHILD_BASE_GIVEN): a child is built on its parent's base, never its own
    assert moved["base_ct_template"] == "ubuntu-24.04-standard"
    assert api.row(web["id"]).base_ct_template == "ubuntu-24.04-standard"
    answer = api.post("/templates", "bob", json={"name": "c", "parent_id": ubuntu["id"],
                                                 "base_ct_template": APPLIANCE})
    assert answer.status_code == 422
    assert detail(answer) == messages.CHILD_BASE_GIVEN.format(
        base=APPLIANCE, parent="ubuntu", parent_base="ubuntu-24.04-standard")
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"parent_id": None})
    assert answer.status_code == 422  # null is refused by the schema: a child does not become a base


def test_an_unknown_stack_is_refused(api) -> None:
    answer = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE,
                                                 "tech_stacks": ["nodejs", "cobol"]})
    assert answer.status_code == 422
    assert detail(answer) == unknown_stack(api, "cobol")
    web = api.create("bob", "web", tech_stacks=["nodejs"])
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"tech_stacks": ["cobol"]})
    assert answer.status_code == 422
    assert detail(answer) == unknown_stack(api, "cobol")
    assert api.row(web["id"]).tech_stacks == ["nodejs"]


def test_a_name_is_unique_per_owner(api) -> None:
    api.create("bob", "web")
    answer = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE})
    assert answer.status_code == 409
    assert detail(answer) == messages.TEMPLATE_NAME_TAKEN.format(name="web")
    assert api.create("carol", "web")["owner"] == "carol"
    other = api.create("bob", "api")
    answer = api.patch(f"/templates/{other['id']}", "bob", json={"name": "web"})
    assert answer.status_code == 409
    assert detail(answer) == messages.TEMPLATE_NAME_TAKEN.format(name="web")
    assert api.row(other["id"]).name == "api"


def test_a_template_with_a_child_is_deleted_only_after_the_child(api) -> None:
    parent = api.create("bob", "parent")
    api.make_ready(parent["id"])
    child = api.create("bob", "child", parent_id=parent["id"])
    answer = api.delete(f"/templates/{parent['id']}", "bob")
    assert answer.status_code == 409
    assert detail(answer) == messages.TEMPLATE_HAS_CHILDREN.format(name="parent", children="'child'")
    assert api.row(parent["id"]) is not None
    assert api.delete(f"/templates/{child['id']}", "bob").status_code == 204
    assert api.delete(f"/templates/{parent['id']}", "bob").status_code == 204
    assert api.row(parent["id"]) is None and api.row(child["id"]) is None
    assert api.get(f"/templates/{parent['id']}", "bob").status_code == 404
    with api.db.reading() as session:
        assert list(session.scalars(select(VmidClaim.vmid))) == []
    assert api.create("bob", "again")["vmid"] == parent["vmid"]  # the freed id is the lowest again


def test_editing_a_ready_templates_stacks_marks_it_for_a_rebuild(api) -> None:
    web = api.create("bob", "web", tech_stacks=["nodejs"])
    assert web["needs_rebuild"] is False
    api.make_ready(web["id"])
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"description": "words only"})
    assert answer.status_code == 200 and answer.json()["needs_rebuild"] is False
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"tech_stacks": ["nodejs", "redis"]})
    assert answer.status_code == 200
    assert answer.json()["needs_rebuild"] is True and answer.json()["status"] == "ready"
    assert api.get(f"/templates/{web['id']}", "bob").json()["needs_rebuild"] is True
    row = api.row(web["id"])
    assert row.needs_rebuild is True and row.tech_stacks == ["nodejs", "redis"]
    assert row.built_stacks == ["nodejs"]


def test_editing_a_ready_templates_env_vars_marks_it_for_a_rebuild(api) -> None:
    web = api.create("bob", "web", env_vars={"TZ": "UTC"})
    api.move(web["id"], "provisioning", "staging")
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"env_vars": {"TZ": "UTC"}})
    assert answer.json()["needs_rebuild"] is False  # the same values: nothing to rebuild
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"env_vars": {"TZ": "Europe/Paris"}})
    assert answer.status_code == 200 and answer.json()["needs_rebuild"] is True
    assert api.row(web["id"]).env_vars == {"TZ": "Europe/Paris"}
    api.move(web["id"], "ready")  # a build clears the mark
    assert api.get(f"/templates/{web['id']}", "bob").json()["needs_rebuild"] is False


def test_a_ready_template_built_from_other_roles_needs_a_rebuild(api) -> None:
    current = api.create("bob", "current", tech_stacks=["redis"])
    stale = api.create("bob", "stale", tech_stacks=["redis"])
    api.move(current["id"], "provisioning", "staging")
    api.move(current["id"], "ready", built_fingerprint=api.service.fingerprints.of(["redis"]))
    api.move(stale["id"], "provisioning", "staging")
    api.move(stale["id"], "ready", built_fingerprint="sha256:" + "0" * 64)
    assert api.get(f"/templates/{current['id']}", "bob").json()["needs_rebuild"] is False
    assert api.get(f"/templates/{stale['id']}", "bob").json()["needs_rebuild"] is True
    assert api.row(stale["id"]).needs_rebuild is False  # the record's mark is for edits; this is today's tree


def test_editing_a_pending_template_needs_no_rebuild(api) -> None:
    web = api.create("bob", "web", tech_stacks=["nodejs"])
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"tech_stacks": ["redis"]})
    assert answer.status_code == 200 and answer.json()["needs_rebuild"] is False


def test_no_update_or_delete_while_provisioning(api) -> None:
    web = api.create("bob", "web")
    api.move(web["id"], "provisioning")
    before = table_rows(api.db)
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"description": "now"})
    assert answer.status_code == 409
    assert detail(answer) == messages.TEMPLATE_BUSY.format(name="web", status="provisioning")
    answer = api.delete(f"/templates/{web['id']}", "bob")
    assert answer.status_code == 409
    assert detail(answer) == messages.TEMPLATE_BUSY.format(name="web", status="provisioning")
    assert table_rows(api.db) == before


STATUS_PATHS = {
    "pending": (), "provisioning": ("provisioning",), "staging": ("provisioning", "staging"),
    "ready": ("provisioning", "staging", "ready"), "error": ("error",),
    "destroyed": ("destroyed",),
}


def test_every_illegal_status_step_is_refused(api) -> None:
    refused = 0
    for current, path in STATUS_PATHS.items():
        template = api.create("bob", f"t-{current}")
        api.move(template["id"], *path)
        for to in STATUS_PATHS:
            if to in TRANSITIONS[current]:
                continue
            with api.db.writing() as session:
                row = session.get(Template, uuid.UUID(template["id"]))
                with pytest.raises(Conflict) as illegal:
                    records.move_status(session, row, to, error="x" if to == "error" else None,
                                        catalog=api.catalog)
            allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
            assert illegal.value.message == messages.STATUS_ILLEGAL.format(
                name=f"t-{current}", current=current, to=to, allowed=allowed)
            assert api.row(template["id"]).status == current
            refused += 1
    assert set(STATUS_PATHS) == set(TRANSITIONS)
    assert refused == len(STATUS_PATHS) ** 2 - sum(len(t) for t in TRANSITIONS.values())


def test_a_stale_status_is_refused_compare_and_set(api) -> None:
    web = api.create("bob", "web")
    with api.db.writing() as stale_session:
        stale = stale_session.get(Template, uuid.UUID(web["id"]))
        assert stale.status == "pending"
        api.move(web["id"], "provisioning")  # another writer, meanwhile
        with pytest.raises(Conflict) as meanwhile:
            records.move_status(stale_session, stale, "provisioning")
    assert meanwhile.value.message == messages.STATUS_CHANGED_MEANWHILE.format(
        name="web", expected="pending", found="provisioning")
    assert api.row(web["id"]).status == "provisioning"


def test_an_error_carries_its_message_and_a_retry_clears_it(api) -> None:
    web = api.create("bob", "web")
    with api.db.writing() as session:
        row = session.get(Template, uuid.UUID(web["id"]))
        with pytest.raises(ValueError, match="needs its message"):
            records.move_status(session, row, "error")
        with pytest.raises(ValueError, match="only an error status"):
            records.move_status(session, row, "provisioning", error="no")
        records.move_status(session, row, "provisioning")
        records.move_status(session, row, "error", error="debootstrap failed")
    answer = api.get(f"/templates/{web['id']}", "bob").json()
    assert answer["status"] == "error" and answer["error_message"] == "debootstrap failed"
    api.move(web["id"], "pending")
    answer = api.get(f"/templates/{web['id']}", "bob").json()
    assert answer["status"] == "pending" and answer["error_message"] is None


def test_becoming_ready_records_what_it_was_built_from(api) -> None:
    web = api.create("bob", "web", tech_stacks=["claude_cli"])
    api.move(web["id"], "provisioning", "staging", staging_container_ip="10.0.0.5")
    assert api.get(f"/templates/{web['id']}", "bob").json()["staging_container_ip"] == "10.0.0.5"
    with api.db.writing() as session:
        row = session.get(Template, uuid.UUID(web["id"]))
        with pytest.raises(ValueError, match="pass the catalog"):
            records.move_status(session, row, "ready")
    api.move(web["id"], "ready")
    answer = api.get(f"/templates/{web['id']}", "bob").json()
    assert answer["status"] == "ready" and answer["ready_at"] is not None
    assert answer["built_stacks"] == ["nodejs", "claude_cli"] and answer["staging_container_ip"] is None


# --- a failed request changes no row --------------------------------------------------------------

def test_a_failed_request_changes_no_row(make_api) -> None:
    api = make_api(template_vmids="7600-7601")
    parent = api.create("bob", "parent")
    api.make_ready(parent["id"])
    api.create("bob", "taken")
    before = table_rows(api.db)
    assert sum(len(rows) for rows in before.values()) > 0
    failing = [
        ({"name": "web", "base_ct_template": APPLIANCE, "tech_stacks": ["cobol"]}, 422),
        ({"name": "taken", "base_ct_template": APPLIANCE}, 409),
        ({"name": "web", "base_ct_template": APPLIANCE}, 409),  # the range is used up
        ({"name": "web", "parent_id": parent["id"]}, 409),
        ({"name": "web", "base_ct_template": APPLIANCE, "vmid": 7600}, 409),
        ({"name": "web", "base_ct_template": APPLIANCE, "vmid": 7700}, 422),
        ({"name": "web", "base_ct_template": APPLIANCE, "is_default": True}, 403),
    ]
    for body, status in failing:
        answer = api.post("/templates", "bob", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert table_rows(api.db) == before, body
    exhausted = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE})
    assert detail(exhausted) == messages.VMID_RANGE_EXHAUSTED.format(kind="template", range="7600-7601")
    taken = api.get("/templates", "bob", params={"status": "pending"}).json()["data"][0]["id"]
    child = api.post("/templates", "bob", json={"name": "child", "parent_id": parent["id"]})
    assert child.status_code == 409 and detail(child) == detail(exhausted)  # flushed, then rolled back
    assert table_rows(api.db) == before
    failing_changes = [  # each sets a field before the refusal: the rollback undoes it
        ("PATCH", taken, {"name": "renamed", "description": "new", "tech_stacks": ["cobol"]}, 422),
        ("PATCH", taken, {"description": "new", "is_default": True}, 403),
        ("PATCH", taken, {"name": "renamed", "parent_id": taken}, 422),
        ("PATCH", parent["id"], {"env_vars": {"A": "1"}, "name": "taken"}, 409),
        ("DELETE", parent["id"], None, 403),
    ]
    for method, template_id, body, status in failing_changes:
        who = "carol" if method == "DELETE" else "bob"
        answer = api.request(method, f"/templates/{template_id}", who, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert table_rows(api.db) == before, body


# --- tokens and ownership -------------------------------------------------------------------------

def mutations(template_id: str) -> list[tuple[str, str, dict | None]]:
    return [("POST", "/templates", {"name": "x", "base_ct_template": APPLIANCE}),
            ("PATCH", f"/templates/{template_id}", {"description": "x"}),
            ("DELETE", f"/templates/{template_id}", None)]


@pytest.mark.parametrize("token", [None, "ctf_not-a-real-token", "not-even-the-prefix"])
def test_every_mutation_needs_a_valid_token(api, token) -> None:
    web = api.create("bob", "web")
    before = table_rows(api.db)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for method, path, body in mutations(web["id"]):
        answer = api.request(method, path, headers=headers, json=body)
        assert answer.status_code == 401, (method, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert detail(answer) == (messages.TOKEN_INVALID if token else messages.TOKEN_MISSING)
    assert api.get("/vmids", headers=headers).status_code == 401
    assert table_rows(api.db) == before


def test_someone_elses_template_is_forbidden(api) -> None:
    web = api.create("bob", "web")
    for method, path, body in mutations(web["id"])[1:]:
        answer = api.request(method, path, "carol", json=body)
        assert answer.status_code == 403
        assert detail(answer) == messages.TEMPLATE_NOT_VISIBLE.format(id=web["id"])
    for who in ("carol", None):
        answer = api.get(f"/templates/{web['id']}", who)
        assert answer.status_code == 403
        assert detail(answer) == messages.TEMPLATE_NOT_VISIBLE.format(id=web["id"])
        assert api.get(f"/templates/{web['id']}/effective-stacks", who).status_code == 403
    assert api.get(f"/templates/{web['id']}", "alice").status_code == 200  # an admin sees all
    assert api.patch(f"/templates/{web['id']}", "alice", json={"description": "by alice"}).status_code == 200
    assert api.row(web["id"]).description == "by alice"


def test_a_default_is_seen_by_everyone_and_changed_by_its_owner_or_an_admin(api) -> None:
    shared = api.create("bob", "shared")
    assert api.patch(f"/templates/{shared['id']}", "alice", json={"is_default": True}).json()["is_default"]
    for who in ("carol", None):
        assert api.get(f"/templates/{shared['id']}", who).status_code == 200
    answer = api.patch(f"/templates/{shared['id']}", "carol", json={"description": "mine now"})
    assert answer.status_code == 403
    assert detail(answer) == messages.TEMPLATE_NOT_YOURS.format(name="shared", owner="bob")
    answer = api.delete(f"/templates/{shared['id']}", "carol")
    assert answer.status_code == 403
    assert detail(answer) == messages.TEMPLATE_NOT_YOURS.format(name="shared", owner="bob")
    assert api.row(shared["id"]).description == ""


def test_only_an_admin_sets_is_default(api) -> None:
    answer = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE,
                                                 "is_default": True})
    assert answer.status_code == 403 and detail(answer) == messages.DEFAULT_NEEDS_ADMIN
    web = api.create("bob", "web")
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"is_default": True})
    assert answer.status_code == 403 and detail(answer) == messages.DEFAULT_NEEDS_ADMIN
    assert api.row(web["id"]).is_default is False
    assert api.create("alice", "golden", is_default=True)["is_default"] is True
    assert api.patch(f"/templates/{web['id']}", "alice", json={"is_default": True}).status_code == 200
    answer = api.patch(f"/templates/{web['id']}", "bob", json={"is_default": False})
    assert answer.status_code == 403 and detail(answer) == messages.DEFAULT_NEEDS_ADMIN
    assert api.row(web["id"]).is_default is True


def names(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [t["name"] for t in answer.json()["data"]]


def test_who_sees_which_templates(api) -> None:
    api.create("bob", "bobs")
    api.create("carol", "carols")
    api.create("alice", "golden", is_default=True)
    api.create("alice", "alices")
    assert names(api.get("/templates", "bob")) == ["bobs", "golden"]
    assert names(api.get("/templates", "carol")) == ["carols", "golden"]
    assert names(api.get("/templates", "alice")) == ["bobs", "carols", "golden", "alices"]
    assert names(api.get("/templates")) == ["golden"]
    assert api.get("/templates").json()["count"] == 1
    assert [n["name"] for n in api.get("/templates/tree", "bob").json()["data"]] == ["bobs", "golden"]
    answer = api.get("/templates", headers={"Authorization": "Bearer ctf_wrong"})
    assert answer.status_code == 401 and detail(answer) == messages.TOKEN_INVALID


# --- lists ----------------------------------------------------------------------------------------

def test_lists_are_paged_in_one_order(api) -> None:
    made = [api.create("bob", f"t{i}") for i in range(7)]
    full = api.get("/templates", "bob", params={"limit": 500}).json()
    assert full["count"] == 7
    rows = {str(t.id): t for t in (api.row(m["id"]) for m in made)}
    expected = sorted(rows, key=lambda i: (rows[i].created_at, uuid.UUID(i)))
    assert [t["id"] for t in full["data"]] == expected
    pages = []
    for offset in range(0, 9, 3):
        page = api.get("/templates", "bob", params={"limit": 3, "offset": offset}).json()
        assert page["count"] == 7 and len(page["data"]) == min(3, 7 - offset)
        pages += page["data"]
    assert pages == full["data"]
    assert api.get("/templates", "bob", params={"limit": 500}).json() == full  # the same every time
    assert api.get("/templates", "bob", params={"offset": 50}).json() == {"data": [], "count": 7}


def test_lists_filter_by_status_owner_and_parent(api) -> None:
    base = api.create("bob", "base")
    api.make_ready(base["id"])
    child = api.create("bob", "child", parent_id=base["id"])
    api.create("carol", "carols")
    assert names(api.get("/templates", "alice", params={"status": "ready"})) == ["base"]
    assert names(api.get("/templates", "alice", params={"status": "pending"})) == ["child", "carols"]
    assert names(api.get("/templates", "alice", params={"owner": "carol"})) == ["carols"]
    assert names(api.get("/templates", "alice", params={"owner": "nobody"})) == []
    by_parent = api.get("/templates", "alice", params={"parent_id": base["id"]})
    assert names(by_parent) == ["child"] and by_parent.json()["data"][0]["id"] == child["id"]
    assert api.get("/templates", "alice", params={"status": "ready"}).json()["count"] == 1
    assert api.get("/templates", "alice", params={"status": "done"}).status_code == 422


# --- bad input ------------------------------------------------------------------------------------

BAD_BODIES = [
    ({"name": 5, "base_ct_template": APPLIANCE}, "body.name"),
    ({"name": "web", "base_ct_template": APPLIANCE, "tech_stacks": "nodejs"}, "body.tech_stacks"),
    ({"name": "web", "base_ct_template": APPLIANCE, "is_default": "maybe"}, "body.is_default"),
    ({"name": "web", "base_ct_template": APPLIANCE, "vmid": "next"}, "body.vmid"),
    ({"name": "web", "base_ct_template": APPLIANCE, "env_vars": ["A=1"]}, "body.env_vars"),
    ({"name": "web", "base_ct_template": APPLIANCE, "colour": "red"},
     "body.colour: is not a field of this request"),
    ({"base_ct_template": APPLIANCE}, "body.name"),
    ({"name": "web\n", "base_ct_template": APPLIANCE}, "body.name: must be 1 to 64 letters"),
    ({"name": "web", "base_ct_template": APPLIANCE, "tech_stacks": ["nodejs", "nodejs"]},
     "body.tech_stacks: lists 'nodejs' more than once"),
    ({"name": "web", "base_ct_template": APPLIANCE, "tech_stacks": ["node js"]}, "body.tech_stacks.0"),
    ({"name": "web", "base_ct_template": "debian; rm -rf /"}, "body.base_ct_template"),
    ({"name": "web", "base_ct_template": APPLIANCE, "env_vars": {"A": "1\nB=2"}}, "body.env_vars.A"),
    ({"name": "web", "base_ct_template": APPLIANCE, "env_vars": {"1A": "x"}}, "body.env_vars"),
    ({"name": "web", "base_ct_template": APPLIANCE, "vmid": 50}, "body.vmid"),
    ({"name": "web", "base_ct_template": APPLIANCE, "parent_id": "parent"}, "body.parent_id"),
    ({"name": "x" * 65, "base_ct_template": APPLIANCE}, "body.name"),
]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES, ids=[n for _, n in BAD_BODIES])
def test_a_malformed_create_is_a_422_naming_the_field(api, body, named) -> None:
    answer = api.post("/templates", "bob", json=body)
    assert answer.status_code == 422, answer.text
    assert named in detail(answer)
    assert all({"loc", "msg"} == set(e) for e in answer.json()["errors"])


@pytest.mark.parametrize("char", [";", "|", "$", "`", "&", ">", "<", "\n", "'", '"', "\\"])
def test_a_name_with_a_shell_metacharacter_is_refused(api, char) -> None:
    web = api.create("bob", "web")
    for answer in (api.post("/templates", "bob", json={"name": f"a{char}b", "base_ct_template": APPLIANCE}),
                   api.patch(f"/templates/{web['id']}", "bob", json={"name": f"a{char}b"})):
        assert answer.status_code == 422
        assert detail(answer).startswith("body.name: must be 1 to 64 letters")
    assert api.row(web["id"]).name == "web"


def test_a_patch_refuses_nulls_and_unknown_fields(api) -> None:
    web = api.create("bob", "web")
    for body, named in (({"name": None}, "body.name"), ({"status": "ready"}, "body.status"),
                        ({"vmid": 501}, "body.vmid"),
                        ({"tech_stacks": ["redis", "redis"]}, "body.tech_stacks")):
        answer = api.patch(f"/templates/{web['id']}", "bob", json=body)
        assert answer.status_code == 422, body
        assert named in detail(answer)
    assert api.row(web["id"]).status == "pending"


def test_a_vmid_outside_the_range_is_422_and_a_claimed_one_409(api) -> None:
    web = api.create("bob", "web", vmid=777)
    assert web["vmid"] == 777
    answer = api.post("/templates", "bob", json={"name": "b", "base_ct_template": APPLIANCE, "vmid": 1500})
    assert answer.status_code == 422
    assert detail(answer) == messages.VMID_OUT_OF_RANGE.format(vmid=1500, kind="template", range="500-999")
    answer = api.post("/templates", "bob", json={"name": "b", "base_ct_template": APPLIANCE, "vmid": 777})
    assert answer.status_code == 409
    assert detail(answer) == messages.VMID_CLAIMED.format(vmid=777)


def test_an_oversized_body_is_a_json_413(api) -> None:
    limit = api.settings.max_body_bytes
    body = json.dumps({"name": "web", "base_ct_template": APPLIANCE, "description": "x" * limit}).encode()
    expected = messages.BODY_TOO_LARGE.format(limit=limit, setting="CTFORGE_MAX_BODY_BYTES")
    sized = api.post("/templates", "bob", content=body, headers={"Content-Type": "application/json"})
    assert sized.status_code == 413 and detail(sized) == expected
    assert sized.headers["content-type"] == "application/json"

    def chunks():
        for start in range(0, len(body), 4096):
            yield body[start:start + 4096]

    chunked = api.post("/templates", "bob", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and detail(chunked) == expected
    assert chunked.headers["content-type"] == "application/json"
    assert api.get("/templates", "bob").json()["count"] == 0


def test_malformed_json_is_a_422(api) -> None:
    answer = api.post("/templates", "bob", content=b'{"name": "web",',
                      headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and "is not valid JSON" in detail(answer)
    answer = api.post("/templates", "bob", content=b"name=web",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= answer.status_code < 500 and detail(answer)


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_a_non_uuid_id_in_the_path_is_a_422(api, method) -> None:
    answer = api.request(method, "/templates/not-a-uuid", "bob", json={} if method == "PATCH" else None)
    assert answer.status_code == 422
    assert detail(answer).startswith("path.template_id")


def test_unknown_routes_and_ids_are_json_404s(api) -> None:
    missing = uuid.uuid4()
    answer = api.get(f"/templates/{missing}", "bob")
    assert answer.status_code == 404 and detail(answer) == messages.TEMPLATE_NOT_FOUND.format(id=missing)
    answer = api.client.get("/api/v2/templates")
    assert answer.status_code == 404 and detail(answer) == messages.ROUTE_NOT_FOUND
    answer = api.get("/stacks/cobol")
    assert answer.status_code == 404
    known = ", ".join(api.catalog.ids())
    assert detail(answer) == messages.STACK_NOT_FOUND.format(stack_id="cobol", known=known)


# --- the catalog, the service routes and the access log -------------------------------------------

def test_the_catalog_is_listed(api) -> None:
    stacks = api.get("/stacks").json()
    assert [s["id"] for s in stacks["data"]] == api.catalog.ids()
    assert stacks["count"] == len(api.catalog.ids()) == 6
    assert api.get("/stacks/claude_cli").json()["requires"] == ["nodejs"]


def test_health_ready_and_version(api) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert {c["name"]: c["ok"] for c in ready.json()["checks"]} == {"database": True, "proxmox": True}
    assert api.get("/version").json() == {
        "version": version("ctforge"), "api": "v1", "database_revision": HEAD_REVISION}


def test_the_access_log_has_one_line_per_request_and_no_token(api, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ctforge.access")
    web = api.create("bob", "web")
    api.get(f"/templates/{web['id']}", "bob")
    api.patch(f"/templates/{web['id']}", "bob", json={"description": "d"})
    api.get("/templates", headers={"Authorization": f"Bearer {api.tokens['carol']}"}, params={"limit": 2})
    api.post("/templates", headers={"Authorization": "Bearer ctf_guessed"}, json={})
    lines = [r.getMessage() for r in caplog.records if r.name == "ctforge.access"]
    assert len(lines) == 5
    assert '"POST /api/v1/templates" 201' in lines[0]
    assert f'"PATCH /api/v1/templates/{web["id"]}" 200' in lines[2]
    assert '"POST /api/v1/templates" 401' in lines[4]
    for token in (*api.tokens.values(), "ctf_guessed", "limit=2"):
        assert all(token not in line for line in lines)
    assert API in lines[1]


def test_a_database_that_does_not_answer_is_a_503_not_a_500(tmp_path) -> None:
    down = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/ctforge")
    client = TestClient(create_app(service_settings(tmp_path), db=down, check_database=False),
                        raise_server_exceptions=False)
    for method, path in (("GET", "/templates"), ("GET", "/templates/tree"),
                         ("POST", "/templates"), ("GET", "/vmids")):
        answer = client.request(method, f"{API}{path}", headers={"Authorization": "Bearer ctf_x"},
                                json={"name": "web", "base_ct_template": APPLIANCE})
        assert answer.status_code == 503, (path, answer.text)
        assert detail(answer) == messages.DATABASE_BUSY
    assert client.get(f"{API}/health").status_code == 200
    ready = client.get(f"{API}/ready")
    assert ready.status_code == 503 and ready.json()["checks"][0]["ok"] is False
    assert client.get(f"{API}/version").json()["database_revision"] is None


def test_a_database_behind_is_not_ready(tmp_path) -> None:
    behind = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    client = TestClient(create_app(service_settings(tmp_path), db=behind, check_database=False))
    ready = client.get(f"{API}/ready")
    assert ready.status_code == 503
    [database] = [c for c in ready.json()["checks"] if c["name"] == "database"]
    assert database["ok"] is False and "`ctforge db upgrade`" in database["detail"]
    behind.dispose()
