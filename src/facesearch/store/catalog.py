"""The catalog: collections, images, faces, ingest runs and per-file errors.

Every other module asks this one; no SQL lives anywhere else. Embeddings are
kept here in full so any vector index can be rebuilt from the catalog alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from .. import faults
from ..clock import now
from ..errors import Conflict, FacesearchError, NotFound
from ..types import ImageResult
from .database import Connection, IntegrityError
from .db import Database
from .sealing import Sealer


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    source: str
    legal_basis: str
    retention_days: int | None
    created_at: str
    organisation_id: int | None = None


COLLECTION_COLUMNS = "id, name, source, legal_basis, retention_days, created_at, organisation_id"


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


class Catalog:
    def __init__(self, db: Database | Path | str, sealer: Sealer) -> None:
        """`db`: the server's `Database`, or a SQLite file or postgresql:// URL to open
        one for this catalog alone; `sealer` keeps its faces sealed."""
        self._owns_db = not isinstance(db, Database)
        self.db = db if isinstance(db, Database) else Database(db)
        self.path = self.db.target
        self.sealer = sealer
        self._data_keys: dict[str, bytes] = {}
        self._seal_plain_faces()

    @property
    def conn(self) -> Connection:
        """This thread's connection (the writer inside a transaction)."""
        return self.db.conn

    def close(self) -> None:
        """Close the database if this catalog opened it (a shared one stays open)."""
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[Connection]:
        """All or nothing; nested blocks become savepoints."""
        return self.db.transaction()

    # collections

    def create_collection(
        self, name: str, source: str, legal_basis: str, retention_days: int | None = None,
        organisation_id: int | None = None,
    ) -> Collection:  # fmt: skip
        """A new collection, in the 'default' organisation unless another is given."""
        name = name.strip()
        if not name or not source.strip() or not legal_basis.strip():
            raise FacesearchError("a collection needs a name, a source and a legal basis")
        if retention_days is not None and retention_days < 1:
            raise FacesearchError("retention must be at least one day")
        try:
            with self.transaction():
                row = self.conn.execute(
                    "INSERT INTO collections (name, source, legal_basis, retention_days, "
                    "created_at, organisation_id) VALUES (?, ?, ?, ?, ?, COALESCE(?, "
                    "(SELECT id FROM organisations WHERE name = 'default'))) RETURNING id",
                    (name, source.strip(), legal_basis.strip(), retention_days, now(),
                     organisation_id),
                ).fetchone()  # fmt: skip
        except IntegrityError:
            raise Conflict(f"collection {name!r} already exists") from None
        return self._collection_with_id(row[0])

    def collection(self, name: str, organisation_id: int | None = None) -> Collection:
        """The collection named `name`: in `organisation_id` when it is given; else the
        only one of that name (names are unique per organisation, not across them)."""
        rows = self.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections "
            "WHERE name = ? AND (? IS NULL OR organisation_id = ?)",
            (name, organisation_id, organisation_id),
        ).fetchall()
        if not rows:
            raise NotFound(
                f"no collection named {name!r}; create it first with "
                f"'facesearch collections create {name} --source … --legal-basis …'"
            )
        if len(rows) > 1:
            raise Conflict(
                f"{len(rows)} organisations have a collection named {name!r}; "
                "name the organisation too"
            )
        return Collection(*rows[0])

    def _collection_with_id(self, collection_id: int | None) -> Collection:
        row = self.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE id = ?", (collection_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no collection with id {collection_id}")
        return Collection(*row)

    def collections(self, organisation_id: int | None = None) -> list[dict]:
        """Collections with their counts; only one organisation's when it is given."""
        rows = self.conn.execute(
            """
            SELECT c.name, c.source, c.legal_basis, c.retention_days, c.created_at,
                   (SELECT COUNT(*) FROM images i WHERE i.collection_id = c.id) AS images,
                   (SELECT COUNT(*) FROM faces f WHERE f.collection_id = c.id) AS faces,
                   (SELECT COUNT(*) FROM ingest_errors e WHERE e.collection_id = c.id) AS errors,
                   o.name AS organisation
            FROM collections c LEFT JOIN organisations o ON o.id = c.organisation_id
            WHERE ? IS NULL OR c.organisation_id = ?
            ORDER BY c.name
            """,
            (organisation_id, organisation_id),
        )
        return [dict(r) for r in rows]

    def set_retention(self, collection: Collection, retention_days: int | None) -> Collection:
        if retention_days is not None and retention_days < 1:
            raise FacesearchError("retention must be at least one day")
        with self.transaction():
            self.conn.execute(
                "UPDATE collections SET retention_days = ? WHERE id = ?",
                (retention_days, collection.id),
            )
        return self._collection_with_id(collection.id)

    def delete_collection(self, collection: Collection) -> None:
        """The collection with its images, faces, runs, errors and data key."""
        with self.transaction():
            self._log_deletions("collection_id = ?", (collection.id,))
            self.conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        self._data_keys.pop(f"collection:{collection.id}", None)

    def _log_deletions(self, where: str, params) -> None:
        """Record the ids of faces about to be deleted, for every vector index to drop."""
        self.conn.execute(
            f"INSERT INTO face_deletions (face_id, deleted_at) "
            f"SELECT id, ? FROM faces WHERE {where} ORDER BY id ON CONFLICT DO NOTHING",
            [now(), *params],
        )

    # erasure and retention

    def erase_faces(self, face_ids: Iterable[int]) -> tuple[list[int], list[str]]:
        """Delete faces; an image left with no face goes too. Returns the face ids
        deleted and the paths of the images deleted."""
        ids = sorted({int(i) for i in face_ids})
        if not ids:
            return [], []
        marks = ",".join("?" * len(ids))
        with self.transaction():
            found = [r[0] for r in self.conn.execute(
                f"SELECT id FROM faces WHERE id IN ({marks}) ORDER BY id", ids)]  # fmt: skip
            images = [r[0] for r in self.conn.execute(
                f"SELECT DISTINCT image_id FROM faces WHERE id IN ({marks}) ORDER BY image_id",
                ids)]  # fmt: skip
            self._log_deletions(f"id IN ({marks})", ids)
            self.conn.execute(f"DELETE FROM faces WHERE id IN ({marks})", ids)
            paths = []
            for image_id in images:
                left = self.conn.execute(
                    "SELECT COUNT(*) FROM faces WHERE image_id = ?", (image_id,)
                ).fetchone()[0]
                if left:
                    self.conn.execute(
                        "UPDATE images SET face_count = ? WHERE id = ?", (left, image_id)
                    )
                else:
                    row = self.conn.execute(
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
        with self.transaction():
            expiring = self.conn.execute(
                "SELECT id, name, retention_days FROM collections WHERE retention_days IS NOT NULL "
                "ORDER BY id"
            ).fetchall()
            for collection_id, name, days in expiring:
                # Times are stored as ISO 8601 in UTC, which sort as text.
                where = "collection_id = ? AND added_at < ?"
                params = (collection_id, _utc_text(moment - timedelta(days=days)))
                faces = self.conn.execute(
                    f"SELECT COUNT(*) FROM faces WHERE image_id IN (SELECT id FROM images "
                    f"WHERE {where})", params,
                ).fetchone()[0]  # fmt: skip
                self._log_deletions(f"image_id IN (SELECT id FROM images WHERE {where})", params)
                paths = [r[0] for r in self.conn.execute(
                    f"DELETE FROM images WHERE {where} RETURNING path", params)]  # fmt: skip
                if paths:
                    purged.append({"collection": name, "images": len(paths), "faces": faces,
                                   "paths": paths})  # fmt: skip
        return purged

    # encryption at rest

    def data_key(self, collection_id: int | None, name: str | None = None) -> bytes:
        """The collection's data key (or a named one), made and stored wrapped on first use."""
        name = name or f"collection:{collection_id}"
        key = self._data_keys.get(name)
        if key is not None:
            return key
        find = "SELECT wrapped FROM data_keys WHERE name = ?"
        row = self.conn.execute(find, (name,)).fetchone()
        if row is None:
            with self.transaction():
                # Again under the write lock: another process may have just made it.
                row = self.conn.execute(find, (name,)).fetchone()
                if row is None:
                    key, wrapped = self.sealer.new_data_key(name.encode())
                    self.conn.execute(
                        "INSERT INTO data_keys (name, collection_id, wrapped, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        (name, collection_id, wrapped, now()),
                    )
        if row is not None:
            key = self.sealer.unwrap(row[0], name.encode())
        self._data_keys[name] = key
        return key

    def shred_collection_key(self, collection: Collection) -> int:
        """Delete the collection's data key: its faces can never be read again."""
        with self.transaction():
            cursor = self.conn.execute(
                "DELETE FROM data_keys WHERE collection_id = ?", (collection.id,)
            )
        self._data_keys.pop(f"collection:{collection.id}", None)
        return cursor.rowcount

    def _open(self, sealed: bytes, kind: str, collection_id: int) -> bytes:
        return self.sealer.open(self.data_key(collection_id), sealed, _context(kind, collection_id))

    def _seal_plain_faces(self) -> None:
        """Seal faces stored before encryption at rest (catalogs of older versions)."""
        rows = self.conn.execute(
            "SELECT id, collection_id, embedding, thumbnail FROM faces WHERE sealed = 0"
        ).fetchall()
        if not rows:
            return
        seal = self.sealer.seal
        with self.transaction():
            for face_id, collection_id, embedding, thumbnail in rows:
                key = self.data_key(collection_id)
                self.conn.execute(
                    "UPDATE faces SET embedding = ?, thumbnail = ?, sealed = 1 WHERE id = ?",
                    (seal(key, embedding, _context("embedding", collection_id)),
                     seal(key, thumbnail, _context("thumbnail", collection_id)), face_id),
                )  # fmt: skip

    # ingest

    def start_run(self, collection: Collection, inputs: list[str]) -> int:
        with self.transaction():
            row = self.conn.execute(
                "INSERT INTO ingest_runs (collection_id, started_at, status, inputs) "
                "VALUES (?, ?, 'running', ?) RETURNING id",
                (collection.id, now(), "\n".join(inputs)),
            ).fetchone()
        return int(row[0])

    def finish_run(self, run_id: int, status: str, counts: dict[str, int]) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE ingest_runs SET finished_at = ?, status = ?, images_added = ?, "
                "faces_added = ?, duplicates = ?, errors = ? WHERE id = ?",
                (
                    now(), status, counts.get("images", 0), counts.get("faces", 0),
                    counts.get("duplicates", 0), counts.get("errors", 0), run_id,
                ),
            )  # fmt: skip

    def runs(self, limit: int = 20) -> list[dict]:
        rows = self.conn.execute(
            "SELECT r.id, c.name AS collection, r.started_at, r.finished_at, r.status, "
            "r.images_added, r.faces_added, r.duplicates, r.errors FROM ingest_runs r "
            "JOIN collections c ON c.id = r.collection_id ORDER BY r.id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def stored_by_runs(
        self, collection: Collection, inputs: list[str], since: str
    ) -> tuple[int, int]:
        """(images, faces) stored in the collection by ingest runs of exactly `inputs`
        that started at or after `since`: all that a job stored, however often it was cut
        short, even the batches committed after its last progress report."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(face_count), 0) FROM images WHERE collection_id = ? "
            "AND run_id IN (SELECT id FROM ingest_runs WHERE collection_id = ? AND inputs = ? "
            "AND started_at >= ?)",
            (collection.id, collection.id, "\n".join(inputs), since),
        ).fetchone()
        return int(row[0]), int(row[1])

    def has_image(self, collection: Collection, sha256: str) -> bool:
        row = self.conn.execute(
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
        with self.transaction():
            stored = []
            for result in results:
                if result.error is None:
                    stored.append(result)
                    continue
                self.conn.execute(
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
        rows = self.conn.execute(
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
            self.conn.execute(
                f"DELETE FROM ingest_errors WHERE collection_id = ? "
                f"AND path IN ({','.join('?' * len(paths))})",
                [collection.id, *paths],
            )
        return added

    def _insert_faces(
        self, collection: Collection, added: list[tuple[int, ImageResult]], model: str,
        model_version: str,
    ) -> int:  # fmt: skip
        key = self.data_key(collection.id)
        rows = [
            (
                image_id, collection.id, *f.detection.box,
                f.detection.landmarks.astype("<f4").tobytes(), f.detection.score, f.quality,
                model, model_version,
                self.sealer.seal(key, np.asarray(f.embedding, dtype="<f4").tobytes(),
                     _context("embedding", collection.id)),
                self.sealer.seal(key, f.thumbnail, _context("thumbnail", collection.id)),
            )
            for image_id, result in added
            for f in result.faces
        ]  # fmt: skip
        for start in range(0, len(rows), 200):
            part = rows[start : start + 200]
            self.conn.execute(
                "INSERT INTO faces (image_id, collection_id, x, y, w, h, landmarks, det_score, "
                "quality, model, model_version, embedding, thumbnail, sealed) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"] * len(part)),
                [value for row in part for value in row],
            )
        return len(rows)

    # search support

    def embeddings(
        self, model: str, model_version: str, collections: list[Collection] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every face embedded by this model, optionally filtered."""
        sql = "SELECT id, embedding, collection_id FROM faces WHERE model = ? AND model_version = ?"
        params: list = [model, model_version]
        if collections is not None:
            sql += f" AND collection_id IN ({','.join('?' * len(collections))})"
            params += [c.id for c in collections]
        rows = self.conn.execute(sql + " ORDER BY id", params).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        plain = b"".join(self._open(r[1], "embedding", r[2]) for r in rows)
        vectors = np.frombuffer(plain, dtype="<f4").reshape(len(rows), -1)
        return ids, vectors.astype(np.float32)

    def delete_faces(self, ids: Iterable[int]) -> int:
        """Delete faces and log their ids for the vector indexes; returns how many existed."""
        ids = sorted({int(i) for i in ids})
        deleted = 0
        with self.transaction():
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                self.conn.execute(
                    f"INSERT INTO face_deletions (face_id, deleted_at) "
                    f"SELECT id, ? FROM faces WHERE id IN ({marks}) ORDER BY id "
                    f"ON CONFLICT DO NOTHING",
                    [now(), *part],
                )
                deleted += self.conn.execute(
                    f"DELETE FROM faces WHERE id IN ({marks})", part
                ).rowcount
        return deleted

    def index_marks(self) -> tuple[int, int]:
        """(highest face id ever committed, highest deletion sequence number)."""
        row = self.conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM faces), "
            "(SELECT COALESCE(MAX(seq), 0) FROM face_deletions)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def embeddings_between(
        self, model: str, model_version: str, after_id: int, upto_id: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to `limit` (ids, vectors) of this model with after_id < id <= upto_id, by id."""
        rows = self.conn.execute(
            "SELECT id, embedding, collection_id FROM faces WHERE id > ? AND id <= ? "
            "AND model = ? AND model_version = ? ORDER BY id LIMIT ?",
            (after_id, upto_id, model, model_version, limit),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        plain = b"".join(self._open(r[1], "embedding", r[2]) for r in rows)
        vectors = np.frombuffer(plain, dtype="<f4")
        return ids, vectors.reshape(len(rows), -1).astype(np.float32)

    def deletions_between(self, after_seq: int, upto_seq: int) -> np.ndarray:
        rows = self.conn.execute(
            "SELECT face_id FROM face_deletions WHERE seq > ? AND seq <= ? ORDER BY seq",
            (after_seq, upto_seq),
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def deleted_face_ids(self) -> np.ndarray:
        rows = self.conn.execute("SELECT face_id FROM face_deletions ORDER BY seq").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def model_face_ids(self, model: str, model_version: str) -> np.ndarray:
        rows = self.conn.execute(
            "SELECT id FROM faces WHERE model = ? AND model_version = ? ORDER BY id",
            (model, model_version),
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def embeddings_of(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        ids = [int(i) for i in ids]
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = self.conn.execute(
                f"SELECT id, embedding, collection_id FROM faces "
                f"WHERE id IN ({','.join('?' * len(part))})",
                part,
            )
            found.update(
                (r[0], np.frombuffer(self._open(r[1], "embedding", r[2]), dtype="<f4"))
                for r in rows
            )
        return found

    def face_ids(self, collections: list[Collection]) -> np.ndarray:
        rows = self.conn.execute(
            f"SELECT id FROM faces WHERE collection_id IN ({','.join('?' * len(collections))}) "
            "ORDER BY id",
            [c.id for c in collections],
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def collection_ids_of(self, ids: np.ndarray) -> np.ndarray:
        """The collection id of each face (0 for a face that no longer exists), in order."""
        ids = [int(i) for i in ids]
        found: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = self.conn.execute(
                f"SELECT id, collection_id FROM faces WHERE id IN ({','.join('?' * len(part))})",
                part,
            )
            found.update((r[0], r[1]) for r in rows)
        return np.fromiter((found.get(i, 0) for i in ids), dtype=np.int64, count=len(ids))

    def embedding(self, face_id: int) -> tuple[np.ndarray, str, str]:
        """A stored face's embedding with the model name and version that made it."""
        row = self.conn.execute(
            "SELECT embedding, model, model_version, collection_id FROM faces WHERE id = ?",
            (int(face_id),),
        ).fetchone()
        if row is None:
            raise NotFound(f"no face with id {face_id}")
        plain = self._open(row[0], "embedding", row[3])
        return np.frombuffer(plain, dtype="<f4").astype(np.float32), row[1], row[2]

    def image(self, image_id: int) -> dict:
        """One image's record with its collection and organisation."""
        row = self.conn.execute(
            "SELECT i.id, c.name AS collection, c.organisation_id, i.path, i.source_url, "
            "i.captured_at, i.caption, i.width, i.height, i.face_count, i.sha256, i.added_at "
            "FROM images i JOIN collections c ON c.id = i.collection_id WHERE i.id = ?",
            (int(image_id),),
        ).fetchone()
        if row is None:
            raise NotFound(f"no image with id {image_id}")
        return dict(row)

    def face_models(self) -> list[tuple[str, str, int]]:
        rows = self.conn.execute(
            "SELECT model, model_version, COUNT(*) FROM faces GROUP BY model, model_version "
            "ORDER BY model, model_version"
        )
        return [tuple(r) for r in rows]

    def faces(self, ids: Iterable[int]) -> dict[int, FaceRow]:
        ids = [int(i) for i in ids]  # numpy integers would bind as blobs
        if not ids:
            return {}
        rows = self.conn.execute(
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
                          r[10], r[11], r[12], r[13], self._open(r[14], "thumbnail", r[15]))
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
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY i.id LIMIT ?", params)]

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
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY f.id LIMIT ?", params)]

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
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY e.id LIMIT ?", params)]

    def stats(self) -> dict[str, int]:
        counts = {}
        for key, table in (
            ("collections", "collections"),
            ("images", "images"),
            ("faces", "faces"),
            ("errors", "ingest_errors"),
            ("runs", "ingest_runs"),
        ):
            counts[key] = self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return counts


def _utc_text(moment: datetime) -> str:
    """`moment` as stored times are written (now()): ISO 8601, seconds, UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=UTC).isoformat(timespec="seconds")


def _context(kind: str, collection_id: int) -> bytes:
    return f"{kind}:{collection_id}".encode()
