"""Webhook subscriptions and their delivery log (scaffold: being written)."""

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])
