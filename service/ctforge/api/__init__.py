"""The HTTP API: `create_app()` builds the FastAPI app over the settings, the database and Proxmox.

    app = create_app()                 # from CTFORGE_* / PROXMOX_*; refuses a database that is behind
    uvicorn.run(app, host=..., port=...)

Routes live under /api/v1 and are documented by the OpenAPI schema at /api/v1/openapi.json (and
the pages /docs and /redoc); the web page (ctforge.web) is at /.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from ctforge.api import errors
from ctforge.api.deps import Service
from ctforge.api.middleware import AccessLog, BodyLimit, Cap
from ctforge.api.routes import ROUTERS
from ctforge.catalog import load_catalog
from ctforge.db import Database
from ctforge.fingerprint import Fingerprints
from ctforge.jobs.pool import JobPool
from ctforge.notify import Deliverer
from ctforge.proxmox import ProxmoxView
from ctforge.settings import Settings, get_settings

API_PREFIX = "/api/v1"
log = logging.getLogger("ctforge.api")


def create_app(settings: Settings | None = None, *, db: Database | None = None,
               proxmox: ProxmoxView | None = None, check_database: bool = True) -> FastAPI:
    settings = settings or get_settings()
    db = db or Database(settings.url)
    if check_database:
        db.check_current()  # DatabaseBehind names `ctforge db upgrade`
    catalog = load_catalog(settings.catalog_dir)
    service = Service(
        settings=settings, db=db, catalog=catalog,
        proxmox=proxmox or ProxmoxView(settings.proxmox, settings.proxmox_cache_seconds),
        fingerprints=Fingerprints(catalog, settings.catalog_dir, settings.roles_dir),
    )

    service.jobs = JobPool(service)
    service.deliverer = Deliverer(service)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # the worker pool and the webhook deliverer live exactly as long as the app serves
        service.jobs.start()
        service.deliverer.start()
        try:
            yield
        finally:
            service.deliverer.stop()
            service.jobs.stop()
            db.dispose()

    app = FastAPI(
        title="ctforge", version=version("ctforge"), lifespan=lifespan,
        description="Build and track families of Proxmox VE LXC templates from layered tech stacks.",
        openapi_url=f"{API_PREFIX}/openapi.json", docs_url="/docs", redoc_url="/redoc",
    )
    app.state.service = service
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router, prefix=API_PREFIX)
    from ctforge.web import install as install_web  # the web page's routes call the API's

    install_web(app)  # at /, outside the OpenAPI schema

    project = Cap(settings.max_project_bytes, "CTFORGE_MAX_PROJECT_BYTES")
    app.add_middleware(BodyLimit, cap=Cap(settings.max_body_bytes, "CTFORGE_MAX_BODY_BYTES"),
                       larger={f"{API_PREFIX}/workspaces": project, f"{API_PREFIX}/workspaces/plan": project})
    app.add_middleware(AccessLog)
    return app
