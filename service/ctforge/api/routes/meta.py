"""Liveness, readiness and the version."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ctforge.api.deps import ServiceDep
from ctforge.api.schemas import Check, Health, Readiness, Version
from ctforge.db import DatabaseError
from ctforge.records.errors import Unavailable

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health() -> Health:
    """The process answers (liveness)."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(service: ServiceDep) -> JSONResponse:
    """The database is reachable and migrated, and Proxmox (when one is configured) answers."""
    checks = []
    try:
        service.db.check_current()
        checks.append(Check(name="database", ok=True, detail=service.db.display_url))
    except DatabaseError as exc:
        checks.append(Check(name="database", ok=False, detail=str(exc)))
    if service.proxmox.configured:
        try:
            count = len(service.proxmox.guests(fresh=True))
            checks.append(Check(name="proxmox", ok=True, detail=f"{count} guests on the cluster"))
        except Unavailable as exc:
            checks.append(Check(name="proxmox", ok=False, detail=exc.message))
    else:
        checks.append(Check(name="proxmox", ok=True, detail="not configured (PROXMOX_HOST unset)"))
    body = Readiness(ready=all(c.ok for c in checks), checks=checks)
    return JSONResponse(status_code=200 if body.ready else 503, content=body.model_dump())


@router.get("/version", response_model=Version)
def get_version(service: ServiceDep) -> Version:
    try:
        current, _heads = service.db.revisions()
    except Exception:  # the version answers even when the database does not
        current = set()
    return Version(version=version("ctforge"), api="v1",
                   database_revision=", ".join(sorted(current)) or None)
