"""The FastAPI application: `create_app(settings)` builds everything one server needs.

State lives on `app.state.services`, never in module globals, so tests can
build as many independent apps as they like.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..config import Settings
from ..engine import Engine
from ..errors import (
    Conflict,
    FacesearchError,
    ImageRejected,
    ImageTooLarge,
    ModelMismatch,
    NotFound,
    UnsupportedImage,
)
from ..governance.audit import IngestFinished, JobTakenOver, Who, audit_log
from ..governance.auth import AuthenticationFailed, Authenticator, PermissionDenied
from ..governance.rights import Blocklist, purge_expired_pending, purge_retention
from ..governance.throttle import LoginThrottle, TooManyAttempts
from ..jobs import JobRunner
from ..storage import open_catalog, open_database
from ..store.accounts import Accounts
from ..store.jobs import Job, Jobs
from ..web import pages
from .limits import BodyLimit, body_limit_for
from .metrics import Metrics, MetricsMiddleware
from .routes import accounts, auth, collections, images, jobs, oversight, search, system
from .state import ClientOrigin, Services

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parents[1] / "web"

# Most specific first: each FacesearchError maps to the status that says what went wrong.
STATUS = (
    (AuthenticationFailed, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (ModelMismatch, 409),
    (ImageTooLarge, 413),
    (UnsupportedImage, 415),
    (ImageRejected, 422),
    (TooManyAttempts, 429),
    (FacesearchError, 400),
)


# Every router of the API and the pages, in the order they are matched.
ROUTERS = (
    auth.router, accounts.router, collections.router, jobs.router, search.router,
    images.router, oversight.router, system.router, pages.router,
)  # fmt: skip


def status_of(exc: FacesearchError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


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
    services: Services

    def on_progress(job: Job, report) -> None:
        with services.engine_lock:
            services.engine.reload_index()
        services.metrics.job_progress(job.id, report.images, report.faces, job.rate)

    def screen_for(job_engine: Engine):
        audit = audit_log(settings, job_engine.catalog.transaction, lambda: job_engine.catalog.conn)
        return Blocklist(job_engine, audit.store, settings.governance.blocklist_threshold).screen

    def on_finish(job: Job) -> None:
        with services.engine_lock:
            services.engine.reload_index()
        services.metrics.job_finished(job.id)
        report = services.runner.last_report.pop(job.id, None)
        services.record(None, IngestFinished(
            job.collection, job.status, job.images, job.faces,
            report.blocked if report else 0, report.run_id if report else 0,
        ), organisation_id=job.organisation_id)  # fmt: skip

    def on_takeover(job: Job, taken_from: str) -> None:
        services.record(None, JobTakenOver(
            job.id, job.collection, taken_from, services.runner.holder,
        ), organisation_id=job.organisation_id)  # fmt: skip

    services = Services(
        settings=settings, engine=engine, db=db, accounts=accounts_store,
        jobs=jobs_store,
        runner=JobRunner(settings, jobs_store, on_progress, on_finish, screen_for, on_takeover),
        auth=Authenticator(accounts_store, settings.api),
        metrics=Metrics(lambda: services.catalog.stats()),
        audit=audit_log(settings, db.transaction, lambda: db.conn),
        throttle=LoginThrottle(settings.api),
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resumed = services.runner.start()
        if resumed:
            log.info("resuming ingest jobs %s", resumed)
        accounts_store.delete_expired_sessions()
        purger = RetentionPurger(services)
        purger.start()
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
    _add_error_handlers(app)
    app.add_middleware(BodyLimit, limit=body_limit_for(settings.api))
    app.add_middleware(SecurityHeaders, https_only=settings.api.secure_cookies)
    app.add_middleware(ClientOrigin)
    app.add_middleware(MetricsMiddleware, metrics=lambda: services.metrics)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FacesearchError)
    async def facesearch_error(request: Request, exc: FacesearchError) -> JSONResponse:
        code = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if code == 401 else {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
            problems.append(f"{where}: {error.get('msg', 'invalid')}" if where else error["msg"])
        return JSONResponse(
            {"detail": "; ".join(problems) or "invalid request", "errors": problems},
            status_code=422,
        )

    @app.exception_handler(OverflowError)
    async def number_out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite stores 64-bit integers: an id or count beyond them names nothing.
        if "SQLite INTEGER" not in str(exc):
            log.error("unexpected overflow", exc_info=exc)
            return JSONResponse({"detail": "internal error"}, status_code=500)
        return JSONResponse(
            {"detail": f"a number in the request is out of range (at most {2**63 - 1})"},
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )


class RetentionPurger:
    """Purges expired photos at start and then every `retention_check_minutes`."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        interval = self.services.settings.governance.retention_check_minutes * 60
        while not self._stop.is_set():
            try:
                self.purge_once()
            except Exception:  # a failed purge is retried; it must not stop the server
                log.exception("retention purge failed")
            self._stop.wait(interval)

    def purge_once(self) -> list[dict]:
        services = self.services
        with services.engine_lock:
            catalog = services.engine.catalog
            audit = audit_log(services.settings, catalog.transaction, lambda: catalog.conn)
            purged = purge_retention(
                services.engine, audit, Who("server", None, "server"),
                services.settings.uploads_dir,
            )  # fmt: skip
        purge_expired_pending(
            services.audit, Who("server", None, "server"),
            services.settings.governance.pending_authorisation_hours,
        )  # fmt: skip
        if purged:
            log.info("retention purge: %s", [{k: v for k, v in p.items() if k != "paths"}
                                             for p in purged])  # fmt: skip
        return purged


class SecurityHeaders:
    """Headers that keep pages from being framed, sniffed, cached or fed foreign scripts.

    Everything but the static files may carry faces or personal data, so nothing
    else may be stored by a browser or a proxy. A route may send its own policy
    (the API documentation allows its one inline script by hash).
    """

    PAGE_POLICY = (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        "object-src 'none'"
    )
    # The browser features no page here uses.
    PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
    HSTS = b"max-age=31536000; includeSubDomains"
    STATIC = ("/static/", "/docs-static/")

    def __init__(self, app: ASGIApp, https_only: bool = False) -> None:
        self.app = app
        # Behind a TLS proxy the request looks like http; the operator says so
        # with FACESEARCH_API__SECURE_COOKIES.
        self.https_only = https_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(self.STATIC)
        https = self.https_only or scope.get("scheme") == "https"

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"permissions-policy", self.PERMISSIONS.encode()),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.PAGE_POLICY.encode()))
                if not static:
                    headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", self.HSTS))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)
