"""Storage of a collection's re-embedding with another recogniser.

New embeddings of stored faces wait in `reembed_staging`, sealed with the
collection's key, until every face of the collection has one; `complete` then
copies each staged face (its box, landmarks, quality and thumbnail, with the new
model and embedding) into `faces` and clears the staging rows, in one
transaction. The vector index picks the new faces up like any others. A face
erased meanwhile is gone from `faces`, so its staged row goes with it and it is
never brought back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import Catalog
from .collections import Collection
from .keys import context as _context


@dataclass(frozen=True)
class SourceFace:
    face_id: int
    image_id: int
    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (5, 2)
    det_score: float


@dataclass(frozen=True)
class Progress:
    faces: int  # source-model faces in images that have no target-model face yet
    staged: int  # of those, with a new embedding waiting
    done: int  # faces of the target model already in the collection


# Images of the collection that already have faces of the target model (re-embedded
# before, or ingested with it) are left alone.
NOT_DONE = (
    "NOT EXISTS (SELECT 1 FROM faces t WHERE t.image_id = f.image_id "
    "AND t.model = ? AND t.model_version = ?)"
)


class ReembedStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @property
    def conn(self):
        return self.catalog.conn

    def progress(self, collection: Collection, source: tuple[str, str],
                 target: tuple[str, str]) -> Progress:  # fmt: skip
        faces = self.conn.execute(
            "SELECT COUNT(*) FROM faces f WHERE f.collection_id = ? AND f.model = ? "
            f"AND f.model_version = ? AND {NOT_DONE}", (collection.id, *source, *target),
        ).fetchone()[0]  # fmt: skip
        staged = self.conn.execute(
            "SELECT COUNT(*) FROM reembed_staging s JOIN faces f ON f.id = s.face_id "
            "WHERE s.collection_id = ? AND s.model = ? AND s.model_version = ? "
            f"AND f.model = ? AND f.model_version = ? AND {NOT_DONE}",
            (collection.id, *target, *source, *target),
        ).fetchone()[0]  # fmt: skip
        done = self.conn.execute(
            "SELECT COUNT(*) FROM faces WHERE collection_id = ? AND model = ? "
            "AND model_version = ?", (collection.id, *target),
        ).fetchone()[0]  # fmt: skip
        return Progress(int(faces), int(staged), int(done))

    def pending_images(self, collection: Collection, source: tuple[str, str],
                       target: tuple[str, str]) -> list[tuple[int, str, str]]:  # fmt: skip
        """(image id, path, sha256) of images with a source face not yet staged, by id."""
        rows = self.conn.execute(
            "SELECT DISTINCT i.id, i.path, i.sha256 FROM faces f JOIN images i "
            "ON i.id = f.image_id WHERE f.collection_id = ? AND f.model = ? "
            "AND f.model_version = ? AND NOT EXISTS (SELECT 1 FROM reembed_staging s "
            f"WHERE s.face_id = f.id AND s.model = ? AND s.model_version = ?) AND {NOT_DONE} "
            "ORDER BY i.id",
            (collection.id, *source, *target, *target),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def source_faces(self, image_id: int, source: tuple[str, str]) -> list[SourceFace]:
        rows = self.conn.execute(
            "SELECT id, image_id, x, y, w, h, landmarks, det_score FROM faces "
            "WHERE image_id = ? AND model = ? AND model_version = ? ORDER BY id",
            (image_id, *source),
        ).fetchall()
        return [
            SourceFace(int(r[0]), int(r[1]), (r[2], r[3], r[4], r[5]),
                       np.frombuffer(r[6], dtype="<f4").reshape(5, 2).astype(np.float32),
                       float(r[7]))
            for r in rows
        ]  # fmt: skip

    def stage(self, collection: Collection, target: tuple[str, str],
              embeddings: dict[int, np.ndarray]) -> int:  # fmt: skip
        """Keep new embeddings of source faces (by face id); a face staged before (a
        batch replayed after a crash) is not staged twice."""
        key = self.catalog.data_key(collection.id)
        context = _context("embedding", collection.id)
        rows = [
            (face_id, collection.id, *target,
             self.catalog.sealer.seal(key, np.asarray(vector, dtype="<f4").tobytes(), context))
            for face_id, vector in embeddings.items()
        ]  # fmt: skip
        with self.catalog.transaction():
            for row in rows:
                self.conn.execute(
                    "INSERT INTO reembed_staging (face_id, collection_id, model, model_version, "
                    "embedding) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    row,
                )
        return len(rows)

    def complete(self, collection: Collection, source: tuple[str, str],
                 target: tuple[str, str]) -> int:  # fmt: skip
        """Turn the staged embeddings into faces of the target model; the faces added."""
        with self.catalog.transaction():
            cursor = self.conn.execute(
                "INSERT INTO faces (image_id, collection_id, x, y, w, h, landmarks, det_score, "
                "quality, model, model_version, embedding, thumbnail, sealed) "
                "SELECT f.image_id, f.collection_id, f.x, f.y, f.w, f.h, f.landmarks, "
                "f.det_score, f.quality, s.model, s.model_version, s.embedding, f.thumbnail, 1 "
                "FROM reembed_staging s JOIN faces f ON f.id = s.face_id "
                "WHERE s.collection_id = ? AND s.model = ? AND s.model_version = ? "
                f"AND f.model = ? AND f.model_version = ? AND {NOT_DONE} ORDER BY f.id",
                (collection.id, *target, *source, *target),
            )
            added = cursor.rowcount
            self.conn.execute(
                "DELETE FROM reembed_staging WHERE collection_id = ? AND model = ? "
                "AND model_version = ?", (collection.id, *target),
            )  # fmt: skip
        return int(added)
