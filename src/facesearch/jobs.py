"""Ingest jobs run in the background of a long-lived process (the server).

Jobs are rows in the catalog, so they outlive the process: one worker thread
takes the oldest queued job and runs `Engine.ingest` on it in a child process
(niced, with its own interpreter: the server's searches do not wait on it),
which writes progress to the job's row after every batch. While it runs, a
heartbeat thread renews the job's lease (store/leases.py). When the server dies,
the lease expires and a server sharing the catalog takes the job over (a
restarted server on the same machine at once); ingest skips what is already
stored (by content hash), so it resumes where it stopped, with nothing lost and
nothing stored twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from .config import Settings, settings_json
from .engine import Engine
from .ingest import IngestReport, Screen
from .parallel import die_with_parent
from .storage import open_catalog
from .store.jobs import Job, Jobs
from .store.leases import Leases, this_process

log = logging.getLogger(__name__)


RUNNER_LEASE = "ingest-runner"


class _Stop(BaseException):
    """Raised inside a progress callback to stop an ingest between batches."""


class JobRunner:
    def __init__(
        self, settings: Settings, jobs: Jobs,
        on_progress: Callable[[Job, IngestReport], None] | None = None,
        on_finish: Callable[[Job], None] | None = None,
        screen_for: Callable[[Engine], Screen] | None = None,
        on_takeover: Callable[[Job, str], None] | None = None,
    ) -> None:  # fmt: skip
        """`on_takeover(job, previous holder)` runs when this server takes over a job
        whose server died."""
        self.settings = settings
        self.jobs = jobs
        self.on_progress = on_progress
        self.on_finish = on_finish
        # Builds the ingest screen (the block-list) for a job's engine, in the job's
        # process: a module-level function, so that it can be sent there.
        self.screen_for = screen_for
        self.on_takeover = on_takeover
        self.holder = this_process()
        self.lease_seconds = settings.jobs.lease_seconds
        # One runner per deployment takes jobs, however many server processes there are
        # (`serve --workers N`): ingest already spreads over `workers` processes.
        self.leases = Leases(jobs.db)
        self.last_report: dict[int, IngestReport] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.current: int | None = None

    def start(self) -> list[int]:
        """Start working; returns the jobs this machine's dead servers ran, resumed at
        once. Jobs other servers run are left to them."""
        resumed = self.jobs.expire_gone_holders()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="ingest-jobs", daemon=True)
        self._thread.start()
        self._wake.set()
        return resumed

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the current batch; a stopped job stays queued and resumes on start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(
        self, collection_id: int, kind: str, inputs: list[Path], created_by: int | None
    ) -> Job:
        job = self.jobs.create(collection_id, created_by, kind, [str(p) for p in inputs])
        self._wake.set()
        return job

    def cancel(self, job_id: int) -> Job:
        job = self.jobs.get(job_id)
        if job.status == "queued":
            self.jobs.finish(job_id, "cancelled", "cancelled before it started")
        elif job.status == "running" and self.current == job_id:
            # Ended in the catalog first: a server killed before its next batch must
            # not resume the job on restart, nor another server take it over.
            self.jobs.finish(job_id, "cancelled", "cancelled; what was stored is kept")
            with self._lock:
                self._cancelled.add(job_id)
        elif job.status == "running":
            # Run by another server process: ending its row takes its lease, and that
            # process stops at its next batch (it finds the lease lost).
            ended = self.jobs.finish(job_id, "cancelled", "cancelled; what was stored is kept")
            if ended and self.on_finish:
                self.on_finish(self.jobs.get(job_id))
        return self.jobs.get(job_id)

    def _loop(self) -> None:
        # Linux keeps a niceness per thread, and processes started from this thread
        # inherit it: ingest yields the cores to the searches of this server.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.settings.jobs.nice)
        # Idle servers look for jobs whose server died a few times per lease.
        idle = min(5.0, self.lease_seconds / 3)
        while not self._stopping.is_set():
            try:
                claimed = None
                if self.leases.acquire(RUNNER_LEASE, self.holder, self.lease_seconds):
                    claimed = self.jobs.claim(self.holder, self.lease_seconds)
            except Exception:  # the catalog may be unreachable for a while
                log.exception("cannot look for ingest jobs")
                claimed = None
            if claimed is None:
                self._wake.wait(timeout=idle)
                self._wake.clear()
                continue
            job, taken_from = claimed
            if taken_from is not None:
                log.warning("took over ingest job %s from %s", job.id, taken_from)
                if self.on_takeover:
                    self.on_takeover(job, taken_from)
            self._run(job)
        try:
            self.leases.release(RUNNER_LEASE, self.holder)
        except Exception:  # it expires anyway
            log.exception("cannot release the ingest runner's lease")

    def _heartbeat(self, job_id: int, done: threading.Event, lost: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            try:
                self.leases.acquire(RUNNER_LEASE, self.holder, self.lease_seconds)
                if not self.jobs.renew(job_id, self.holder, self.lease_seconds):
                    log.warning("lost the lease of ingest job %s to another server", job_id)
                    lost.set()
                    return
            except Exception:  # renewed at the next beat, well within the lease
                log.exception("cannot renew the lease of ingest job %s", job_id)

    def _run(self, job: Job) -> None:
        """Run the job in a child process and follow it from this thread: the server's
        searches share no interpreter (and no GIL) with the ingest, and the child's
        niceness (inherited from this thread) yields the cores to them."""
        self.current = job.id
        beat_done, lost = threading.Event(), threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job.id, beat_done, lost), name="job-lease", daemon=True
        )
        beat.start()
        context = get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        stop = context.Event()
        roots = [str(p) for p in self._roots(job)]
        child = context.Process(
            target=_ingest_job, name=f"ingest-job-{job.id}",
            args=(settings_json(self.settings), job, roots, self.screen_for, send, stop),
        )  # fmt: skip
        outcome: tuple[str, object] | None = None
        try:
            child.start()
            send.close()
            while True:
                with self._lock:
                    cancelled = job.id in self._cancelled
                if cancelled or self._stopping.is_set() or lost.is_set():
                    stop.set()  # the child stops after the batch it is on
                try:
                    if not receive.poll(0.5):
                        continue
                    kind, value = receive.recv()
                except EOFError:
                    break  # the child has ended
                if kind == "progress":
                    if self.on_progress:
                        self.on_progress(self.jobs.get(job.id), value)
                else:
                    outcome = (kind, value)
            child.join()
            with self._lock:
                cancelled = job.id in self._cancelled
                self._cancelled.discard(job.id)
            if cancelled:
                ended = True  # cancel() ended the row; the child kept what it stored
            elif lost.is_set():
                return  # the server that took the job over finishes it
            elif outcome is None:
                ended = self._finish(job.id, "failed", f"the ingest process died "
                                     f"(exit status {child.exitcode})")  # fmt: skip
            elif outcome[0] == "finished":
                self.last_report[job.id] = outcome[1]  # type: ignore[assignment]
                ended = self._finish(job.id, "finished")
            elif outcome[0] == "stopped":
                ended = self._finish(
                    job.id, "queued", "interrupted by a shutdown; resumes on start"
                )
            else:
                ended = self._finish(job.id, "failed", str(outcome[1]))
        except Exception as exc:  # a job's failure must never stop the runner
            log.exception("ingest job %s failed", job.id)
            ended = self._finish(job.id, "failed", str(exc) or type(exc).__name__)
        finally:
            stop.set()
            if child.is_alive():
                child.join(60)
            receive.close()
            beat_done.set()
            beat.join()
            self.current = None
        if ended and self.on_finish:
            self.on_finish(self.jobs.get(job.id))

    def _finish(self, job_id: int, status: str, message: str | None = None) -> bool:
        """False where another server took the job over meanwhile (it finishes it)."""
        if self.jobs.finish(job_id, status, message, holder=self.holder):
            return True
        log.warning("ingest job %s was taken over by another server meanwhile", job_id)
        return False

    def _roots(self, job: Job) -> list[Path]:
        """Where a job may read: links and manifest lines may not lead elsewhere."""
        if job.kind == "upload":
            return [self.settings.uploads_dir]
        return list(self.settings.api.allowed_roots)


def _ingest_job(
    settings_json_: str, job: Job, roots: list[str], screen_for: Callable[[Engine], Screen] | None,
    events: Connection, stop: EventType,
) -> None:  # fmt: skip
    """The child process of one job: ingest with the job's row as its progress, and
    tell the runner each batch ("progress", report) and how it ended: ("finished",
    report), ("stopped", None) after `stop`, or ("failed", message)."""
    die_with_parent()  # no orphan goes on storing after its server was killed
    settings = Settings.model_validate(json.loads(settings_json_))
    catalog = open_catalog(settings)
    jobs = Jobs(catalog.db)
    try:
        target = catalog.collection(job.collection, job.organisation_id)
        # Counted from the catalog, not the job's row: a kill between a batch's commit
        # and its progress report leaves that batch out of the row.
        base = catalog.stored_by_runs(
            target, job.inputs, jobs.get(job.id).started_at or job.created_at
        )

        def progress(report: IngestReport) -> None:
            jobs.progress(
                job.id, total=report.total, done=report.done,
                images=base[0] + report.images, faces=base[1] + report.faces,
                duplicates=report.duplicates, errors=report.errors,
                rate=round(report.images_per_second, 2),
                video_seconds=round(report.video_seconds, 3),
                video_seconds_total=round(report.video_seconds_total, 3),
            )  # fmt: skip
            events.send(("progress", report))
            if stop.is_set():
                raise _Stop

        with Engine(settings, catalog) as engine:
            screen = screen_for(engine) if screen_for else None
            report = engine.ingest(
                [Path(p) for p in job.inputs], target, progress, screen, [Path(r) for r in roots]
            )
        events.send(("finished", report))
    except _Stop:
        events.send(("stopped", None))
    except Exception as exc:
        log.exception("ingest job %s failed", job.id)
        events.send(("failed", str(exc) or type(exc).__name__))
    finally:
        catalog.close()
        events.close()
