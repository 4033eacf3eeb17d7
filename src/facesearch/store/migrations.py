"""Named schema steps, applied once each and recorded in `migrations`."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

# Face and image ids are never reused (AUTOINCREMENT): vector indexes and audit
# records refer to them long after a row is deleted.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL,
            legal_basis TEXT NOT NULL,
            retention_days INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE TABLE ingest_runs (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            inputs TEXT NOT NULL,
            images_added INTEGER NOT NULL DEFAULT 0,
            faces_added INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL,
            source_url TEXT,
            captured_at TEXT,
            caption TEXT,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            size_bytes INTEGER NOT NULL,
            face_count INTEGER NOT NULL,
            run_id INTEGER REFERENCES ingest_runs(id) ON DELETE SET NULL,
            added_at TEXT NOT NULL,
            UNIQUE (collection_id, sha256)
        );
        CREATE TABLE faces (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
            landmarks BLOB NOT NULL,
            det_score REAL NOT NULL,
            quality REAL NOT NULL,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            embedding BLOB NOT NULL,
            thumbnail BLOB NOT NULL
        );
        CREATE INDEX faces_by_image ON faces(image_id);
        CREATE INDEX faces_by_model ON faces(model, model_version, collection_id);
        CREATE TABLE ingest_errors (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            run_id INTEGER REFERENCES ingest_runs(id) ON DELETE SET NULL,
            path TEXT NOT NULL,
            sha256 TEXT,
            reason TEXT NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (collection_id, path)
        );
        """,
    ),
    (
        # Deleted faces leave their id here (nothing else about them), so every
        # vector index, however long it was closed, learns which faces to drop.
        "0002_face_deletions",
        """
        CREATE TABLE face_deletions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            face_id INTEGER NOT NULL UNIQUE,
            deleted_at TEXT NOT NULL
        );
        """,
    ),
]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the steps not yet recorded, each in its own transaction.

    `conn` must be in autocommit mode (isolation_level=None).
    """
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, script in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, now()))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        applied.append(name)
    return applied
