"""Images and their faces: a batch of ingest results stored at once, and reads of both.

Embeddings and thumbnails are sealed with the collection's data key; embeddings
are kept in full so any vector index can be rebuilt from the catalog alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .. import faults
from ..clock import now
from ..errors import NotFound
from ..types import ImageResult
from .collections import Collection
from .db import Database
from .keys import DataKeys, context


@dataclass(frozen=True)
class FaceRow:
    face_id: int
    image_id: int
    collection: str
    path: str
    source_url: str | None
    captured_at: str | None
    box: tuple[float, float, float, float]
    det_score: float
    quality: float
    model: str
    model_version: str
    thumbnail: bytes


class Faces:
    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys

    def has_image(self, collection: Collection, sha256: str) -> bool:
        row = self.db.conn.execute(
            "SELECT 1 FROM images WHERE collection_id = ? AND sha256 = ?",
            (collection.id, sha256),
        ).fetchone()
        return row is not None

    def store_results(
        self, collection: Collection, run_id: int, results: Iterable[ImageResult],
        model: str, model_version: str,
    ) -> tuple[int, int, int]:  # fmt: skip
        """Store a batch in one transaction; returns (images, faces, errors) added.

        An image already in the collection is skipped, so a batch replayed
        after a crash stores nothing twice.
        """
        images = faces = errors = 0
        with self.db.transaction():
            stored = []
            for result in results:
                if result.error is None:
                    stored.append(result)
                    continue
                self.db.conn.execute(
                    "INSERT INTO ingest_errors (collection_id, run_id, path, sha256, reason, "
                    "at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (collection_id, path) DO "
                    "UPDATE SET run_id = excluded.run_id, sha256 = excluded.sha256, "
                    "reason = excluded.reason, at = excluded.at",
                    (collection.id, run_id, str(result.item.path), result.sha256, result.error,
                     now()),
                )  # fmt: skip
                errors += 1
            # A few statements per batch, not per image: on PostgreSQL each one is a
            # round trip made while holding the write lock.
            for start in range(0, len(stored), 500):
                added = self._insert_images(collection, run_id, stored[start : start + 500])
                images += len(added)
                faces += self._insert_faces(collection, added, model, model_version)
            faults.point("catalog_commit", f"{images} images written, not committed")
        return images, faces, errors

    def _insert_images(
        self, collection: Collection, run_id: int, results: list[ImageResult]
    ) -> list[tuple[int, ImageResult]]:
        """Insert the images not yet in the collection; (image id, result) of those added."""
        stamp = now()
        rows = self.db.conn.execute(
            "INSERT INTO images (collection_id, sha256, path, source_url, captured_at, caption, "
            "width, height, size_bytes, face_count, run_id, added_at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(results))
            + " ON CONFLICT DO NOTHING RETURNING id, sha256",
            [value for r in results for value in (
                collection.id, r.sha256, str(r.item.path), r.item.source_url, r.item.captured_at,
                r.item.caption, r.width, r.height, r.size_bytes, len(r.faces), run_id, stamp,
            )],
        ).fetchall()  # fmt: skip
        new = {sha256: image_id for image_id, sha256 in rows}
        # In batch order, and the first of two results with the same content.
        added = [(new.pop(r.sha256), r) for r in results if r.sha256 in new]
        if added:
            paths = [str(r.item.path) for _, r in added]
            self.db.conn.execute(
                f"DELETE FROM ingest_errors WHERE collection_id = ? "
                f"AND path IN ({','.join('?' * len(paths))})",
                [collection.id, *paths],
            )
        return added

    def _insert_faces(
        self, collection: Collection, added: list[tuple[int, ImageResult]], model: str,
        model_version: str,
    ) -> int:  # fmt: skip
        key = self.keys.data_key(collection.id)
        rows = [
            (
                image_id, collection.id, *f.detection.box,
                f.detection.landmarks.astype("<f4").tobytes(), f.detection.score, f.quality,
                model, model_version,
                self.keys.sealer.seal(key, np.asarray(f.embedding, dtype="<f4").tobytes(),
                     context("embedding", collection.id)),
                self.keys.sealer.seal(key, f.thumbnail, context("thumbnail", collection.id)),
            )
            for image_id, result in added
            for f in result.faces
        ]  # fmt: skip
        for start in range(0, len(rows), 200):
            part = rows[start : start + 200]
            self.db.conn.execute(
                "INSERT INTO faces (image_id, collection_id, x, y, w, h, landmarks, det_score, "
                "quality, model, model_version, embedding, thumbnail, sealed) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"] * len(part)),
                [value for row in part for value in row],
            )
        return len(rows)

    def embedding(self, face_id: int) -> tuple[np.ndarray, str, str]:
        """A stored face's embedding with the model name and version that made it."""
        row = self.db.conn.execute(
            "SELECT embedding, model, model_version, collection_id FROM faces WHERE id = ?",
            (int(face_id),),
        ).fetchone()
        if row is None:
            raise NotFound(f"no face with id {face_id}")
        plain = self.keys.open(row[0], "embedding", row[3])
        return np.frombuffer(plain, dtype="<f4").astype(np.float32), row[1], row[2]

    def image(self, image_id: int) -> dict:
        """One image's record with its collection and organisation."""
        row = self.db.conn.execute(
            "SELECT i.id, c.name AS collection, c.organisation_id, i.path, i.source_url, "
            "i.captured_at, i.caption, i.width, i.height, i.face_count, i.sha256, i.added_at "
            "FROM images i JOIN collections c ON c.id = i.collection_id WHERE i.id = ?",
            (int(image_id),),
        ).fetchone()
        if row is None:
            raise NotFound(f"no image with id {image_id}")
        return dict(row)

    def faces(self, ids: Iterable[int]) -> dict[int, FaceRow]:
        ids = [int(i) for i in ids]  # numpy integers would bind as blobs
        if not ids:
            return {}
        rows = self.db.conn.execute(
            f"""
            SELECT f.id, f.image_id, c.name, i.path, i.source_url, i.captured_at,
                   f.x, f.y, f.w, f.h, f.det_score, f.quality, f.model, f.model_version,
                   f.thumbnail, f.collection_id
            FROM faces f JOIN images i ON i.id = f.image_id
            JOIN collections c ON c.id = f.collection_id
            WHERE f.id IN ({",".join("?" * len(ids))})
            """,
            ids,
        )
        return {
            r[0]: FaceRow(r[0], r[1], r[2], r[3], r[4], r[5], (r[6], r[7], r[8], r[9]),
                          r[10], r[11], r[12], r[13], self.keys.open(r[14], "thumbnail", r[15]))
            for r in rows
        }  # fmt: skip

    def images(self, collection: Collection | None = None, limit: int = 50) -> list[dict]:
        sql = (
            "SELECT i.id, c.name AS collection, i.path, i.source_url, i.captured_at, i.width, "
            "i.height, i.face_count, i.sha256 FROM images i JOIN collections c "
            "ON c.id = i.collection_id"
        )
        params: list = []
        if collection is not None:
            sql += " WHERE i.collection_id = ?"
            params.append(collection.id)
        params.append(limit)
        return [dict(r) for r in self.db.conn.execute(sql + " ORDER BY i.id LIMIT ?", params)]

    def face_list(self, image_id: int | None = None, limit: int = 50) -> list[dict]:
        sql = (
            "SELECT f.id, f.image_id, i.path, f.x, f.y, f.w, f.h, f.det_score, f.quality, "
            "f.model, f.model_version FROM faces f JOIN images i ON i.id = f.image_id"
        )
        params: list = []
        if image_id is not None:
            sql += " WHERE f.image_id = ?"
            params.append(image_id)
        params.append(limit)
        return [dict(r) for r in self.db.conn.execute(sql + " ORDER BY f.id LIMIT ?", params)]

    def face_models(self) -> list[tuple[str, str, int]]:
        rows = self.db.conn.execute(
            "SELECT model, model_version, COUNT(*) FROM faces GROUP BY model, model_version "
            "ORDER BY model, model_version"
        )
        return [tuple(r) for r in rows]

    def stats(self) -> dict[str, int]:
        counts = {}
        for key, table in (
            ("collections", "collections"),
            ("images", "images"),
            ("faces", "faces"),
            ("errors", "ingest_errors"),
            ("runs", "ingest_runs"),
        ):
            counts[key] = self.db.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return counts
