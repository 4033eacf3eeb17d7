"""Collection names are unique per organisation (schema step 0011), and the step keeps
every row of a catalog made before it."""

from __future__ import annotations

import sqlite3

import pytest
from postgres import open_catalog
from test_catalog import _result

from facesearch.errors import Conflict, NotFound
from facesearch.storage import open_catalog_file
from facesearch.store.catalog import Catalog
from facesearch.store.migrations import MIGRATIONS

STEP = "0011_collection_names_per_organisation"


def _organisation(catalog: Catalog, name: str) -> int:
    with catalog.transaction():
        row = catalog.conn.execute(
            "INSERT INTO organisations (name, created_at) VALUES (?, '2024-01-01') RETURNING id",
            (name,),
        ).fetchone()
    return row[0]


def test_two_organisations_may_use_one_name_and_lookups_say_which(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:  # SQLite, then PostgreSQL
        other = _organisation(catalog, "other agency")
        mine = catalog.create_collection("press", "s", "b")
        theirs = catalog.create_collection("press", "s2", "b2", organisation_id=other)
        assert mine.id != theirs.id and theirs.organisation_id == other
        assert catalog.collection("press", other) == theirs
        assert catalog.collection("press", mine.organisation_id) == mine
        with pytest.raises(Conflict, match="name the organisation"):
            catalog.collection("press")
        with pytest.raises(Conflict, match="already exists"):
            catalog.create_collection("press", "again", "b", organisation_id=other)
        with pytest.raises(NotFound):
            catalog.collection("archive", other)
        assert catalog.set_retention(theirs, 30).retention_days == 30
        assert catalog.collection("press", mine.organisation_id).retention_days is None


def test_the_step_keeps_every_row_of_an_older_catalog(tmp_path):
    path = tmp_path / "old.sqlite3"
    with open_catalog_file(path) as catalog:
        press = catalog.create_collection("press", "s", "b", 30)
        run = catalog.start_run(press, ["/x"])
        catalog.store_results(press, run, [_result("a.jpg", "aa", faces=2)], "m", "1")
        catalog.data_key(press.id)
    # Back to the schema before the step: the old global UNIQUE (name) table.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.executescript(
        """
        BEGIN;
        CREATE TABLE c_old (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL, legal_basis TEXT NOT NULL, retention_days INTEGER,
            created_at TEXT NOT NULL, organisation_id INTEGER REFERENCES organisations(id));
        INSERT INTO c_old SELECT id, name, source, legal_basis, retention_days, created_at,
            organisation_id FROM collections;
        DROP TABLE collections;
        ALTER TABLE c_old RENAME TO collections;
        DELETE FROM migrations WHERE name = '0011_collection_names_per_organisation';
        COMMIT;
        """
    )
    conn.close()
    with open_catalog_file(path) as catalog:
        assert catalog.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        again = catalog.collection("press")
        assert (again.id, again.retention_days) == (press.id, 30)
        assert catalog.stats()["images"] == 1 and catalog.stats()["faces"] == 2
        assert catalog.conn.execute("SELECT COUNT(*) FROM data_keys").fetchone()[0] == 1
        # Foreign keys still point at the rebuilt table: deleting cascades.
        catalog.delete_collection(again)
        assert catalog.stats()["images"] == 0 and catalog.stats()["faces"] == 0
    applied = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM migrations")]
    assert applied.count(STEP) == 1 and len(applied) == len(MIGRATIONS)
