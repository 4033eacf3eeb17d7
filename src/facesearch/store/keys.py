"""Encryption at rest: the data keys that seal faces, wrapped by the master key."""

from __future__ import annotations

from ..clock import now
from .db import Database
from .sealing import Sealer


def context(kind: str, collection_id: int) -> bytes:
    """What a sealed blob is bound to: its kind and collection (a blob moved is refused)."""
    return f"{kind}:{collection_id}".encode()


class DataKeys:
    """Data keys, each wrapped by the master key: one per collection, and named ones."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer
        self._data_keys: dict[str, bytes] = {}

    def data_key(self, collection_id: int | None, name: str | None = None) -> bytes:
        """The collection's data key (or a named one), made and stored wrapped on first use."""
        name = name or f"collection:{collection_id}"
        key = self._data_keys.get(name)
        if key is not None:
            return key
        find = "SELECT wrapped FROM data_keys WHERE name = ?"
        row = self.db.conn.execute(find, (name,)).fetchone()
        if row is None:
            with self.db.transaction():
                # Again under the write lock: another process may have just made it.
                row = self.db.conn.execute(find, (name,)).fetchone()
                if row is None:
                    key, wrapped = self.sealer.new_data_key(name.encode())
                    self.db.conn.execute(
                        "INSERT INTO data_keys (name, collection_id, wrapped, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        (name, collection_id, wrapped, now()),
                    )
        if row is not None:
            key = self.sealer.unwrap(row[0], name.encode())
        self._data_keys[name] = key
        return key

    def shred(self, collection_id: int) -> int:
        """Delete the collection's data key: its faces can never be read again."""
        with self.db.transaction():
            cursor = self.db.conn.execute(
                "DELETE FROM data_keys WHERE collection_id = ?", (collection_id,)
            )
        self.forget(collection_id)
        return cursor.rowcount

    def forget(self, collection_id: int) -> None:
        """Drop a collection's key from memory (it was deleted or shredded)."""
        self._data_keys.pop(f"collection:{collection_id}", None)

    def open(self, sealed: bytes, kind: str, collection_id: int) -> bytes:
        return self.sealer.open(self.data_key(collection_id), sealed, context(kind, collection_id))

    def seal_plain_faces(self) -> None:
        """Seal faces stored before encryption at rest (catalogs of older versions)."""
        rows = self.db.conn.execute(
            "SELECT id, collection_id, embedding, thumbnail FROM faces WHERE sealed = 0"
        ).fetchall()
        if not rows:
            return
        seal = self.sealer.seal
        with self.db.transaction():
            for face_id, collection_id, embedding, thumbnail in rows:
                key = self.data_key(collection_id)
                self.db.conn.execute(
                    "UPDATE faces SET embedding = ?, thumbnail = ?, sealed = 1 WHERE id = ?",
                    (seal(key, embedding, context("embedding", collection_id)),
                     seal(key, thumbnail, context("thumbnail", collection_id)), face_id),
                )  # fmt: skip
