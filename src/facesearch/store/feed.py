"""The index feed: what every vector index reads to follow the catalog.

Faces in id order and deleted face ids in deletion order (`face_deletions`), so an
index catches up from the marks it last saw; ids become visible in increasing order
because writers are serialised (store/database.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ..clock import now
from .database import Connection
from .db import Database
from .keys import DataKeys

if TYPE_CHECKING:
    from .collections import Collection


def log_deletions(conn: Connection, where: str, params) -> None:
    """Record the ids of faces about to be deleted, for every vector index to drop."""
    conn.execute(
        f"INSERT INTO face_deletions (face_id, deleted_at) "
        f"SELECT id, ? FROM faces WHERE {where} ORDER BY id ON CONFLICT DO NOTHING",
        [now(), *params],
    )


class IndexFeed:
    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys

    def embeddings(
        self, model: str, model_version: str, collections: list[Collection] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every face embedded by this model, optionally filtered."""
        sql = "SELECT id, embedding, collection_id FROM faces WHERE model = ? AND model_version = ?"
        params: list = [model, model_version]
        if collections is not None:
            sql += f" AND collection_id IN ({','.join('?' * len(collections))})"
            params += [c.id for c in collections]
        rows = self.db.conn.execute(sql + " ORDER BY id", params).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        plain = b"".join(self.keys.open(r[1], "embedding", r[2]) for r in rows)
        vectors = np.frombuffer(plain, dtype="<f4").reshape(len(rows), -1)
        return ids, vectors.astype(np.float32)

    def index_marks(self) -> tuple[int, int]:
        """(highest face id ever committed, highest deletion sequence number)."""
        row = self.db.conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM faces), "
            "(SELECT COALESCE(MAX(seq), 0) FROM face_deletions)"
        ).fetchone()
        return int(row[0]), int(row[1])

    def embeddings_between(
        self, model: str, model_version: str, after_id: int, upto_id: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Up to `limit` (ids, vectors) of this model with after_id < id <= upto_id, by id."""
        rows = self.db.conn.execute(
            "SELECT id, embedding, collection_id FROM faces WHERE id > ? AND id <= ? "
            "AND model = ? AND model_version = ? ORDER BY id LIMIT ?",
            (after_id, upto_id, model, model_version, limit),
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        plain = b"".join(self.keys.open(r[1], "embedding", r[2]) for r in rows)
        vectors = np.frombuffer(plain, dtype="<f4")
        return ids, vectors.reshape(len(rows), -1).astype(np.float32)

    def deletions_between(self, after_seq: int, upto_seq: int) -> np.ndarray:
        rows = self.db.conn.execute(
            "SELECT face_id FROM face_deletions WHERE seq > ? AND seq <= ? ORDER BY seq",
            (after_seq, upto_seq),
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def deleted_face_ids(self) -> np.ndarray:
        rows = self.db.conn.execute("SELECT face_id FROM face_deletions ORDER BY seq").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def model_face_ids(self, model: str, model_version: str) -> np.ndarray:
        rows = self.db.conn.execute(
            "SELECT id FROM faces WHERE model = ? AND model_version = ? ORDER BY id",
            (model, model_version),
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def embeddings_of(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        ids = [int(i) for i in ids]
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = self.db.conn.execute(
                f"SELECT id, embedding, collection_id FROM faces "
                f"WHERE id IN ({','.join('?' * len(part))})",
                part,
            )
            found.update(
                (r[0], np.frombuffer(self.keys.open(r[1], "embedding", r[2]), dtype="<f4"))
                for r in rows
            )
        return found

    def face_ids(self, collections: list[Collection]) -> np.ndarray:
        rows = self.db.conn.execute(
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
            rows = self.db.conn.execute(
                f"SELECT id, collection_id FROM faces WHERE id IN ({','.join('?' * len(part))})",
                part,
            )
            found.update((r[0], r[1]) for r in rows)
        return np.fromiter((found.get(i, 0) for i in ids), dtype=np.int64, count=len(ids))
