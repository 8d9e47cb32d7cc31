"""Outgoing webhooks (scaffold: being written)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def publish(session: Session, event: str, data: dict[str, Any]) -> None:
    """Queue `event` for every subscriber, in the caller's transaction."""


class Deliverer:
    def __init__(self, service: Any) -> None:
        self.service = service

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wake(self) -> None:
        pass
