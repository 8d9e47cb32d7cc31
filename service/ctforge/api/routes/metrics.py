"""GET /metrics: the service's Prometheus metrics (ctforge.metrics), in the text format 0.0.4.
No token: Prometheus scrapes it, and it shows counts, never a name or a secret."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from ctforge import metrics
from ctforge.api.schemas import Message

router = APIRouter(tags=["metrics"])


def _registry(request: Request) -> CollectorRegistry:
    """The app's own registry, made on the first scrape (two first scrapes at once: one is kept)."""
    state = request.app.state
    if getattr(state, "metrics_registry", None) is None:
        state.metrics_registry = metrics.registry(state.service)
    return state.metrics_registry


@router.get("/metrics", response_class=Response, openapi_extra={"security": [{}]},
            responses={200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}},
                             "description": "Prometheus' text format, version 0.0.4."},
                       503: {"model": Message}})
def get_metrics(request: Request) -> Response:
    """Jobs by kind and status, the queue, job durations, VMIDs in use per range and webhook
    deliveries, read from the database now."""
    return Response(generate_latest(_registry(request)), media_type=CONTENT_TYPE_PLAIN_0_0_4)
