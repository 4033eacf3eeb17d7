"""The one database object on either back end: one writer shared by the threads of a
process, a reader per thread that refuses writes, nested transactions as savepoints,
and a transaction that sees its own writes while other threads see only commits."""

from __future__ import annotations

import threading

import pytest
from postgres import open_catalog

from facesearch.store.db import Database


def _count(conn) -> int:
    return conn.execute(
        "SELECT COUNT(*) FROM organisations WHERE name IN ('org-a', 'org-b')"
    ).fetchone()[0]


def test_readers_refuse_writes_and_the_writer_is_one(catalog_location):
    with Database(catalog_location) as db:
        insert = "INSERT INTO organisations (name, created_at) VALUES ('org-x', 'now')"
        with pytest.raises(Exception, match=r"(?i)read.?only"):
            db.connection().execute(insert)
        # Through `conn`, a write outside a transaction is one on the writer.
        assert [tuple(r) for r in db.conn.execute(insert + " RETURNING name")] == [("org-x",)]
        with db.transaction() as first, db.transaction() as nested:
            assert first is nested is db.connection()
        reader = db.connection()
        assert reader is not first
        seen: list = []
        thread = threading.Thread(target=lambda: seen.append(db.connection()))
        thread.start()
        thread.join()
        assert seen[0] not in (reader, first)  # each thread reads on its own connection


def test_nested_blocks_are_savepoints_and_a_transaction_sees_its_writes(catalog_location):
    with Database(catalog_location) as db:
        insert = "INSERT INTO organisations (name, created_at) VALUES (?, 'now')"
        with db.transaction() as conn:
            conn.execute(insert, ("org-a",))
            with pytest.raises(RuntimeError), db.transaction() as inner:
                inner.execute(insert, ("org-b",))
                raise RuntimeError("undo the inner block only")
            assert _count(db.conn) == 1  # the writer, inside the transaction
            kept = db.conn  # a store may keep it: it follows the thread's transaction
            assert kept.execute("SELECT 1").fetchone()[0] == 1
            outside: list[int] = []
            reader = threading.Thread(target=lambda: outside.append(_count(db.conn)))
            reader.start()
            reader.join()
            assert outside == [0]  # another thread sees only what is committed
        assert _count(db.conn) == 1
        assert db.write("DELETE FROM organisations WHERE name = 'org-a' RETURNING id")
        assert _count(db.conn) == 0


def test_threads_take_turns_on_the_writer(catalog_location):
    with Database(catalog_location) as db:
        inside = threading.Event()
        release = threading.Event()
        order: list[str] = []

        def first() -> None:
            with db.transaction():
                inside.set()
                release.wait(10)
                order.append("first")

        def second() -> None:
            inside.wait(10)
            with db.transaction():
                order.append("second")

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        inside.wait(10)
        release.set()
        for t in threads:
            t.join(20)
        assert order == ["first", "second"]


def test_a_catalog_over_a_shared_database_leaves_it_open(catalog_location, tmp_path):
    db = Database(catalog_location)
    try:
        with open_catalog(db, tmp_path) as catalog:
            catalog.create_collection("press", "s", "b")
        assert [c["name"] for c in open_catalog(db, tmp_path).collections()] == ["press"]
    finally:
        db.close()
    # Closed, a database opens its connections again when used (a restarted app).
    assert db.conn.execute("SELECT COUNT(*) FROM collections").fetchone()[0] == 1
    db.close()


def test_threads_of_one_server_share_one_catalog(catalog_location, tmp_path):
    """What the server does: request threads write and read through one catalog while
    others read; every write lands once, and no thread sees a half-made collection."""
    db = Database(catalog_location)
    catalog = open_catalog(db, tmp_path)
    problems: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                made = catalog.create_collection(f"c{n}-{i}", "s", "b")
                assert catalog.collection(made.name).id == made.id
                assert len(catalog.collections()) >= i + 1
        except BaseException as exc:  # reported below, from the test's thread
            problems.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert problems == []
        assert len(catalog.collections()) == 60
    finally:
        db.close()
