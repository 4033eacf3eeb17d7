"""Erasure and retention: faces and images deleted, each deletion logged for the indexes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ..clock import now
from .db import Database
from .feed import log_deletions


class Erasure:
    def __init__(self, db: Database) -> None:
        self.db = db

    def erase_faces(self, face_ids: Iterable[int]) -> tuple[list[int], list[str]]:
        """Delete faces; an image left with no face goes too. Returns the face ids
        deleted and the paths of the images deleted."""
        ids = sorted({int(i) for i in face_ids})
        if not ids:
            return [], []
        marks = ",".join("?" * len(ids))
        with self.db.transaction():
            found = [r[0] for r in self.db.conn.execute(
                f"SELECT id FROM faces WHERE id IN ({marks}) ORDER BY id", ids)]  # fmt: skip
            images = [r[0] for r in self.db.conn.execute(
                f"SELECT DISTINCT image_id FROM faces WHERE id IN ({marks}) ORDER BY image_id",
                ids)]  # fmt: skip
            log_deletions(self.db.conn, f"id IN ({marks})", ids)
            self.db.conn.execute(f"DELETE FROM faces WHERE id IN ({marks})", ids)
            paths = []
            for image_id in images:
                left = self.db.conn.execute(
                    "SELECT COUNT(*) FROM faces WHERE image_id = ?", (image_id,)
                ).fetchone()[0]
                if left:
                    self.db.conn.execute(
                        "UPDATE images SET face_count = ? WHERE id = ?", (left, image_id)
                    )
                else:
                    row = self.db.conn.execute(
                        "DELETE FROM images WHERE id = ? RETURNING path", (image_id,)
                    ).fetchone()
                    paths.append(row[0])
        return found, paths

    def purge_expired(self, at: str | None = None) -> list[dict]:
        """Delete images (with their faces) older than their collection's retention.

        Age is counted from when the image was added. Returns per collection the
        images and faces deleted and the paths of the images."""
        moment = datetime.fromisoformat(at or now())
        purged = []
        with self.db.transaction():
            expiring = self.db.conn.execute(
                "SELECT id, name, retention_days FROM collections WHERE retention_days IS NOT NULL "
                "ORDER BY id"
            ).fetchall()
            for collection_id, name, days in expiring:
                # Times are stored as ISO 8601 in UTC, which sort as text.
                where = "collection_id = ? AND added_at < ?"
                params = (collection_id, _utc_text(moment - timedelta(days=days)))
                faces = self.db.conn.execute(
                    f"SELECT COUNT(*) FROM faces WHERE image_id IN (SELECT id FROM images "
                    f"WHERE {where})", params,
                ).fetchone()[0]  # fmt: skip
                images = f"image_id IN (SELECT id FROM images WHERE {where})"
                log_deletions(self.db.conn, images, params)
                paths = [r[0] for r in self.db.conn.execute(
                    f"DELETE FROM images WHERE {where} RETURNING path", params)]  # fmt: skip
                if paths:
                    purged.append({"collection": name, "images": len(paths), "faces": faces,
                                   "paths": paths})  # fmt: skip
        return purged

    def delete_faces(self, ids: Iterable[int]) -> int:
        """Delete faces and log their ids for the vector indexes; returns how many existed."""
        ids = sorted({int(i) for i in ids})
        deleted = 0
        with self.db.transaction():
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                self.db.conn.execute(
                    f"INSERT INTO face_deletions (face_id, deleted_at) "
                    f"SELECT id, ? FROM faces WHERE id IN ({marks}) ORDER BY id "
                    f"ON CONFLICT DO NOTHING",
                    [now(), *part],
                )
                deleted += self.db.conn.execute(
                    f"DELETE FROM faces WHERE id IN ({marks})", part
                ).rowcount
        return deleted


def _utc_text(moment: datetime) -> str:
    """`moment` as stored times are written (now()): ISO 8601, seconds, UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=UTC).isoformat(timespec="seconds")
