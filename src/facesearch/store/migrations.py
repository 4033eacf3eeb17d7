"""Named schema steps, applied once each and recorded in `migrations`.

A step is SQL that runs on SQLite and PostgreSQL alike: types INTEGER, TEXT,
REAL and BLOB, `INTEGER PRIMARY KEY [AUTOINCREMENT]` for ids, no SQLite
functions. store/database.py turns the types into PostgreSQL's (BIGINT,
DOUBLE PRECISION, BYTEA, identity columns) when the catalog lives there.
"""

from __future__ import annotations

from ..clock import now
from .database import (
    POSTGRESQL,
    SQLITE,
    Connection,
    IntegrityError,
    schema_statement,
    setup_statements,
)

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
        # Accounts for the service. Every collection belongs to an organisation;
        # those made before accounts existed go to the 'default' one.
        "0002_accounts",
        """
        CREATE TABLE organisations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            created_at TEXT NOT NULL
        );
        INSERT INTO organisations (name, created_at)
            VALUES ('default', strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'));
        ALTER TABLE collections ADD COLUMN organisation_id INTEGER REFERENCES organisations(id);
        UPDATE collections
            SET organisation_id = (SELECT id FROM organisations WHERE name = 'default');
        CREATE INDEX collections_by_organisation ON collections(organisation_id);
        CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            organisation_id INTEGER NOT NULL REFERENCES organisations(id),
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            must_change_password INTEGER NOT NULL DEFAULT 0,
            active INTEGER NOT NULL DEFAULT 1,
            expires_at TEXT,
            created_at TEXT NOT NULL,
            created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
            last_login_at TEXT
        );
        CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            csrf_token TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        CREATE INDEX sessions_by_user ON sessions(user_id);
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            revoked_at TEXT,
            last_used_at TEXT
        );
        """,
    ),
    (
        # Ingest jobs run by the server; a job still 'running' when the server
        # stopped is queued again on start and resumes by content hash.
        "0003_jobs",
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
            kind TEXT NOT NULL,
            inputs TEXT NOT NULL,
            status TEXT NOT NULL,
            total INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            images INTEGER NOT NULL DEFAULT 0,
            faces INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            rate REAL NOT NULL DEFAULT 0,
            message TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX jobs_by_status ON jobs(status, id);
        """,
    ),
    (
        # Deleted faces leave their id here (nothing else about them), so every
        # vector index, however long it was closed, learns which faces to drop.
        "0004_face_deletions",
        """
        CREATE TABLE face_deletions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            face_id INTEGER NOT NULL UNIQUE,
            deleted_at TEXT NOT NULL
        );
        """,
    ),
    (
        # Governance: wrapped data keys (encryption at rest), the hash-chained
        # audit log, the block-list of erased persons, verification decisions.
        # Faces stored before this step are sealed when a catalog opens them.
        "0010_governance",
        """
        CREATE TABLE data_keys (
            name TEXT PRIMARY KEY,
            collection_id INTEGER REFERENCES collections(id) ON DELETE CASCADE,
            wrapped BLOB NOT NULL,
            created_at TEXT NOT NULL
        );
        ALTER TABLE faces ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            organisation_id INTEGER,
            origin TEXT NOT NULL,
            action TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            signature TEXT
        );
        CREATE INDEX audit_by_action ON audit_log(action, at);
        CREATE TABLE blocklist (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            organisation_id INTEGER,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            sealed BLOB NOT NULL,
            reference TEXT NOT NULL,
            added_at TEXT NOT NULL
        );
        CREATE TABLE verifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            search_seq INTEGER NOT NULL,
            face_id INTEGER NOT NULL,
            decision TEXT NOT NULL,
            decided_by TEXT NOT NULL,
            confirmed_by TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX verifications_by_search ON verifications(search_seq, face_id)
        """,
    ),
    (
        # Collection names are unique per organisation, not across the installation:
        # a name taken elsewhere must not be refused (that refusal would tell one
        # organisation what another holds). The table is rebuilt (the only portable
        # way to drop a UNIQUE constraint); `migrate` holds foreign-key actions off
        # meanwhile, so dropping the old table cascades nowhere.
        "0011_collection_names_per_organisation",
        """
        CREATE TABLE collections_0011 (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            legal_basis TEXT NOT NULL,
            retention_days INTEGER,
            created_at TEXT NOT NULL,
            organisation_id INTEGER REFERENCES organisations(id),
            UNIQUE (organisation_id, name)
        );
        INSERT INTO collections_0011
            (id, name, source, legal_basis, retention_days, created_at, organisation_id)
            SELECT id, name, source, legal_basis, retention_days, created_at, organisation_id
            FROM collections;
        DROP TABLE collections;
        ALTER TABLE collections_0011 RENAME TO collections;
        CREATE INDEX collections_by_organisation ON collections(organisation_id)
        """,
    ),
    (
        # Re-embedding a collection with another recogniser: each stored face's new
        # embedding waits here (sealed like any embedding) until the whole collection
        # is done, then becomes a face of that model in one transaction, so a search
        # never sees a collection half re-embedded.
        "0012_reembed_staging",
        """
        CREATE TABLE reembed_staging (
            face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            embedding BLOB NOT NULL,
            PRIMARY KEY (face_id, model, model_version)
        );
        CREATE INDEX reembed_by_collection ON reembed_staging(collection_id, model, model_version)
        """,
    ),
    (
        # Leases (store/leases.py): the server running a job renews its row's lease; once
        # it expires another server takes the job over. Named leases make work that must
        # run once per deployment (not once per server) run once.
        "0013_leases",
        """
        ALTER TABLE jobs ADD COLUMN lease_holder TEXT;
        ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )
        """,
    ),
    (
        # People (store/people.py): persons of an organisation found by clustering or
        # made by a person; which face is whose (`pinned` where a human put it there,
        # so reclustering keeps it); "not this person" decisions; the log of human
        # operations, each with what undoes it; where incremental clustering stands.
        "0014_people",
        """
        CREATE TABLE persons (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            organisation_id INTEGER NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            name_sealed BLOB,
            hidden INTEGER NOT NULL DEFAULT 0,
            merged_into INTEGER REFERENCES persons(id) ON DELETE SET NULL,
            version INTEGER NOT NULL DEFAULT 1,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX persons_by_organisation ON persons(organisation_id, model, model_version);
        CREATE TABLE person_faces (
            face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
            person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
            pinned INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (face_id)
        );
        CREATE INDEX person_faces_by_person ON person_faces(person_id);
        CREATE TABLE person_refusals (
            face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
            person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,
            operation_id INTEGER,
            PRIMARY KEY (face_id, person_id)
        );
        CREATE TABLE person_operations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            organisation_id INTEGER NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            persons TEXT NOT NULL,
            undo TEXT NOT NULL,
            at TEXT NOT NULL,
            undone_at TEXT,
            undone_by TEXT
        );
        CREATE INDEX person_operations_by_organisation ON person_operations(organisation_id, id);
        CREATE TABLE people_marks (
            organisation_id INTEGER NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            clustered_upto INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (organisation_id, model, model_version)
        )
        """,
    ),
    (
        # Video (store/videos.py): a video is an image-like media record of kind 'video'
        # whose faces carry their track and moment; a track is one person's stretch on
        # screen within a shot, with its best faces. A long video is stored a segment at
        # a time, each segment with its row in `video_segments` in one transaction, so an
        # interrupted ingest resumes at the first segment not stored.
        "0015_video",
        """
        ALTER TABLE images ADD COLUMN kind TEXT NOT NULL DEFAULT 'photo';
        ALTER TABLE images ADD COLUMN duration_ms INTEGER;
        ALTER TABLE images ADD COLUMN segments INTEGER;
        ALTER TABLE images ADD COLUMN complete INTEGER NOT NULL DEFAULT 1;
        CREATE TABLE tracks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            segment INTEGER NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            detections INTEGER NOT NULL
        );
        CREATE INDEX tracks_by_image ON tracks(image_id, start_ms);
        ALTER TABLE faces ADD COLUMN track_id INTEGER REFERENCES tracks(id) ON DELETE CASCADE;
        ALTER TABLE faces ADD COLUMN time_ms INTEGER;
        ALTER TABLE jobs ADD COLUMN video_seconds REAL NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN video_seconds_total REAL NOT NULL DEFAULT 0;
        CREATE INDEX faces_by_track ON faces(track_id);
        CREATE TABLE video_segments (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            segment INTEGER NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            frames INTEGER NOT NULL,
            detections INTEGER NOT NULL,
            tracks INTEGER NOT NULL,
            run_id INTEGER REFERENCES ingest_runs(id) ON DELETE SET NULL,
            stored_at TEXT NOT NULL,
            PRIMARY KEY (image_id, segment)
        )
        """,
    ),
    (
        # Failed logins and lock-outs (store/logins.py), shared by every server process
        # and kept across restarts. Times are seconds since the epoch.
        "0016_login_throttle",
        """
        CREATE TABLE login_failures (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            failed_at REAL NOT NULL
        );
        CREATE INDEX login_failures_by_name ON login_failures (kind, name, failed_at);
        CREATE TABLE login_locks (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            locked_until REAL NOT NULL,
            PRIMARY KEY (kind, name)
        )
        """,
    ),
]

# Where a step's portable SQL cannot work on one back end, its script there. SQLite
# changes a constraint only by rebuilding the table; PostgreSQL cannot drop a table
# that others reference, and alters the constraint in place instead.
DIALECT_SCRIPTS: dict[tuple[str, str], str] = {
    ("0011_collection_names_per_organisation", POSTGRESQL): """
        ALTER TABLE collections DROP CONSTRAINT collections_name_key;
        ALTER TABLE collections ADD CONSTRAINT collections_organisation_name_key
            UNIQUE (organisation_id, name)
        """,
}


def migrate(conn: Connection) -> list[str]:
    """Apply the steps not yet recorded, each in its own write transaction.

    Several processes (or nodes sharing a PostgreSQL catalog) may start at once:
    each step is checked again under the write lock, so it runs exactly once.
    """
    conn.begin()
    try:
        for statement in setup_statements(conn.dialect):
            conn.execute(statement)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    sqlite = conn.dialect == SQLITE
    if sqlite:
        # Steps that rebuild a table drop the old one: with foreign keys enforced, SQLite
        # would first delete its rows and cascade. Off during the steps (it cannot change
        # inside a transaction), each step is checked for dangling references instead.
        enforced = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        conn.execute("PRAGMA foreign_keys=OFF")
    try:
        for name, script in MIGRATIONS:
            if name in done:
                continue
            conn.begin()
            try:
                if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                    conn.execute("COMMIT")
                    continue
                script = DIALECT_SCRIPTS.get((name, conn.dialect), script)
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(schema_statement(conn.dialect, statement))
                if sqlite:
                    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
                    if dangling:
                        raise IntegrityError(
                            f"schema step {name} leaves {len(dangling)} dangling references"
                        )
                conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, now()))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            applied.append(name)
    finally:
        if sqlite:
            conn.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")
    return applied
