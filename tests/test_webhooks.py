"""Outgoing webhooks over real HTTP: a receiver (http.server on 127.0.0.1, a free port) records
what the deliverer's thread sends and can answer 500 to the first N requests or to all.

The routes run on the rolled-back `db` of conftest. The deliveries run on a database that really
commits (a SQLite file, or a fresh PostgreSQL database), since the deliverer's thread opens its
own sessions beside the test's: the rolled-back `db` puts every session on one connection, which
two threads must not share. Nothing sleeps: a test waits on the receiver's condition with a
deadline, then stops the deliverer (stop() joins the thread once it has written the answer down).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from ctforge import messages, notify
from ctforge.api import schemas
from ctforge.db import Database
from ctforge.db.models import WebhookDelivery, WebhookSubscription
from service_helpers import ApiClient, service_settings

DEADLINE = 20.0  # seconds a test waits for the deliverer before it fails
BACKOFF = 0.05


# --- a subscriber ---------------------------------------------------------------------------------

@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on loopback that records every POST; the first `fail_first` (or, with
    fail_always, every one) get a 500, the others a 204."""

    def __init__(self, fail_first: int = 0, fail_always: bool = False) -> None:
        self.received: list[Received] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.changed:
                    receiver.received.append(Received(dict(self.headers), body, time.monotonic()))
                    failing = fail_always or len(receiver.received) <= fail_first
                    receiver.changed.notify_all()
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int) -> list[Received]:
        with self.changed:
            arrived = self.changed.wait_for(lambda: len(self.received) >= count, timeout=DEADLINE)
            assert arrived, f"{len(self.received)} of {count} requests arrived within {DEADLINE} s"
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def verified(secret: str, got: Received) -> bool:
    """What a subscriber does: the HMAC of the raw body, compared in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, got.headers["X-Ctforge-Signature"])


# --- a service whose database commits -----------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def committed_db(request, tmp_path) -> Iterator[Database]:
    if request.param == "postgresql":
        yield request.getfixturevalue("fresh_postgresql_database")
        return
    db = Database(f"sqlite:///{tmp_path / 'committed.db'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def live(committed_db, tmp_path) -> Iterator[Any]:
    """live(**settings) -> ApiClient over the committed database, its deliverer running; each is
    stopped at the end (stop() is idempotent, so a test may stop one first)."""
    clients: list[ApiClient] = []

    def make(**settings: Any) -> ApiClient:
        settings.setdefault("webhook_backoff_seconds", BACKOFF)
        settings.setdefault("webhook_timeout_seconds", 5.0)
        tokens = clients[0].tokens if clients else None
        client = ApiClient(committed_db, service_settings(tmp_path / f"state{len(clients)}", **settings),
                           tokens=tokens)
        client.service.deliverer.start()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.service.deliverer.stop()


def subscribe(api: ApiClient, url: str, **fields: Any) -> dict[str, Any]:
    answer = api.post("/webhooks", "alice", json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def publish(api: ApiClient, event: str, data: dict[str, Any]) -> None:
    """What the lead's code does: publish in the transaction of the change, commit, wake."""
    with api.db.writing() as session:
        notify.publish(session, event, data)
    api.service.deliverer.wake()


def deliveries(api: ApiClient, webhook_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/webhooks/{webhook_id}/deliveries", "alice")
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


STATUS_EVENT = {"template_id": str(uuid.uuid4()), "name": "Base", "from": "staging", "to": "ready",
                "error": None, "job_id": str(uuid.uuid4())}


# --- delivery -----------------------------------------------------------------------------------

def test_a_subscriber_gets_the_event_signed_with_its_secret(live, receiver_factory, caplog):
    caplog.set_level(logging.DEBUG)
    receiver = receiver_factory()
    api = live()
    secret = "s3cret-" + uuid.uuid4().hex
    hook = subscribe(api, receiver.url, secret=secret)
    assert hook["secret"] == secret

    publish(api, "template.status", STATUS_EVENT)
    [got] = receiver.wait_for(1)
    api.service.deliverer.stop()

    assert verified(secret, got)
    assert not verified(secret + "x", got)
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Ctforge-Event"] == "template.status"
    body = got.json()
    assert set(body) == {"id", "event", "at", "data"}
    assert body["event"] == "template.status" and body["data"] == STATUS_EVENT
    uuid.UUID(body["id"])
    assert body["at"].endswith("+00:00")

    [logged] = deliveries(api, hook["id"])
    assert logged["body"].encode() == got.body  # the log shows the exact bytes sent
    assert got.headers["X-Ctforge-Delivery"] == str(logged["id"])
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("delivered", 1, 204)
    assert logged["delivered_at"] is not None and logged["next_attempt_at"] is None
    assert secret not in caplog.text
    assert "delivered" in caplog.text  # the log was captured at all


def test_a_subscriber_failing_twice_gets_it_on_the_third_attempt(live, receiver_factory, caplog):
    caplog.set_level(logging.DEBUG)
    receiver = receiver_factory(fail_first=2)
    api = live(webhook_attempts=5)
    hook = subscribe(api, receiver.url)

    publish(api, "template.status", STATUS_EVENT)
    first, second, third = receiver.wait_for(3)
    api.service.deliverer.stop()

    assert first.body == second.body == third.body  # the same event, the same id, each time
    assert all(verified(hook["secret"], got) for got in (first, second, third))
    # 2x longer each time: BACKOFF after the first failure, 2*BACKOFF after the second
    assert second.at - first.at >= BACKOFF
    assert third.at - second.at >= 2 * BACKOFF
    [logged] = deliveries(api, hook["id"])
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("delivered", 3, 204)
    assert logged["last_error"] is None
    assert len(receiver.received) == 3
    assert hook["secret"] not in caplog.text
    assert "failed (attempt 1 of 5)" in caplog.text


def test_a_subscriber_that_always_fails_ends_failed_after_the_attempts(live, receiver_factory, caplog):
    caplog.set_level(logging.DEBUG)
    receiver = receiver_factory(fail_always=True)
    api = live(webhook_attempts=3)
    hook = subscribe(api, receiver.url)

    publish(api, "template.status", STATUS_EVENT)
    receiver.wait_for(3)
    api.service.deliverer.stop()
    assert api.service.deliverer.deliver_due() > 0  # asked again: nothing is due any more
    assert len(receiver.received) == 3

    [logged] = deliveries(api, hook["id"])
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("failed", 3, 500)
    assert logged["last_error"] == messages.WEBHOOK_HTTP_STATUS.format(
        status=500, reason="Internal Server Error")
    assert logged["next_attempt_at"] is None and logged["delivered_at"] is None
    assert hook["secret"] not in caplog.text


def test_a_refused_connection_is_an_attempt_with_its_reason(live, receiver_factory):
    receiver = receiver_factory()
    url = receiver.url
    receiver.close()  # nothing listens on the port any more
    api = live(webhook_attempts=1)
    hook = subscribe(api, url)
    publish(api, "template.status", STATUS_EVENT)
    api.service.deliverer.stop()
    api.service.deliverer.deliver_due()  # in this thread: the one attempt, then nothing due

    [logged] = deliveries(api, hook["id"])
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("failed", 1, None)
    assert logged["last_error"].startswith(messages.WEBHOOK_SEND_FAILED.format(error="ConnectionError"))


def test_each_subscriber_gets_the_events_it_asked_for(live, receiver_factory):
    everything, jobs_only = receiver_factory(), receiver_factory()
    api = live()
    all_hook = subscribe(api, everything.url)
    job_hook = subscribe(api, jobs_only.url, events=["job.finished"])

    publish(api, "template.status", STATUS_EVENT)
    publish(api, "job.finished", {"id": str(uuid.uuid4()), "kind": "build", "status": "successful"})
    everything.wait_for(2)
    jobs_only.wait_for(1)
    api.service.deliverer.stop()

    assert [got.headers["X-Ctforge-Event"] for got in jobs_only.received] == ["job.finished"]
    assert sorted(got.headers["X-Ctforge-Event"] for got in everything.received) == \
        ["job.finished", "template.status"]
    assert [d["event"] for d in deliveries(api, job_hook["id"])] == ["job.finished"]
    assert len(deliveries(api, all_hook["id"])) == 2


def test_a_template_moving_status_tells_the_subscriber_each_move(live, receiver_factory):
    """records.templates.move_status publishes in its own transaction: a template built to ready
    is three template.status events, in order, once the deliverer is woken."""
    receiver = receiver_factory()
    api = live()
    hook = subscribe(api, receiver.url, events=["template.status"])
    template = api.create("alice", "Base")
    api.make_ready(template["id"])
    api.service.deliverer.wake()
    arrived = receiver.wait_for(3)
    api.service.deliverer.stop()
    # one thread sends them in the order they were queued
    moves = [(got.json()["data"]["from"], got.json()["data"]["to"]) for got in arrived]
    assert moves == [("pending", "provisioning"), ("provisioning", "staging"), ("staging", "ready")]
    assert {got.json()["data"]["template_id"] for got in arrived} == {template["id"]}
    assert all(verified(hook["secret"], got) for got in arrived)


def test_an_event_exists_only_if_its_transaction_commits(live, receiver_factory):
    receiver = receiver_factory()
    api = live()
    hook = subscribe(api, receiver.url)
    with pytest.raises(RuntimeError), api.db.writing() as session:
        notify.publish(session, "template.status", STATUS_EVENT)
        raise RuntimeError("the change failed")
    assert deliveries(api, hook["id"]) == []
    with pytest.raises(ValueError, match="unknown webhook event"), api.db.writing() as session:
        notify.publish(session, "template.renamed", {})


def test_a_ping_reaches_that_subscriber_only(live, receiver_factory):
    pinged, other = receiver_factory(), receiver_factory()
    api = live()
    hook = subscribe(api, pinged.url, events=["job.finished"])
    subscribe(api, other.url)

    answer = api.post(f"/webhooks/{hook['id']}/ping", "alice")
    assert answer.status_code == 202, answer.text
    [got] = pinged.wait_for(1)
    api.service.deliverer.stop()

    assert got.json()["event"] == "ping"
    assert got.json()["data"] == {"subscription_id": hook["id"], "by": "alice"}
    assert verified(hook["secret"], got)
    assert other.received == []
    assert deliveries(api, hook["id"])[0]["status"] == "delivered"


def test_two_services_on_one_database_send_each_delivery_once(live, receiver_factory):
    """Two apps, each its own engine and deliverer thread, as two processes: every delivery is
    claimed by one of them (the compare-and-set UPDATE) and arrives once."""
    receiver = receiver_factory()
    first, second = live(), live()
    hook = subscribe(first, receiver.url)
    events = 30
    with first.db.writing() as session:
        for n in range(events):
            notify.publish(session, "job.finished", {"n": n})
    first.service.deliverer.wake()
    second.service.deliverer.wake()
    receiver.wait_for(events)
    first.service.deliverer.stop()
    second.service.deliverer.stop()

    ids = [got.headers["X-Ctforge-Delivery"] for got in receiver.received]
    assert len(ids) == events and len(set(ids)) == events
    assert sorted(got.json()["data"]["n"] for got in receiver.received) == list(range(events))
    log = deliveries(first, hook["id"])
    assert {d["status"] for d in log} == {"delivered"} and {d["attempts"] for d in log} == {1}


def test_a_last_attempt_lost_to_a_stopped_process_ends_failed_saying_so(live, receiver_factory):
    """A process that claimed the last attempt and died before writing the answer: once the lease
    is over, the next pass marks it failed instead of sending an attempt past the limit."""
    api = live(webhook_attempts=2)
    api.service.deliverer.stop()
    hook = subscribe(api, receiver_factory().url)
    publish(api, "template.status", STATUS_EVENT)
    with api.db.writing() as session:  # as the dead process left it: claimed, its lease run out
        delivery = session.scalars(select(WebhookDelivery)).one()
        delivery.attempts = 2
    api.service.deliverer.deliver_due()
    [logged] = deliveries(api, hook["id"])
    assert logged["status"] == "failed"
    assert logged["last_error"] == messages.WEBHOOK_LAST_ATTEMPT_LOST.format(attempts=2, limit=2)


# --- the routes ---------------------------------------------------------------------------------

def test_webhooks_are_for_admins(api):
    hook = subscribe(api, "http://127.0.0.1:9/hook")
    one = f"/webhooks/{hook['id']}"
    for method, path in (("POST", "/webhooks"), ("GET", "/webhooks"), ("DELETE", one),
                         ("GET", f"{one}/deliveries"), ("POST", f"{one}/ping")):
        body = {"json": {"url": "http://127.0.0.1:9/x"}} if method == "POST" else {}
        answer = api.request(method, path, "bob", **body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["detail"] == messages.WEBHOOKS_NEED_ADMIN
        assert api.request(method, path, None, **body).status_code == 401
    with api.db.reading() as session:
        assert session.scalars(select(WebhookSubscription.url)).all() == ["http://127.0.0.1:9/hook"]
        assert session.scalars(select(WebhookDelivery)).all() == []


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1/hook", "file:///etc/passwd", "javascript:alert(1)", "127.0.0.1:8080/hook",
    "http://", "http://user:password@127.0.0.1/hook", "http://127.0.0.1/a b", "http://127.0.0.1/\n",
    "https://" + "a" * 2050,
])
def test_a_url_that_is_not_http_is_refused(api, url):
    answer = api.post("/webhooks", "alice", json={"url": url})
    assert answer.status_code == 422, answer.text
    if len(url) <= 2048:
        assert answer.json()["detail"] == f"body.url: must be {schemas.PATTERN_RULES['url']}"
    else:
        assert answer.json()["detail"].startswith("body.url: ")
    assert api.get("/webhooks", "alice").json()["count"] == 0


@pytest.mark.parametrize("url", [
    "http://[0]/hook", "https://[66caFa0e6]:443/", "http://127.0.0.1:99999/", "http://127.0.0.1:0/",
    "https://" + "a" * 64 + ".example/", "https://" + ".".join(["a" * 60] * 5) + "/",
])
def test_a_url_no_request_can_go_to_is_refused(api, url):
    answer = api.post("/webhooks", "alice", json={"url": url})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == messages.WEBHOOK_URL_UNUSABLE
    assert api.get("/webhooks", "alice").json()["count"] == 0


@pytest.mark.parametrize("url", ["http://[::1]:8080/hook", "https://" + "a" * 63 + ".example:65535/x?y=1"])
def test_edge_urls_that_can_be_sent_to_are_taken(api, url):
    assert subscribe(api, url)["url"] == url


def test_an_unparsable_url_in_a_row_is_a_failed_attempt_not_a_stuck_deliverer(live, receiver_factory):
    """A URL written before today's checks (or by hand) that urllib3 cannot even parse: the attempt
    fails with the reason, and the deliveries after it still go."""
    receiver = receiver_factory()
    api = live(webhook_attempts=1)
    good = subscribe(api, receiver.url)
    with api.db.writing() as session:
        session.add(WebhookSubscription(url="https://" + "a" * 70 + ".example/", secret="k" * 20,
                                        created_by="alice"))
    publish(api, "template.status", STATUS_EVENT)
    receiver.wait_for(1)
    api.service.deliverer.stop()
    api.service.deliverer.deliver_due()
    with api.db.reading() as session:
        rows = {d.subscription_id: d for d in session.scalars(select(WebhookDelivery))}
    assert rows.pop(uuid.UUID(good["id"])).status == "delivered"
    [bad] = rows.values()
    assert (bad.status, bad.attempts) == ("failed", 1)
    assert bad.last_error.startswith(messages.WEBHOOK_SEND_FAILED.format(error=""))


def test_unknown_events_and_short_secrets_are_refused(api):
    for body, field in (({"events": ["job.started"]}, "body.events.0"), ({"secret": "short"}, "body.secret"),
                        ({"events": ["job.finished", "job.finished"]}, "body.events")):
        answer = api.post("/webhooks", "alice", json={"url": "https://hooks.example/x", **body})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith(f"{field}: "), answer.text


def test_the_secret_is_shown_once_and_never_listed(api, caplog):
    caplog.set_level(logging.DEBUG)
    made = subscribe(api, "https://hooks.example/ci", events=["job.finished"])
    secret = made["secret"]
    assert len(secret) >= 40  # made for us: token_urlsafe(32)
    given = subscribe(api, "https://hooks.example/other", secret="a-secret-of-my-own-choosing")
    listing = api.get("/webhooks", "alice")
    assert listing.status_code == 200
    assert listing.json()["count"] == 2
    assert [h["url"] for h in listing.json()["data"]] == ["https://hooks.example/ci", "https://hooks.example/other"]
    assert all("secret" not in h for h in listing.json()["data"])
    ping = api.post(f"/webhooks/{made['id']}/ping", "alice")
    log = api.get(f"/webhooks/{made['id']}/deliveries", "alice")
    for answer in (listing, ping, log):
        assert secret not in answer.text and "a-secret-of-my-own-choosing" not in answer.text
    assert secret not in caplog.text and "a-secret-of-my-own-choosing" not in caplog.text
    assert given["secret"] == "a-secret-of-my-own-choosing"


def test_delete_removes_the_subscription_and_its_log(api):
    hook = subscribe(api, "https://hooks.example/x")
    assert api.post(f"/webhooks/{hook['id']}/ping", "alice").status_code == 202
    assert api.delete(f"/webhooks/{hook['id']}", "alice").status_code == 204
    assert api.get("/webhooks", "alice").json() == {"data": [], "count": 0}
    gone = api.get(f"/webhooks/{hook['id']}/deliveries", "alice")
    assert gone.status_code == 404
    assert gone.json()["detail"] == messages.WEBHOOK_NOT_FOUND.format(id=hook["id"])
    assert api.delete(f"/webhooks/{hook['id']}", "alice").status_code == 404
    with api.db.reading() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []


def test_the_delivery_log_is_newest_first_and_paged(api):
    hook = subscribe(api, "https://hooks.example/x")
    pings = [api.post(f"/webhooks/{hook['id']}/ping", "alice").json() for _ in range(3)]
    assert [p["status"] for p in pings] == ["pending"] * 3
    assert [p["attempts"] for p in pings] == [0] * 3
    assert [json.loads(p["body"])["event"] for p in pings] == ["ping"] * 3
    ids = [p["id"] for p in pings]
    page = api.get(f"/webhooks/{hook['id']}/deliveries?limit=2", "alice").json()
    assert page["count"] == 3 and [d["id"] for d in page["data"]] == ids[::-1][:2]
    rest = api.get(f"/webhooks/{hook['id']}/deliveries?limit=2&offset=2", "alice").json()
    assert [d["id"] for d in rest["data"]] == ids[:1]
    assert api.get(f"/webhooks/{hook['id']}/deliveries?limit=0", "alice").status_code == 422


def test_the_events_a_subscription_may_name_are_the_events_published():
    assert typing.get_args(schemas.WebhookEvent) == notify.EVENTS


def test_sign_is_hmac_sha256_over_the_body():
    assert notify.sign("key", b"The quick brown fox jumps over the lazy dog") == \
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
