"""The FastAPI application: `create_app(settings)` wires everything one server needs.

The pieces live beside it: the one database and the stores over it (store/), the
services (state.py), error mapping (errors.py), middleware (middleware.py,
limits.py, metrics.py), the work beside requests (background.py), the API's
routers (routes/) and the web pages (web/, which imports nothing from here).
State lives on `app.state.services`, never in module globals, so tests can
build as many independent apps as they like.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..config import Settings
from ..engine import Engine
from ..governance import actions
from ..governance.auth import Authenticator
from ..governance.throttle import LoginThrottle
from ..jobs import JobRunner
from ..storage import open_catalog, open_database
from ..store.accounts import Accounts
from ..store.jobs import Jobs
from ..store.logins import Logins
from ..web import pages
from .background import JobEvents, RetentionPurger, blocklist_screen
from .errors import add_error_handlers
from .limits import BodyLimit, body_limit_for
from .metrics import Metrics, MetricsMiddleware
from .middleware import SecurityHeaders
from .routes import (
    accounts,
    auth,
    collections,
    images,
    jobs,
    oversight,
    people,
    search,
    system,
)
from .state import ClientOrigin, Services

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parents[1] / "web"

# Every router of the API and the pages, in the order they are matched.
ROUTERS = (
    auth.router, accounts.router, collections.router, jobs.router, search.router,
    images.router, oversight.router, people.router, system.router, pages.router,
)  # fmt: skip


# `serve --workers N`: the settings every worker process builds its app from.
SETTINGS_ENV = "FACESEARCH_SERVE_SETTINGS_JSON"


def _warm(engine: Engine) -> None:
    """The index's per-collection lists, built before the first searches ask for them."""
    try:
        built = engine.warm_index()
    except Exception:  # an empty or mismatched catalog says so at its first search
        log.debug("index not warmed", exc_info=True)
        return
    if built:
        log.info("index: lists of %d large collections ready", built)


def app_from_environment() -> FastAPI:
    """The app of one `serve --workers N` worker (uvicorn's factory)."""
    return create_app(Settings.model_validate(json.loads(os.environ[SETTINGS_ENV])))


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """A server over the catalog in `settings.data_dir`. `engine` lets a caller
    (a test) share models it has already loaded."""
    if engine is None:
        db = open_database(settings)
        engine = Engine(settings, open_catalog(settings, db))
    else:
        db = engine.catalog.db
    accounts_store = Accounts(db)
    jobs_store = Jobs(db)
    events = JobEvents(settings)
    services = Services(
        settings=settings, engine=engine, db=db, accounts=accounts_store,
        jobs=jobs_store,
        runner=JobRunner(settings, jobs_store, events.progress, events.finished, blocklist_screen,
                         events.taken_over),
        auth=Authenticator(accounts_store, settings.api),
        metrics=Metrics(lambda: services.catalog.stats()),
        audit=actions.connections_audit(settings, db),
        throttle=LoginThrottle(settings.api, Logins(db)),
    )  # fmt: skip
    events.services = services

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resumed = services.runner.start()
        if resumed:
            log.info("resuming ingest jobs %s", resumed)
        accounts_store.delete_expired_sessions()
        purger = RetentionPurger(services)
        purger.start()
        threading.Thread(target=_warm, args=(services.engine,), name="index-warm",
                         daemon=True).start()  # fmt: skip
        try:
            yield
        finally:
            purger.stop()
            services.runner.stop()
            db.close()

    app = FastAPI(
        title="facesearch", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
        description=(
            "Search declared photo collections for the faces in a photo. Log in with "
            "POST /api/auth/login (browser session; send X-CSRF-Token on changes) or send "
            "'Authorization: Bearer <token>'. Matches are leads for a person to check, never "
            "an identification."
        ),
    )  # fmt: skip
    app.state.services = services
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    docs_static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs-static", StaticFiles(directory=docs_static), name="docs-static")
    add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=body_limit_for(settings.api))
    app.add_middleware(SecurityHeaders, https_only=settings.api.secure_cookies)
    app.add_middleware(ClientOrigin)
    app.add_middleware(MetricsMiddleware, metrics=lambda: services.metrics)
    return app
