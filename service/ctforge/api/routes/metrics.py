"""GET /metrics in Prometheus' text format (scaffold: being written)."""

from fastapi import APIRouter

router = APIRouter(tags=["metrics"])
