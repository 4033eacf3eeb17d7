"""Ingest jobs the server runs: their rows, progress and leases, and nothing else.

A running job's row names the server process that runs it (`lease_holder`) and when
its lease expires unless renewed (store/leases.py). A server takes the oldest job that
is queued, or running under an expired lease (its server died), in one write
transaction, so that two servers never run one job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..clock import now
from ..errors import NotFound
from .db import Database
from .leases import is_gone, moment

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class Job:
    id: int
    collection_id: int
    collection: str
    organisation_id: int | None
    created_by: int | None
    kind: str
    inputs: list[str]
    status: str
    total: int
    done: int
    images: int
    faces: int
    duplicates: int
    errors: int
    rate: float
    message: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    lease_holder: str | None = None
    lease_expires_at: str | None = None
    # Seconds of video the job's current run has stored, of those it has to analyse.
    video_seconds: float = 0.0
    video_seconds_total: float = 0.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


_SELECT = (
    "SELECT j.id, j.collection_id, c.name, c.organisation_id, j.created_by, j.kind, j.inputs, "
    "j.status, j.total, j.done, j.images, j.faces, j.duplicates, j.errors, j.rate, j.message, "
    "j.created_at, j.started_at, j.finished_at, j.updated_at, j.lease_holder, "
    "j.lease_expires_at, j.video_seconds, j.video_seconds_total "
    "FROM jobs j JOIN collections c ON c.id = j.collection_id"
)


# Queued, or running under a lease that has expired (or that a server of an earlier
# version, which kept no lease, left).
_CLAIMABLE = (
    "(status = 'queued' OR (status = 'running' AND (lease_expires_at IS NULL "
    "OR lease_expires_at < ?)))"
)
_CLAIMABLE_ANY = "SELECT 1 FROM jobs WHERE " + _CLAIMABLE + " LIMIT 1"


def _job(row) -> Job:
    values = list(row)
    values[6] = json.loads(values[6])
    return Job(*values)


class Jobs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, collection_id: int, created_by: int | None, kind: str, inputs: list[str]
    ) -> Job:
        stamp = now()
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO jobs (collection_id, created_by, kind, inputs, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, 'queued', ?, ?) RETURNING id",
                (collection_id, created_by, kind, json.dumps(inputs), stamp, stamp),
            ).fetchone()
        return self.get(int(row[0]))

    def get(self, job_id: int) -> Job:
        row = self.db.conn.execute(_SELECT + " WHERE j.id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job with id {job_id}")
        return _job(row)

    def list(self, organisation_id: int | None = None, limit: int = 50) -> list[Job]:
        rows = self.db.conn.execute(
            _SELECT + " WHERE ? IS NULL OR c.organisation_id = ? ORDER BY j.id DESC LIMIT ?",
            (organisation_id, organisation_id, limit),
        )
        return [_job(r) for r in rows]

    def next_queued(self) -> Job | None:
        row = self.db.conn.execute(
            _SELECT + " WHERE j.status = 'queued' ORDER BY j.id LIMIT 1"
        ).fetchone()
        return None if row is None else _job(row)

    def claim_next(self, holder: str = "", lease_seconds: float = 30.0) -> Job | None:
        """The oldest queued job (or one whose server died), marked running under a
        lease of `holder`, so that servers sharing a catalog never take the same job."""
        claimed = self.claim(holder, lease_seconds)
        return None if claimed is None else claimed[0]

    def claim(self, holder: str, lease_seconds: float) -> tuple[Job, str | None] | None:
        """As claim_next; with the holder it was taken over from (None: it was queued)."""
        self.expire_gone_holders()
        stamp = moment()
        if not self.db.conn.execute(_CLAIMABLE_ANY, (stamp,)).fetchone():
            return None  # the common case needs no write lock
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id, status, lease_holder FROM jobs WHERE " + _CLAIMABLE
                + " ORDER BY id LIMIT 1",
                (stamp,),
            ).fetchone()  # fmt: skip
            if row is not None:
                conn.execute(
                    "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), "
                    "message = NULL, updated_at = ?, lease_holder = ?, lease_expires_at = ? "
                    "WHERE id = ?",
                    (stamp, stamp, holder, moment(lease_seconds), row[0]),
                )
        if row is None:
            return None
        taken_from = (row[2] or "a server of an earlier version") if row[1] == "running" else None
        return self.get(row[0]), taken_from

    def renew(self, job_id: int, holder: str, lease_seconds: float) -> bool:
        """Extend `holder`'s lease on a running job; False if it no longer holds it
        (it paused past its lease, and another server took the job over)."""
        row = self.db.write(
            "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_holder = ? "
            "AND status = 'running' RETURNING id",
            (moment(lease_seconds), job_id, holder),
        )
        return bool(row)

    def expire_gone_holders(self) -> list[int]:
        """Leases of server processes of this machine that no longer run need not wait
        for their expiry: a restarted server resumes its own jobs at once, and leaves
        alone the jobs other servers run."""
        rows = self.db.conn.execute(
            "SELECT id, lease_holder FROM jobs WHERE status = 'running' AND lease_holder "
            "IS NOT NULL"
        )
        gone = [(job_id, h) for job_id, h in rows if is_gone(h)]
        for job_id, h in gone:
            self.db.write(
                "UPDATE jobs SET lease_expires_at = '' WHERE id = ? AND lease_holder = ?",
                (job_id, h),
            )
        return [job_id for job_id, _ in gone]

    def active_in(self, collection_id: int) -> list[Job]:
        rows = self.db.conn.execute(
            _SELECT
            + " WHERE j.collection_id = ? AND j.status IN ('queued', 'running') ORDER BY j.id",
            (collection_id,),
        )
        return [_job(r) for r in rows]

    def start(self, job_id: int) -> None:
        stamp = now()
        self.db.write(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), "
            "message = NULL, updated_at = ? WHERE id = ?",
            (stamp, stamp, job_id),
        )

    def progress(
        self, job_id: int, *, total: int, done: int, images: int, faces: int, duplicates: int,
        errors: int, rate: float, video_seconds: float = 0.0, video_seconds_total: float = 0.0,
    ) -> None:  # fmt: skip
        self.db.write(
            "UPDATE jobs SET total = ?, done = ?, images = ?, faces = ?, duplicates = ?, "
            "errors = ?, rate = ?, video_seconds = ?, video_seconds_total = ?, updated_at = ? "
            "WHERE id = ?",
            (total, done, images, faces, duplicates, errors, rate, video_seconds,
             video_seconds_total, now(), job_id),
        )  # fmt: skip

    def finish(
        self, job_id: int, status: str, message: str | None = None, holder: str | None = None
    ) -> bool:
        """Set how a job ended (or 'queued' again) and release its lease. With `holder`,
        only while that holder still has the job; returns whether the row changed."""
        stamp = now()
        finished = None if status in ACTIVE else stamp
        row = self.db.write(
            "UPDATE jobs SET status = ?, message = ?, finished_at = ?, updated_at = ?, "
            "lease_holder = NULL, lease_expires_at = NULL WHERE id = ? "
            "AND (? IS NULL OR lease_holder = ?) RETURNING id",
            (status, message, finished, stamp, job_id, holder, holder),
        )
        return bool(row)

    def requeue_running(self) -> list[int]:
        """Every running job back to the queue, whoever runs it: for a catalog that no
        server uses (a restore, a test). A starting server does not call it: jobs that
        other servers run keep running, and its own resume through their leases."""
        with self.db.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM jobs WHERE status = 'running' ORDER BY id")
            ]
            conn.execute(
                "UPDATE jobs SET status = 'queued', message = 'resumed after a restart', "
                "updated_at = ?, lease_holder = NULL, lease_expires_at = NULL "
                "WHERE status = 'running'",
                (now(),),
            )
        return ids
