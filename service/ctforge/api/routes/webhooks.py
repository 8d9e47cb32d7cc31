"""Webhook subscriptions and their delivery log, for admins: who gets which events, and what was
sent to them. A secret is shown once, in the answer that creates it (ctforge.notify says how a
subscriber checks the signature it keys)."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ctforge import messages, notify
from ctforge.api.deps import CurrentUser, ReadSession, ServiceDep, WriteSession, commit
from ctforge.api.schemas import (
    Message,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveriesPublic,
    WebhookDeliveryPublic,
    WebhookPublic,
    WebhooksPublic,
)
from ctforge.db.models import User, WebhookDelivery, WebhookSubscription
from ctforge.records.errors import Forbidden, Invalid, NotFound

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

ERRORS = {code: {"model": Message} for code in (401, 403, 404, 422, 503)}
BODY_ERRORS = {**ERRORS, 400: {"model": Message}, 413: {"model": Message}}
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many items.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Skip this many items first.")]
SECRET_BYTES = 32  # a made secret: 43 URL-safe characters


def _admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden(messages.WEBHOOKS_NEED_ADMIN)
    return user


Admin = Annotated[User, Depends(_admin)]


def _subscription(session: Session, webhook_id: uuid.UUID) -> WebhookSubscription:
    subscription = session.get(WebhookSubscription, webhook_id)
    if subscription is None:
        raise NotFound(messages.WEBHOOK_NOT_FOUND.format(id=webhook_id))
    return subscription


def _check_sendable(url: str) -> None:
    """What the schema's pattern cannot say: a port in range, host labels of DNS length, an IPv6
    address inside brackets; refused here rather than failing every attempt later."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port  # .port raises ValueError past 65535
        if port == 0:
            raise ValueError("port 0")
        if parts.netloc.startswith("["):
            ipaddress.IPv6Address(host)
        elif len(host) > 253 or any(not 1 <= len(label) <= 63 for label in host.split(".")):
            raise ValueError("host name")
    except ValueError:
        raise Invalid(messages.WEBHOOK_URL_UNUSABLE) from None


def public(subscription: WebhookSubscription) -> WebhookPublic:
    return WebhookPublic(id=subscription.id, url=subscription.url, events=subscription.events,
                         created_by=subscription.created_by, created_at=subscription.created_at)


def delivery_public(delivery: WebhookDelivery) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=delivery.id, subscription_id=delivery.subscription_id, event=delivery.event,
        status=delivery.status,  # type: ignore[arg-type]
        attempts=delivery.attempts, last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        created_at=delivery.created_at, delivered_at=delivery.delivered_at, body=delivery.body)


@router.post("", status_code=201, response_model=WebhookCreated, responses=BODY_ERRORS)
def create_webhook(body: WebhookCreate, session: WriteSession, user: Admin) -> WebhookCreated:
    """Subscribe a URL to events (none listed: every event). Without a secret one is made; either
    way the answer shows it, and no answer after this one does."""
    _check_sendable(body.url)
    secret = body.secret if body.secret is not None else secrets.token_urlsafe(SECRET_BYTES)
    subscription = WebhookSubscription(url=body.url, secret=secret, events=list(body.events),
                                       created_by=user.name)
    session.add(subscription)
    session.flush()
    return commit(session, WebhookCreated(**public(subscription).model_dump(), secret=secret))


@router.get("", response_model=WebhooksPublic, responses=ERRORS)
def list_webhooks(session: ReadSession, user: Admin, limit: Limit = 50, offset: Offset = 0) -> WebhooksPublic:
    """The subscriptions, oldest first; their secrets are not shown."""
    count = session.scalar(select(func.count()).select_from(WebhookSubscription)) or 0
    rows = session.scalars(select(WebhookSubscription)
                           .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
                           .limit(limit).offset(offset))
    return WebhooksPublic(data=[public(s) for s in rows], count=count)


@router.delete("/{webhook_id}", status_code=204, responses=ERRORS)
def delete_webhook(webhook_id: uuid.UUID, session: WriteSession, user: Admin) -> Response:
    """Unsubscribe: nothing more is sent, and the subscription's delivery log goes with it."""
    session.delete(_subscription(session, webhook_id))
    return commit(session, Response(status_code=204))


@router.get("/{webhook_id}/deliveries", response_model=WebhookDeliveriesPublic, responses=ERRORS)
def list_deliveries(webhook_id: uuid.UUID, session: ReadSession, user: Admin, limit: Limit = 50,
                    offset: Offset = 0) -> WebhookDeliveriesPublic:
    """What was sent to the subscriber, newest first: each event, its body, its attempts and how
    the last one ended."""
    _subscription(session, webhook_id)
    mine = WebhookDelivery.subscription_id == webhook_id
    count = session.scalar(select(func.count()).select_from(WebhookDelivery).where(mine)) or 0
    rows = session.scalars(select(WebhookDelivery).where(mine)
                           .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                           .limit(limit).offset(offset))
    return WebhookDeliveriesPublic(data=[delivery_public(d) for d in rows], count=count)


@router.post("/{webhook_id}/ping", status_code=202, response_model=WebhookDeliveryPublic, responses=ERRORS)
def ping_webhook(webhook_id: uuid.UUID, session: WriteSession, user: Admin,
                 service: ServiceDep) -> WebhookDeliveryPublic:
    """Send this subscriber a `ping` event now, to try its URL and secret; the answer is the
    queued delivery, whose outcome the delivery log shows."""
    subscription = _subscription(session, webhook_id)
    delivery = notify.queue(session, subscription, notify.PING,
                            {"subscription_id": subscription.id, "by": user.name})
    session.flush()
    answer = commit(session, delivery_public(delivery))
    service.deliverer.wake()
    return answer
