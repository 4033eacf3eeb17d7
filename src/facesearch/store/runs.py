"""Ingest runs and the per-file errors they leave."""

from __future__ import annotations

from ..clock import now
from .collections import Collection
from .db import Database


class IngestRuns:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, collection: Collection, inputs: list[str]) -> int:
        with self.db.transaction():
            row = self.db.conn.execute(
                "INSERT INTO ingest_runs (collection_id, started_at, status, inputs) "
                "VALUES (?, ?, 'running', ?) RETURNING id",
                (collection.id, now(), "\n".join(inputs)),
            ).fetchone()
        return int(row[0])

    def finish(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self.db.transaction():
            self.db.conn.execute(
                "UPDATE ingest_runs SET finished_at = ?, status = ?, images_added = ?, "
                "faces_added = ?, duplicates = ?, errors = ? WHERE id = ?",
                (
                    now(), status, counts.get("images", 0), counts.get("faces", 0),
                    counts.get("duplicates", 0), counts.get("errors", 0), run_id,
                ),
            )  # fmt: skip

    def recent(self, limit: int = 20) -> list[dict]:
        rows = self.db.conn.execute(
            "SELECT r.id, c.name AS collection, r.started_at, r.finished_at, r.status, "
            "r.images_added, r.faces_added, r.duplicates, r.errors FROM ingest_runs r "
            "JOIN collections c ON c.id = r.collection_id ORDER BY r.id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def stored_by(self, collection: Collection, inputs: list[str], since: str) -> tuple[int, int]:
        """(images, faces) stored in the collection by ingest runs of exactly `inputs`
        that started at or after `since`: all that a job stored, however often it was cut
        short, even the batches committed after its last progress report."""
        row = self.db.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(face_count), 0) FROM images WHERE collection_id = ? "
            "AND run_id IN (SELECT id FROM ingest_runs WHERE collection_id = ? AND inputs = ? "
            "AND started_at >= ?)",
            (collection.id, collection.id, "\n".join(inputs), since),
        ).fetchone()
        return int(row[0]), int(row[1])

    def errors(self, collection: Collection | None = None, limit: int = 50) -> list[dict]:
        sql = (
            "SELECT c.name AS collection, e.path, e.reason, e.at FROM ingest_errors e "
            "JOIN collections c ON c.id = e.collection_id"
        )
        params: list = []
        if collection is not None:
            sql += " WHERE e.collection_id = ?"
            params.append(collection.id)
        params.append(limit)
        return [dict(r) for r in self.db.conn.execute(sql + " ORDER BY e.id LIMIT ?", params)]
