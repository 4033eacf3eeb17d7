"""The stores behave the same on SQLite and on a real PostgreSQL server.

Each test runs once per back end (the `catalog_location` fixture).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from postgres import open_catalog
from test_catalog import _result

from facesearch.config import Settings
from facesearch.governance.audit import AuditLog, SearchPerformed, Who
from facesearch.governance.crypto import KeyProblem, Keyring
from facesearch.store import migrations
from facesearch.store.audit import AuditStore
from facesearch.store.db import Database
from facesearch.store.jobs import Jobs


def _store(catalog, collection, *names: str, faces: int = 2) -> list[int]:
    """Store one image per name; the new face ids."""
    before = set(catalog.model_face_ids("m", "1").tolist())
    run = catalog.start_run(collection, ["/x"])
    catalog.store_results(collection, run, [_result(n, n, faces) for n in names], "m", "1")
    return sorted(set(catalog.model_face_ids("m", "1").tolist()) - before)


def test_deletions_are_logged_in_order_for_the_indexes(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        press = catalog.create_collection("press", "s", "b")
        other = catalog.create_collection("other", "s", "b")
        first = _store(catalog, press, "a.jpg", "b.jpg")
        second = _store(catalog, other, "c.jpg")
        assert first == sorted(first) and min(second) > max(first)
        assert catalog.index_marks() == (max(second), 0)

        assert catalog.delete_faces([first[0], first[0], 10**9]) == 1
        found, paths = catalog.erase_faces([first[1], first[2]])
        assert found == [first[1], first[2]] and paths == ["/x/a.jpg"]
        catalog.delete_collection(other)
        top_id, top_seq = catalog.index_marks()
        # Every deleted id once, in the order deleted, with increasing sequence numbers.
        assert catalog.deletions_between(0, top_seq).tolist() == [*first[:3], *second]
        assert catalog.deletions_between(1, 3).tolist() == first[1:3]
        assert sorted(catalog.deleted_face_ids().tolist()) == sorted([*first[:3], *second])
        assert catalog.model_face_ids("m", "1").tolist() == [first[3]]
        # Ids are never reused, even after the highest face was deleted.
        assert top_id == max(second) or top_id == first[3]
        third = _store(catalog, press, "d.jpg")
        assert min(third) > max(second)


def test_a_batch_is_stored_in_order_and_the_same_content_once(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        press = catalog.create_collection("press", "s", "b")
        run = catalog.start_run(press, ["/x"])
        batch = [
            _result("a.jpg", "aa", 2),
            _result("copy-of-a.jpg", "aa", 2),
            _result("bad.jpg", "cc", 0, error="truncated"),
            _result("b.jpg", "bb", 1),
        ]
        assert catalog.store_results(press, run, batch, "m", "1") == (2, 3, 1)
        assert [i["path"] for i in catalog.images()] == ["/x/a.jpg", "/x/b.jpg"]
        faces = catalog.face_list()
        assert [f["path"] for f in faces] == ["/x/a.jpg", "/x/a.jpg", "/x/b.jpg"]
        assert [f["x"] for f in faces] == [0.0, 10.0, 0.0]
        fixed = [_result("bad.jpg", "cc", 1)]
        assert catalog.store_results(press, run, fixed, "m", "1") == (1, 1, 0)
        assert catalog.errors() == []


def test_a_writer_waits_for_the_other_so_ids_become_visible_in_order(catalog_location, tmp_path):
    """The vector indexes read faces above a high-water mark: a face committed after a
    reader saw id n must never have an id below n."""
    with (
        open_catalog(catalog_location, tmp_path) as first,
        open_catalog(catalog_location, tmp_path) as second,
        open_catalog(catalog_location, tmp_path) as reader,
    ):
        press = first.create_collection("press", "s", "b")
        run = first.start_run(press, ["/x"])
        done = threading.Event()
        later: list[int] = []

        def write_second() -> None:
            collection = second.collection("press")
            second.store_results(collection, run, [_result("b.jpg", "bb", 3)], "m", "1")
            later.extend(second.model_face_ids("m", "1").tolist())
            done.set()

        with first.transaction():
            first.store_results(press, run, [_result("a.jpg", "aa", 3)], "m", "1")
            writer = threading.Thread(target=write_second)
            writer.start()
            time.sleep(1.0)
            assert not done.is_set(), "a second writer ran inside another's transaction"
            # Readers do not wait, and see nothing uncommitted.
            assert reader.index_marks() == (0, 0)
            assert reader.stats()["faces"] == 0
        writer.join(30)
        assert done.is_set()
        ids = reader.model_face_ids("m", "1").tolist()
        assert len(ids) == 6
        mine = sorted(int(i) for i in first.embeddings_of(ids[:3]))
        assert ids[:3] == mine and max(mine) < min(ids[3:])
        assert reader.index_marks()[0] == max(ids)


def test_retention_purge_compares_times_on_either_back_end(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        old = catalog.create_collection("old", "s", "b", retention_days=3)
        kept = catalog.create_collection("kept", "s", "b")
        _store(catalog, old, "a.jpg", "b.jpg")
        _store(catalog, kept, "c.jpg")
        now = datetime.now(UTC)
        stamp = (now - timedelta(days=4)).isoformat(timespec="seconds")
        catalog.db.write("UPDATE images SET added_at = ? WHERE path = ?", (stamp, "/x/a.jpg"))
        catalog.db.write("UPDATE images SET added_at = ? WHERE path = ?", (stamp, "/x/c.jpg"))
        assert catalog.purge_expired((now - timedelta(days=2)).isoformat()) == []
        purged = catalog.purge_expired(now.isoformat())
        assert purged == [{"collection": "old", "images": 1, "faces": 2, "paths": ["/x/a.jpg"]}]
        assert catalog.stats()["images"] == 2 and len(catalog.deleted_face_ids()) == 2


def test_sealed_blobs_and_a_shredded_key(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        press = catalog.create_collection("press", "s", "b")
        ids = _store(catalog, press, "a.jpg")
        stored = catalog.conn.execute(
            "SELECT embedding, thumbnail, sealed FROM faces WHERE id = ?", (ids[0],)
        ).fetchone()
        assert isinstance(stored[0], bytes) and stored[2] == 1
        vector = catalog.embedding(ids[0])[0]
        assert np.asarray(vector, "<f4").tobytes() not in stored[0]
        assert catalog.faces(ids)[ids[0]].thumbnail == b"jpeg" and b"jpeg" not in stored[1]
        assert catalog.shred_collection_key(press) == 1
    with open_catalog(catalog_location, tmp_path) as reopened, pytest.raises(KeyProblem):
        reopened.embedding(ids[0])


def test_audit_queries_read_json_details_on_either_back_end(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        audit = AuditLog(AuditStore(catalog.transaction, lambda: catalog.conn))
        who = Who("ines", 1, "cli")
        for case, faces in (("C-1", [1, 2]), ("C-2", [2, 3]), ("C-3", [])):
            event = SearchPerformed("missing person", case, None, "ab" * 32, None, ["press"],
                                    faces, [0.9] * len(faces), 10)  # fmt: skip
            audit.record(who, event)
        assert [e.seq for e in audit.store.query(case="C-2")] == [2]
        assert [e.seq for e in audit.store.query(action="search", limit=2)] == [3, 2]
        found = audit.store.searches_returning([2, 3, 7])
        assert {k: [e.seq for e in v] for k, v in found.items()} == {2: [1, 2], 3: [2], 7: []}
        assert audit.verify().ok and audit.verify().entries_checked == 3


def test_jobs_queue_and_resume_on_either_back_end(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        collection = catalog.create_collection("press", "s", "b")
    db = Database(catalog_location)
    try:
        jobs = Jobs(db)
        first = jobs.create(collection.id, None, "folder", ["/a"])
        second = jobs.create(collection.id, None, "folder", ["/b"])
        assert second.id > first.id and jobs.next_queued().id == first.id
        jobs.start(first.id)
        jobs.progress(first.id, total=4, done=2, images=2, faces=3, duplicates=0, errors=0,
                      rate=1.5)  # fmt: skip
        assert jobs.get(first.id).rate == 1.5 and jobs.get(first.id).inputs == ["/a"]
        assert jobs.requeue_running() == [first.id]
        assert [j.id for j in jobs.active_in(collection.id)] == [first.id, second.id]
        jobs.finish(second.id, "failed", "disk full")
        assert [j.status for j in jobs.list()] == ["failed", "queued"]
    finally:
        db.close()


def test_servers_sharing_a_catalog_never_take_the_same_job(catalog_location, tmp_path):
    with open_catalog(catalog_location, tmp_path) as catalog:
        collection = catalog.create_collection("press", "s", "b")
    servers = [Database(catalog_location) for _ in range(3)]
    try:
        queued = [Jobs(servers[0]).create(collection.id, None, "folder", [f"/{n}"]).id
                  for n in range(12)]  # fmt: skip
        taken: list[list[int]] = [[] for _ in servers]

        def work(n: int) -> None:
            jobs = Jobs(servers[n])
            while (job := jobs.claim_next()) is not None:
                assert job.status == "running"
                taken[n].append(job.id)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(len(servers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(i for ids in taken for i in ids) == queued
        assert Jobs(servers[1]).claim_next() is None
    finally:
        for db in servers:
            db.close()


def test_a_new_portable_schema_step_runs_on_either_back_end(
    catalog_location, tmp_path, monkeypatch
):
    """What a new migration needs to know: INTEGER, TEXT, REAL, BLOB and
    INTEGER PRIMARY KEY AUTOINCREMENT mean the same on both."""
    step = (
        "9999_test_step",
        """
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            face_id INTEGER NOT NULL,
            weight REAL NOT NULL,
            body BLOB NOT NULL,
            label TEXT
        );
        CREATE INDEX notes_by_face ON notes(face_id)
        """,
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, step])
    with open_catalog(catalog_location, tmp_path) as catalog:
        big = 2**40  # ids and counts are 64-bit on both
        with catalog.transaction() as conn:
            ids = [conn.execute("INSERT INTO notes (face_id, weight, body) VALUES (?, ?, ?) "
                                "RETURNING id", (big, 0.1 + n, bytes([n, 0, 255]))).fetchone()[0]
                   for n in range(3)]  # fmt: skip
        rows = catalog.conn.execute("SELECT id, face_id, weight, body FROM notes ORDER BY id")
        assert [tuple(r) for r in rows] == [
            (i, big, 0.1 + n, bytes([n, 0, 255])) for n, i in enumerate(ids)
        ]
        assert ids == sorted(ids)
        names = [r[0] for r in catalog.conn.execute("SELECT name FROM migrations")]
        assert names.count("9999_test_step") == 1


def test_nodes_starting_together_apply_each_step_once(catalog_location):
    errors: list[BaseException] = []

    def start() -> None:
        try:
            Database(catalog_location).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    db = Database(catalog_location)
    names = [r[0] for r in db.conn.execute("SELECT name FROM migrations")]
    db.close()
    assert sorted(names) == sorted(name for name, _ in migrations.MIGRATIONS)


def test_a_shared_catalog_needs_a_configured_master_key(tmp_path):
    url = "postgresql://facesearch@127.0.0.1/facesearch"
    with pytest.raises(KeyProblem, match="share its master key"):
        Keyring.from_settings(Settings(data_dir=tmp_path, database_url=url))
    keyed = Settings(data_dir=tmp_path, database_url=url, crypto={"key_file": tmp_path / "k"})
    assert isinstance(Keyring.from_settings(keyed), Keyring)
    assert keyed.catalog_location == url
    with pytest.raises(ValueError, match="postgresql://"):
        Settings(data_dir=tmp_path, database_url="mysql://x/y")
    assert Settings(data_dir=tmp_path).catalog_location == tmp_path / "catalog.sqlite3"
