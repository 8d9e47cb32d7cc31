"""Outgoing webhooks: an event is queued in the transaction of the change it reports, then sent,
signed, by one thread per service process, again with backoff while the subscriber fails.

    publish(session, "job.finished", {...})    # in the caller's transaction: no commit, no event
    session.commit(); service.deliverer.wake()  # then the deliverer looks at once

What a subscriber gets, as a POST with Content-Type application/json:

    {"id": "<uuid, the same on every attempt>", "event": "job.finished",
     "at": "2026-12-02T03:04:05.123456+00:00", "data": {...}}

    X-Ctforge-Event: job.finished
    X-Ctforge-Delivery: 42                   (the delivery log's id)
    X-Ctforge-Signature: sha256=<hex HMAC-SHA256 of the body's bytes, keyed by the secret>

The subscriber checks the signature over the raw body bytes, before parsing them, in constant time:

    expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers["X-Ctforge-Signature"]): refuse it

Delivery is at least once: a process that stops between sending and recording the answer leaves
the delivery to be sent again once its lease runs out, so a subscriber drops an `id` it has seen.
A 2xx is delivered; anything else (another status, a redirect, a refused connection, a timeout) is
sent again after webhook_backoff_seconds, doubled each attempt up to webhook_backoff_max_seconds,
until webhook_attempts attempts have failed.

Two processes on one database never send one delivery at once: before sending, a process claims
it with one compare-and-set UPDATE (still pending, still due, attempts below the limit), which
moves next_attempt_at forward by a lease and counts the attempt; the UPDATE's row count says who
won. It is one statement on SQLite and PostgreSQL alike (SQLite's writer holds the write lock;
PostgreSQL re-checks the WHERE of a row another transaction changed meanwhile, so the loser matches
nothing), and unlike SELECT ... FOR UPDATE SKIP LOCKED it holds no lock or transaction open for the
length of an HTTP request, and a crashed claimer's lease simply expires.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import version
from typing import Any

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ctforge import messages
from ctforge.db.models import WebhookDelivery, WebhookSubscription, utcnow

EVENTS = ("job.finished", "template.status")  # what a subscription may ask for (schemas.WebhookEvent)
PING = "ping"  # sent to one subscriber on an admin's request, whatever its list
SIGNATURE_HEADER = "X-Ctforge-Signature"
EVENT_HEADER = "X-Ctforge-Event"
DELIVERY_HEADER = "X-Ctforge-Delivery"
# Looked at this often even unwoken: another process may have queued, or a backoff run out.
IDLE_POLL_SECONDS = 5.0
# A claim outlives the send it covers (connect and read time-outs, then the answer written).
LEASE_MARGIN_SECONDS = 30.0
BATCH = 50
ERROR_CHARS = 500

log = logging.getLogger("ctforge.notify")


def sign(secret: str, body: bytes) -> str:
    """The X-Ctforge-Signature of `body`: "sha256=" and the hex HMAC-SHA256 keyed by `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"an event's data holds a {type(value).__name__}, which is not JSON")


def event_body(event: str, data: dict[str, Any]) -> str:
    """The JSON text sent for `event`: a fresh id, the event, the time (UTC) and the data."""
    return json.dumps({"id": str(uuid.uuid4()), "event": event, "at": utcnow().isoformat(), "data": data},
                      default=_jsonable, ensure_ascii=False, separators=(",", ":"))


def queue(session: Session, subscription: WebhookSubscription, event: str,
          data: dict[str, Any]) -> WebhookDelivery:
    """One delivery of `event` to `subscription`, pending and due now, in the caller's transaction."""
    delivery = WebhookDelivery(subscription_id=subscription.id, event=event, body=event_body(event, data),
                               status="pending", attempts=0, next_attempt_at=utcnow())
    session.add(delivery)
    return delivery


def publish(session: Session, event: str, data: dict[str, Any]) -> None:
    """Queue `event` for every subscriber that asked for it (an empty list: every event), in the
    caller's transaction: it is sent only if that transaction commits. Then call
    `service.deliverer.wake()` after the commit, or it goes at the next poll."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}: one of {', '.join(EVENTS)}")
    for subscription in session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at)):
        if not subscription.events or event in subscription.events:
            queue(session, subscription, event, data)
    session.flush()


def _short(text: str) -> str:
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= ERROR_CHARS else first[:ERROR_CHARS - 3] + "..."


@dataclass
class Outcome:
    """What one attempt came to: delivered, or the status code and the reason it was not."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None


@dataclass
class _Claimed:
    id: int
    event: str
    body: str
    attempts: int
    url: str
    secret: str


class Deliverer:
    """Sends due deliveries on one daemon thread: start() and stop() from the app's lifespan, wake()
    after a commit that published. `enabled=False` sends nothing (for an app whose subscribers are
    not to be reached, such as a fuzzed one)."""

    def __init__(self, service: Any, *, enabled: bool = True,
                 poll_seconds: float = IDLE_POLL_SECONDS) -> None:
        self.service = service
        self.enabled = enabled
        self.poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()  # the running thread's; each start() makes a new one
        self._thread: threading.Thread | None = None
        self._http = requests.Session()
        self._user_agent = f"ctforge/{version('ctforge')}"

    # --- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stopping,), name="ctforge-webhooks",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread: it finishes the send it is in (bounded by the time-out), then stops."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout=2 * self.service.settings.webhook_timeout_seconds + 5)
        if thread.is_alive():
            log.warning("the webhook deliverer did not stop in time; its claim runs out by itself")
        self._http.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self._wake.clear()  # before the pass: a wake during it makes the wait below return at once
            try:
                wait = self.deliver_due(stopping)
            except Exception as exc:  # the database away: try again later, the thread lives on
                log.error("webhook deliveries not sent: %s: %s", type(exc).__name__,
                          _short(str(getattr(exc, "orig", None) or exc)))
                wait = self.poll_seconds
            self._wake.wait(timeout=max(0.0, min(wait, self.poll_seconds)))

    # --- one pass -------------------------------------------------------------------------------

    def deliver_due(self, stopping: threading.Event | None = None) -> float:
        """Send every delivery that is due now (until `stopping` is set); the seconds until the
        next one falls due. The thread calls it; a test may call it directly, with the thread stopped."""
        stopping = stopping or threading.Event()
        self._give_up_lost()
        while not stopping.is_set():
            ids = self._due_ids()
            if not ids:
                break
            for delivery_id in ids:
                if stopping.is_set():
                    break
                claimed = self._claim(delivery_id)
                if claimed is not None:
                    self._record(claimed, self.send(claimed))
        return self._seconds_to_next()

    def _due_ids(self) -> list[int]:
        limit = self.service.settings.webhook_attempts
        with self.service.db.reading() as session:
            return list(session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= utcnow(),
                       WebhookDelivery.attempts < limit)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(BATCH)))

    def _give_up_lost(self) -> None:
        """A delivery whose last attempt was claimed by a process that stopped before the answer:
        failed, saying so, once its lease is over."""
        limit = self.service.settings.webhook_attempts
        with self.service.db.reading() as session:
            lost = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.attempts >= limit,
                       WebhookDelivery.next_attempt_at <= utcnow())).all()
        for delivery_id, attempts in lost:
            with self.service.db.writing() as session:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                           WebhookDelivery.attempts == attempts, WebhookDelivery.next_attempt_at <= utcnow())
                    .values(status="failed", last_error=messages.WEBHOOK_LAST_ATTEMPT_LOST.format(
                        attempts=attempts, limit=limit)))

    def _claim(self, delivery_id: int) -> _Claimed | None:
        """Take the delivery for one attempt, or None when another process took it first."""
        settings = self.service.settings
        now = utcnow()
        lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        with self.service.db.writing() as session:
            won = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending",
                       WebhookDelivery.next_attempt_at <= now,
                       WebhookDelivery.attempts < settings.webhook_attempts)
                .values(next_attempt_at=now + lease, attempts=WebhookDelivery.attempts + 1)
                .execution_options(synchronize_session=False)).rowcount == 1
            if not won:
                return None
            row = session.execute(
                select(WebhookDelivery.event, WebhookDelivery.body, WebhookDelivery.attempts,
                       WebhookSubscription.url, WebhookSubscription.secret)
                .join(WebhookSubscription, WebhookDelivery.subscription_id == WebhookSubscription.id)
                .where(WebhookDelivery.id == delivery_id)).one()
        return _Claimed(delivery_id, row.event, row.body, row.attempts, row.url, row.secret)

    def send(self, claimed: _Claimed) -> Outcome:
        body = claimed.body.encode()
        headers = {
            "Content-Type": "application/json", "User-Agent": self._user_agent,
            EVENT_HEADER: claimed.event, DELIVERY_HEADER: str(claimed.id),
            SIGNATURE_HEADER: sign(claimed.secret, body),
        }
        timeout = self.service.settings.webhook_timeout_seconds
        try:
            # stream: the answer's body is never read, however large; redirects are a failure
            with self._http.post(claimed.url, data=body, headers=headers, timeout=(timeout, timeout),
                                 allow_redirects=False, stream=True) as answer:
                status, reason = answer.status_code, answer.reason or ""
                location = answer.headers.get("Location", "")
        except Exception as exc:  # requests' errors, and urllib3's parse errors it lets through
            return Outcome(False, None, _short(messages.WEBHOOK_SEND_FAILED.format(
                error=f"{type(exc).__name__}: {exc}")))
        if 200 <= status < 300:
            return Outcome(True, status)
        if 300 <= status < 400:
            return Outcome(False, status, _short(messages.WEBHOOK_REDIRECT.format(
                status=status, location=location or "nowhere")))
        return Outcome(False, status, _short(messages.WEBHOOK_HTTP_STATUS.format(
            status=status, reason=reason)))

    def _record(self, claimed: _Claimed, outcome: Outcome) -> None:
        settings = self.service.settings
        now = utcnow()
        values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
        if outcome.delivered:
            values.update(status="delivered", delivered_at=now)
        elif claimed.attempts >= settings.webhook_attempts:
            values.update(status="failed")
        else:
            backoff = min(settings.webhook_backoff_seconds * 2 ** (claimed.attempts - 1),
                          settings.webhook_backoff_max_seconds)
            values.update(next_attempt_at=now + timedelta(seconds=backoff))
        with self.service.db.writing() as session:
            # only while the claim is ours: a lease that ran out and was claimed again counts there
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == claimed.id, WebhookDelivery.status == "pending",
                       WebhookDelivery.attempts == claimed.attempts)
                .values(**values).execution_options(synchronize_session=False))
        if outcome.delivered:
            log.info("webhook %s delivery %d delivered to %s (attempt %d)", claimed.event, claimed.id,
                     claimed.url, claimed.attempts)
        else:
            log.warning("webhook %s delivery %d to %s failed (attempt %d of %d): %s", claimed.event,
                        claimed.id, claimed.url, claimed.attempts, settings.webhook_attempts, outcome.error)

    def _seconds_to_next(self) -> float:
        with self.service.db.reading() as session:
            soonest = session.scalar(select(func.min(WebhookDelivery.next_attempt_at))
                                     .where(WebhookDelivery.status == "pending"))
        if soonest is None:
            return self.poll_seconds
        return max(0.0, (soonest - utcnow()).total_seconds())
