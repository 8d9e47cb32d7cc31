"""VMID allocation through the API: the lowest free id, reuse, an exhausted range, 50 creates at
once on a file-backed SQLite and on a real PostgreSQL database (real commits, not the rollback
fixture), moving a claim, and Proxmox's own view (a real minipve: a CT made by hand, Proxmox down
or refusing the token)."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from ctforge import messages
from ctforge.db import Database
from ctforge.db.models import Template, VmidClaim
from ctforge.proxmox import ProxmoxView
from ctforge.records import vmids
from ctforge.settings import ProxmoxSettings, VmidRange
from playbook_helpers import api as proxmox_client
from playbook_helpers import destroy, wait_task
from service_helpers import APPLIANCE, ApiClient, service_settings, table_rows

HAND_RANGE = "7600-7609"  # the minipve tests' own ids: no other test makes CTs there
HAND_VMID = 7600


def claims(db: Database) -> dict[int, uuid.UUID | None]:
    with db.reading() as session:
        return {c.vmid: c.template_id for c in session.scalars(select(VmidClaim))}


def test_the_lowest_free_id_is_claimed_and_a_deleted_records_id_reused(api) -> None:
    first, second, third = (api.create("bob", f"t{i}") for i in range(3))
    assert [first["vmid"], second["vmid"], third["vmid"]] == [500, 501, 502]
    assert claims(api.db) == {500: uuid.UUID(first["id"]), 501: uuid.UUID(second["id"]),
                              502: uuid.UUID(third["id"])}
    assert api.create("bob", "chosen", vmid=504)["vmid"] == 504
    assert api.create("bob", "gap")["vmid"] == 503  # the gap below a chosen id is filled first
    assert api.delete(f"/templates/{second['id']}", "bob").status_code == 204
    assert 501 not in claims(api.db)
    assert api.create("bob", "reuse")["vmid"] == 501
    assert api.create("bob", "after")["vmid"] == 505


def test_an_exhausted_range_is_a_409_naming_it(make_api) -> None:
    api = make_api(template_vmids="7600-7602")
    assert [api.create("bob", f"t{i}")["vmid"] for i in range(3)] == [7600, 7601, 7602]
    before = table_rows(api.db)
    answer = api.post("/templates", "bob", json={"name": "one-more", "base_ct_template": APPLIANCE})
    assert answer.status_code == 409
    assert answer.json()["detail"] == messages.VMID_RANGE_EXHAUSTED.format(kind="template", range="7600-7602")
    assert "7600-7602" in answer.json()["detail"]
    assert table_rows(api.db) == before


def test_vmids_lists_the_claims_by_range(api) -> None:
    web = api.create("bob", "web")
    api.create("carol", "private")
    answer = api.get("/vmids", "bob").json()
    assert answer["count"] == 2
    ranges = {r["kind"]: r for r in answer["ranges"]}
    assert ranges["template"] == {"kind": "template", "first": 500, "last": 999, "size": 500, "claimed": 2}
    assert ranges["workspace"]["claimed"] == 0
    mine, theirs = answer["data"]
    assert (mine["vmid"], mine["template_id"], mine["template_name"], mine["owner"]) == (
        500, web["id"], "web", "bob")
    assert (theirs["vmid"], theirs["template_name"], theirs["owner"]) == (501, None, None)  # not bob's
    assert mine["on_cluster"] is None
    assert answer["proxmox"] == {"configured": False, "reachable": None, "error": None, "guests": []}


def test_move_claim_takes_the_next_free_id(api) -> None:
    web = api.create("bob", "web")
    other = api.create("bob", "other")
    assert (web["vmid"], other["vmid"]) == (500, 501)
    with api.db.writing() as session:
        template = session.get(Template, uuid.UUID(web["id"]))
        new = vmids.move_claim(session, template, VmidRange(first=500, last=999), in_use={502})
        assert new == 503 and template.vmid == 503
    assert claims(api.db) == {501: uuid.UUID(other["id"]), 503: uuid.UUID(web["id"])}
    assert api.get(f"/templates/{web['id']}", "bob").json()["vmid"] == 503
    assert api.create("bob", "third")["vmid"] == 500  # the id given up is free again


# --- concurrency: real commits --------------------------------------------------------------------

def create_at_once(db: Database, tmp_path: Path, count: int = 50, other: Database | None = None) -> list[int]:
    """`count` threads POST /templates at the same moment (alternating between two apps, each with
    its own engine and pool, when `other` is given); returns the VMIDs they got."""
    apps = [ApiClient(db, service_settings(tmp_path / "state"))]
    if other is not None:
        apps.append(ApiClient(other, service_settings(tmp_path / "state"), tokens=apps[0].tokens))
    start = threading.Barrier(count)

    def create(i: int):
        start.wait()
        return apps[i % len(apps)].post("/templates", ("bob", "carol")[i % 2],
                                        json={"name": f"t{i}", "base_ct_template": APPLIANCE})

    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(create, range(count)))
    refused = [a.text for a in answers if a.status_code != 201]
    assert refused == []
    got = [a.json()["vmid"] for a in answers]
    assert len(set(got)) == count  # no VMID twice
    with db.reading() as session:
        rows = session.execute(select(Template.vmid, Template.id)).all()
        claimed = {tid: vmid for tid, vmid in session.execute(select(VmidClaim.template_id, VmidClaim.vmid))}
    assert {template_id: vmid for vmid, template_id in rows} == claimed
    assert sorted(claimed.values()) == sorted(got) == list(range(500, 500 + count))  # the lowest ones
    return got


def test_fifty_creates_at_once_on_sqlite_get_distinct_vmids(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'concurrent.db'}")
    db.upgrade()
    try:
        create_at_once(db, tmp_path)
    finally:
        db.dispose()


def test_fifty_creates_at_once_on_postgresql_get_distinct_vmids(fresh_postgresql_database, tmp_path) -> None:
    create_at_once(fresh_postgresql_database, tmp_path)


def test_two_services_on_one_postgresql_never_share_a_vmid(fresh_postgresql_database, tmp_path) -> None:
    second = Database(fresh_postgresql_database.url)  # another engine and pool: as a second process has
    try:
        create_at_once(fresh_postgresql_database, tmp_path, count=60, other=second)
    finally:
        second.dispose()


# --- Proxmox's own view ---------------------------------------------------------------------------

def proxmox_settings(env: dict[str, str], **overrides: str) -> ProxmoxSettings:
    values = {key.removeprefix("PROXMOX_").lower(): value for key, value in env.items()
              if key.startswith("PROXMOX_")}
    return ProxmoxSettings(**{**values, **overrides})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


def test_proxmox_down_is_a_503_and_writes_nothing(make_api) -> None:
    port = closed_port()
    settings = ProxmoxSettings(host="127.0.0.1", port=port, token_id="t", token_secret="s",
                               validate_certs=False, timeout=5)
    api = make_api(proxmox=settings)
    before = table_rows(api.db)
    answer = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE})
    assert answer.status_code == 503
    assert answer.json()["detail"] == messages.PROXMOX_DOWN.format(
        where=f"127.0.0.1:{port}", error="ConnectionError")
    assert table_rows(api.db) == before
    listing = api.get("/vmids", "bob").json()["proxmox"]
    assert listing["configured"] is True and listing["reachable"] is False
    assert listing["error"] == answer.json()["detail"]
    ready = api.get("/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False


@pytest.fixture(scope="module")
def hand_made_ct(minipve) -> Iterator[int]:
    """A CT made by hand on the minipve at the first id of HAND_RANGE, destroyed after the module's
    tests (each test's records are rolled back; the CT is the cluster's, made once)."""
    px, node = proxmox_client(minipve.env), minipve.env["PROXMOX_NODE"]
    appliance = px.nodes(node).storage("local").content.get(content="vztmpl")[0]["volid"]
    wait_task(px, node, px.nodes(node).lxc.post(vmid=HAND_VMID, hostname="handmade", ostemplate=appliance,
                                                storage="local", rootfs="local:1"))
    try:
        yield HAND_VMID
    finally:
        destroy(px, node, HAND_VMID)


def test_a_ct_made_by_hand_is_skipped_and_listed_unclaimed(make_api, minipve, hand_made_ct) -> None:
    api = make_api(template_vmids=HAND_RANGE, proxmox=proxmox_settings(minipve.env))
    web = api.create("bob", "web")
    assert web["vmid"] == hand_made_ct + 1
    answer = api.post("/templates", "bob", json={"name": "b", "base_ct_template": APPLIANCE,
                                                 "vmid": hand_made_ct})
    assert answer.status_code == 409
    assert answer.json()["detail"] == messages.VMID_IN_USE_ON_CLUSTER.format(vmid=hand_made_ct)
    listing = api.get("/vmids", "bob").json()
    assert listing["proxmox"]["configured"] is True and listing["proxmox"]["reachable"] is True
    guests = {g["vmid"]: g for g in listing["proxmox"]["guests"]}
    hand = guests[hand_made_ct]
    assert (hand["claimed"], hand["in_range"]) == (False, "template")
    assert (hand["name"], hand["type"]) == ("handmade", "lxc")
    [claim] = listing["data"]
    assert claim["vmid"] == hand_made_ct + 1 and claim["on_cluster"] is False


def test_proxmox_refusing_the_token_is_a_503(make_api, minipve) -> None:
    api = make_api(template_vmids=HAND_RANGE,
                   proxmox=proxmox_settings(minipve.env, token_secret="not-the-secret"))
    before = table_rows(api.db)
    answer = api.post("/templates", "bob", json={"name": "web", "base_ct_template": APPLIANCE})
    assert answer.status_code == 503, answer.text
    where = f"{minipve.env['PROXMOX_HOST']}:{minipve.env['PROXMOX_PORT']}"
    prefix = messages.PROXMOX_REFUSED.split("(HTTP")[0].format(where=where)
    assert answer.json()["detail"].startswith(prefix + "(HTTP 401")
    assert "not-the-secret" not in answer.text
    assert table_rows(api.db) == before


def test_the_proxmox_view_reads_every_guest_once_per_cache_window(minipve, hand_made_ct) -> None:
    view = ProxmoxView(proxmox_settings(minipve.env), cache_seconds=60)
    first = view.guests()
    assert hand_made_ct in view.used_vmids()
    assert view.guests() is first  # served from the cache
    assert view.guests(fresh=True) is not first
