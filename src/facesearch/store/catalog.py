"""The catalog: one object over the store's aggregates, under the names callers use.

Each aggregate is its own module and takes the `Database`: collections
(store/collections.py), images and faces (faces.py), ingest runs and their
errors (runs.py), the index feed (feed.py), erasure and retention (erasure.py)
and the data keys that seal faces (keys.py). `Catalog` only wires them over one
database and one `Sealer`, and forwards each method it has always had to the
aggregate that owns it; new code may take an aggregate directly.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .collections import COLLECTION_COLUMNS, Collection, Collections
from .database import Connection
from .db import Database
from .erasure import Erasure
from .faces import FaceRow, Faces
from .feed import IndexFeed, log_deletions
from .keys import DataKeys, context
from .runs import IngestRuns
from .sealing import Sealer

__all__ = ["COLLECTION_COLUMNS", "Catalog", "Collection", "FaceRow", "_context"]
_context = context  # the name store/reembed.py and older code import


class _Via:
    """A catalog method that is `part`'s method `name` (its signature and docstring)."""

    def __init__(self, part: str, name: str | None = None) -> None:
        self.part, self.name = part, name

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name

    def __get__(self, catalog: Any, owner: type | None = None) -> Any:
        if catalog is None:
            return self
        return getattr(getattr(catalog, self.part), self.name)


class Catalog:
    def __init__(self, db: Database | Path | str, sealer: Sealer) -> None:
        """`db`: the server's `Database`, or a SQLite file or postgresql:// URL to open
        one for this catalog alone; `sealer` keeps its faces sealed."""
        self._owns_db = not isinstance(db, Database)
        self.db = db if isinstance(db, Database) else Database(db)
        self.path = self.db.target
        self.sealer = sealer
        self.keys = DataKeys(self.db, sealer)
        self.collection_store = Collections(self.db, self.keys)
        self.face_store = Faces(self.db, self.keys)
        self.run_store = IngestRuns(self.db)
        self.feed = IndexFeed(self.db, self.keys)
        self.erasure = Erasure(self.db)
        self.keys.seal_plain_faces()

    @property
    def conn(self) -> Connection:
        """This thread's connection (the writer inside a transaction)."""
        return self.db.conn

    @property
    def _data_keys(self) -> dict[str, bytes]:
        return self.keys._data_keys

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
    create_collection = _Via("collection_store", "create")
    collection = _Via("collection_store", "named")
    collections = _Via("collection_store", "with_counts")
    collections_of = _Via("collection_store", "of_organisation")
    set_retention = _Via("collection_store")
    delete_collection = _Via("collection_store", "delete")

    def _log_deletions(self, where: str, params) -> None:
        """For store/videos.py: log the faces about to be deleted (feed.log_deletions)."""
        log_deletions(self.db.conn, where, params)

    # erasure and retention
    erase_faces = _Via("erasure")
    purge_expired = _Via("erasure")
    delete_faces = _Via("erasure")

    # encryption at rest
    data_key = _Via("keys")
    _open = _Via("keys", "open")  # store/people.py opens sealed embeddings with it

    def shred_collection_key(self, collection: Collection) -> int:
        """Delete the collection's data key: its faces can never be read again."""
        return self.keys.shred(collection.id)

    # ingest runs
    start_run = _Via("run_store", "start")
    finish_run = _Via("run_store", "finish")
    runs = _Via("run_store", "recent")
    stored_by_runs = _Via("run_store", "stored_by")
    errors = _Via("run_store")

    # images and faces
    has_image = _Via("face_store")
    store_results = _Via("face_store")
    embedding = _Via("face_store")
    image = _Via("face_store")
    faces = _Via("face_store")
    images = _Via("face_store")
    face_list = _Via("face_store")
    face_models = _Via("face_store")
    stats = _Via("face_store")

    # the index feed
    embeddings = _Via("feed")
    index_marks = _Via("feed")
    embeddings_between = _Via("feed")
    deletions_between = _Via("feed")
    deleted_face_ids = _Via("feed")
    model_face_ids = _Via("feed")
    embeddings_of = _Via("feed")
    face_ids = _Via("feed")
    collection_ids_of = _Via("feed")
