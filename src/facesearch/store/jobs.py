"""Ingest jobs the server runs: their rows and progress, and nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..clock import now
from ..errors import NotFound
from .connections import ThreadConnections

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

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


_SELECT = (
    "SELECT j.id, j.collection_id, c.name, c.organisation_id, j.created_by, j.kind, j.inputs, "
    "j.status, j.total, j.done, j.images, j.faces, j.duplicates, j.errors, j.rate, j.message, "
    "j.created_at, j.started_at, j.finished_at, j.updated_at "
    "FROM jobs j JOIN collections c ON c.id = j.collection_id"
)


def _job(row) -> Job:
    values = list(row)
    values[6] = json.loads(values[6])
    return Job(*values)


class Jobs:
    def __init__(self, db: ThreadConnections) -> None:
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
        row = self.db.get().execute(_SELECT + " WHERE j.id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job with id {job_id}")
        return _job(row)

    def list(self, organisation_id: int | None = None, limit: int = 50) -> list[Job]:
        rows = self.db.get().execute(
            _SELECT + " WHERE ? IS NULL OR c.organisation_id = ? ORDER BY j.id DESC LIMIT ?",
            (organisation_id, organisation_id, limit),
        )
        return [_job(r) for r in rows]

    def next_queued(self) -> Job | None:
        row = (
            self.db.get()
            .execute(_SELECT + " WHERE j.status = 'queued' ORDER BY j.id LIMIT 1")
            .fetchone()
        )
        return None if row is None else _job(row)

    def claim_next(self) -> Job | None:
        """The oldest queued job, marked running in one write transaction, so that
        servers sharing a catalog never take the same job."""
        if self.next_queued() is None:  # the common case needs no write lock
            return None
        stamp = now()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), "
                    "message = NULL, updated_at = ? WHERE id = ?",
                    (stamp, stamp, row[0]),
                )
        return None if row is None else self.get(row[0])

    def active_in(self, collection_id: int) -> list[Job]:
        rows = self.db.get().execute(
            _SELECT
            + " WHERE j.collection_id = ? AND j.status IN ('queued', 'running') ORDER BY j.id",
            (collection_id,),
        )
        return [_job(r) for r in rows]

    def start(self, job_id: int) -> None:
        stamp = now()
        self.db.get().execute(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), "
            "message = NULL, updated_at = ? WHERE id = ?",
            (stamp, stamp, job_id),
        )

    def progress(
        self, job_id: int, *, total: int, done: int, images: int, faces: int, duplicates: int,
        errors: int, rate: float,
    ) -> None:  # fmt: skip
        self.db.get().execute(
            "UPDATE jobs SET total = ?, done = ?, images = ?, faces = ?, duplicates = ?, "
            "errors = ?, rate = ?, updated_at = ? WHERE id = ?",
            (total, done, images, faces, duplicates, errors, rate, now(), job_id),
        )

    def finish(self, job_id: int, status: str, message: str | None = None) -> None:
        stamp = now()
        finished = None if status in ACTIVE else stamp
        self.db.get().execute(
            "UPDATE jobs SET status = ?, message = ?, finished_at = ?, updated_at = ? WHERE id = ?",
            (status, message, finished, stamp, job_id),
        )

    def requeue_running(self) -> list[int]:
        """Jobs left 'running' by a server that stopped; they go back to the queue."""
        with self.db.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM jobs WHERE status = 'running' ORDER BY id")
            ]
            conn.execute(
                "UPDATE jobs SET status = 'queued', message = 'resumed after a restart', "
                "updated_at = ? WHERE status = 'running'",
                (now(),),
            )
        return ids
