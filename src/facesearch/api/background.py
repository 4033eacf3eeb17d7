"""The server's work beside answering requests: what happens as its ingest jobs move,
and the retention purge that runs on a timer.

Both act through the app's `Services`, which are built after the job runner that
calls back here; `JobEvents.services` is set once they exist.
"""

from __future__ import annotations

import logging
import threading

from ..config import Settings
from ..engine import Engine
from ..governance import actions
from ..governance.audit import JobTakenOver, Who
from ..governance.rights import purge_expired_pending, purge_retention
from ..store.jobs import Job
from ..store.leases import Leases, this_process
from .state import Services

log = logging.getLogger(__name__)


def blocklist_screen(job_engine: Engine):
    """The blocklist screen for a job's engine (its catalog records what it blocks); run
    in the job's own process."""
    return actions.governed(job_engine)[1].screen


class JobEvents:
    """The job runner's callbacks: count in the metrics, audit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: Services | None = None

    def _services(self) -> Services:
        assert self.services is not None, "create_app sets the services before jobs run"
        return self.services

    # A job's batches reach the index through the job's own engine; this engine's
    # index catches up from the catalog before its next search.
    def progress(self, job: Job, report) -> None:
        services = self._services()
        services.metrics.job_progress(job.id, report.images, report.faces, job.rate)

    def finished(self, job: Job) -> None:
        services = self._services()
        services.metrics.job_finished(job.id)
        report = services.runner.last_report.pop(job.id, None)
        server = Who("server", job.organisation_id, "server")
        actions.ingest_finished(
            actions.Caller(self.settings, services.engine, services.audit, server),
            job.collection, job.status, job.images, job.faces,
            report.blocked if report else 0, report.run_id if report else 0,
        )  # fmt: skip

    def taken_over(self, job: Job, taken_from: str) -> None:
        services = self._services()
        services.record(None, JobTakenOver(
            job.id, job.collection, taken_from, services.runner.holder,
        ), organisation_id=job.organisation_id)  # fmt: skip


class RetentionPurger:
    """Purges expired photos at start and then every `retention_check_minutes`, in one
    server process of the deployment at a time (a named lease), not in every worker."""

    LEASE = "retention-purge"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.leases = Leases(services.db)
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
                # Held a little past the next pass, so the holder keeps it while it lives.
                if self.leases.acquire(self.LEASE, this_process(), interval + 60):
                    self.purge_once()
            except Exception:  # a failed purge is retried; it must not stop the server
                log.exception("retention purge failed")
            self._stop.wait(interval)

    def purge_once(self) -> list[dict]:
        services = self.services
        with services.write_lock:
            engine = services.engine
            purged = purge_retention(
                engine, actions.engine_audit(engine), Who("server", None, "server"),
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
