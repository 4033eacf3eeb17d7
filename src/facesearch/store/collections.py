"""Collections: declared sets of photos, each with a source, a legal basis and a retention."""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import now
from ..errors import Conflict, FacesearchError, NotFound
from .database import IntegrityError
from .db import Database
from .feed import log_deletions
from .keys import DataKeys


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


class Collections:
    def __init__(self, db: Database, keys: DataKeys) -> None:
        self.db = db
        self.keys = keys

    def create(
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
            with self.db.transaction():
                row = self.db.conn.execute(
                    "INSERT INTO collections (name, source, legal_basis, retention_days, "
                    "created_at, organisation_id) VALUES (?, ?, ?, ?, ?, COALESCE(?, "
                    "(SELECT id FROM organisations WHERE name = 'default'))) RETURNING id",
                    (name, source.strip(), legal_basis.strip(), retention_days, now(),
                     organisation_id),
                ).fetchone()  # fmt: skip
        except IntegrityError:
            raise Conflict(f"collection {name!r} already exists") from None
        return self.with_id(row[0])

    def named(self, name: str, organisation_id: int | None = None) -> Collection:
        """The collection named `name`: in `organisation_id` when it is given; else the
        only one of that name (names are unique per organisation, not across them)."""
        rows = self.db.conn.execute(
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

    def with_id(self, collection_id: int | None) -> Collection:
        row = self.db.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE id = ?", (collection_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no collection with id {collection_id}")
        return Collection(*row)

    def of_organisation(self, organisation_id: int | None) -> list[Collection]:
        """The collections of an organisation (every one for None), by name, without
        counts: what a search's scope needs, cheap at any size."""
        rows = self.db.conn.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections "
            "WHERE ? IS NULL OR organisation_id = ? ORDER BY name",
            (organisation_id, organisation_id),
        ).fetchall()
        return [Collection(*row) for row in rows]

    def with_counts(self, organisation_id: int | None = None) -> list[dict]:
        """Collections with their counts; only one organisation's when it is given."""
        rows = self.db.conn.execute(
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
        with self.db.transaction():
            self.db.conn.execute(
                "UPDATE collections SET retention_days = ? WHERE id = ?",
                (retention_days, collection.id),
            )
        return self.with_id(collection.id)

    def delete(self, collection: Collection) -> None:
        """The collection with its images, faces, runs, errors and data key."""
        with self.db.transaction():
            log_deletions(self.db.conn, "collection_id = ?", (collection.id,))
            self.db.conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        self.keys.forget(collection.id)
