"""Races between requests on PostgreSQL, with real commits (each request its own transaction): a
request that waits on another's lock gets the answer that names what happened, never a 500 and never
another rule's message. The other writer is a session the test holds open; the request is sent from
a thread, and the test commits once PostgreSQL shows that request waiting on a lock."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text

from ctforge import messages
from ctforge.db import Database
from ctforge.db.models import Template
from ctforge.records import templates as records
from service_helpers import APPLIANCE, ApiClient, service_settings

LOCK_DEADLINE = 20.0


def wait_for_a_lock_wait(db: Database) -> None:
    """Return once a backend of this database waits on a lock (the request reached the other writer)."""
    deadline = time.monotonic() + LOCK_DEADLINE
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    while True:
        with db.engine.connect() as connection:
            if connection.execute(query).scalar_one() > 0:
                return
        assert time.monotonic() < deadline, "the request never waited on the other writer's lock"
        time.sleep(0.02)  # the interval between looks; the deadline bounds the wait


def test_a_child_created_while_its_parent_is_deleted_is_told_the_parent_is_gone(
        fresh_postgresql_database, tmp_path: Path) -> None:
    db = fresh_postgresql_database
    api = ApiClient(db, service_settings(tmp_path / "state"))
    parent = api.create("bob", "parent")
    api.make_ready(parent["id"])
    with ThreadPoolExecutor(1) as pool, db.writing() as deleting:
        row = deleting.get(Template, uuid.UUID(parent["id"]))
        records.delete_template(deleting, row.owner, row)  # deleted, not yet committed
        answer = pool.submit(api.post, "/templates", "bob", json={"name": "child", "parent_id": parent["id"]})
        wait_for_a_lock_wait(db)
    answer = answer.result(timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == messages.PARENT_NOT_FOUND.format(id=parent["id"])
    assert api.get("/templates", "bob").json()["count"] == 0


def test_a_parent_deleted_while_a_child_is_created_is_refused_for_the_child(
        fresh_postgresql_database, tmp_path: Path) -> None:
    db = fresh_postgresql_database
    api = ApiClient(db, service_settings(tmp_path / "state"))
    parent = api.create("bob", "parent")
    api.make_ready(parent["id"])
    with ThreadPoolExecutor(1) as pool, db.writing() as creating:
        bob = creating.get(Template, uuid.UUID(parent["id"])).owner
        fields = records.TemplateFields(name="child", parent_id=uuid.UUID(parent["id"]))
        records.create_template(creating, api.catalog, api.settings, bob, fields)  # not yet committed
        answer = pool.submit(api.delete, f"/templates/{parent['id']}", "bob")
        wait_for_a_lock_wait(db)
    answer = answer.result(timeout=30)
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"] == messages.TEMPLATE_HAS_CHILDREN.format(name="parent", children="'child'")
    assert api.get("/templates", "bob").json()["count"] == 2


def test_the_same_name_created_at_once_is_one_201_and_the_rest_409(
        fresh_postgresql_database, tmp_path: Path) -> None:
    api = ApiClient(fresh_postgresql_database, service_settings(tmp_path / "state"))
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(
            lambda _i: api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE}),
            range(10)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 9, [a.text for a in answers]
    assert {a.json()["detail"] for a in answers if a.status_code == 409} == {
        messages.TEMPLATE_NAME_TAKEN.format(name="web")}
    assert api.get("/vmids", "bob").json()["count"] == 1
