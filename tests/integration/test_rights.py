"""Data-subject rights and encryption at rest, on real LFW photos with the real models."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from facesearch.governance.actions import governed
from facesearch.governance.audit import Who
from facesearch.governance.rights import access_report, erase, purge_retention
from facesearch.storage import open_catalog_file

# Aaron Peirsol's photos 1 and 2 score 0.82 with SFace; no other person of the
# slice below comes above 0.25 to either.
PERSON = "Aaron_Peirsol"
WHO = Who("cli:tester", None, "cli")


def _others(lfw, count: int = 4):
    return [p for p in sorted(lfw.glob("A*/*_0001.jpg")) if PERSON not in p.name][:count]


def _archive(engine, lfw):
    engine.create_collection("press", "LFW", "test")
    engine.ingest([lfw / PERSON / f"{PERSON}_0001.jpg", *_others(lfw)], "press")
    return engine


@pytest.fixture
def archive(engine, lfw):
    """Five LFW photos in a collection in a SQLite catalog."""
    return _archive(engine, lfw)


@pytest.fixture
def catalog_archive(catalog_engine, lfw):
    """The same, on SQLite and then on PostgreSQL."""
    return _archive(catalog_engine, lfw)


def _hits(engine, photo: bytes) -> list[str]:
    return [h.path.rsplit("/", 1)[-1] for h in engine.search(photo, 10).hits]


def test_erasure_removes_the_face_at_once_and_the_block_list_keeps_the_person_out(
    catalog_archive, lfw
):
    engine = catalog_archive
    audit, blocklist = governed(engine)
    probe = (lfw / PERSON / f"{PERSON}_0003.jpg").read_bytes()
    assert _hits(engine, probe)[0] == f"{PERSON}_0001.jpg"

    held, search_seq = access_report(engine, audit, WHO, probe, ["press"], "DSR-7",
                                     "2026-01-01T00:00:00+00:00", 0.363)  # fmt: skip
    assert [h.path.rsplit("/", 1)[-1] for h in held] == [f"{PERSON}_0001.jpg"]
    assert held[0].collection == "press" and held[0].score > 0.5
    face_id = held[0].face_id

    event = erase(engine, audit, blocklist, WHO, [face_id], "DSR-7")
    assert event.face_ids == [face_id] and event.blocklisted == 1 and event.images_deleted == 1
    # Gone from search results at once, and from the catalog with its thumbnail.
    assert f"{PERSON}_0001.jpg" not in _hits(engine, probe)
    assert face_id not in engine.catalog.faces([face_id])
    assert engine.stats()["faces"] == 4

    # Another photo of the same person is refused at ingest; other people are not.
    again = engine.ingest([lfw / PERSON / f"{PERSON}_0002.jpg", *_others(lfw, 6)[4:]], "press",
                          screen=governed(engine)[1].screen)  # fmt: skip
    assert again.blocked == 1 and again.faces == 2 and again.images == 3
    assert all(PERSON not in name for name in _hits(engine, probe))

    # The access request, the erasure and the search are in the log, and it verifies.
    actions = [e.action for e in audit.store.entries()]
    assert actions == ["search", "access_report", "erase"]
    search = next(audit.store.entries())
    assert search.seq == search_seq and f"[{face_id}]" in search.details
    assert audit.verify().ok


def test_retention_purge_removes_what_expired_and_nothing_else(catalog_engine, lfw):
    engine = catalog_engine
    audit = governed(engine)[0]
    people = _others(lfw, 6)
    for name, days in (("expiring", 1), ("fresh", 30), ("kept", None)):
        engine.create_collection(name, "LFW", "test", days)
    engine.ingest(people[:2], "expiring")
    engine.ingest(people[2:4], "fresh")
    engine.ingest(people[4:], "kept")
    ten_days_ago = (datetime.now(UTC) - timedelta(days=10)).isoformat(timespec="seconds")
    engine.catalog.db.write("UPDATE images SET added_at = ?", (ten_days_ago,))
    before = {c["name"]: c["faces"] for c in engine.catalog.collections()}

    purged = purge_retention(engine, audit, WHO, engine.settings.uploads_dir)
    assert [(p["collection"], p["images"], p["faces"]) for p in purged] == [
        ("expiring", 2, before["expiring"])
    ]
    after = {c["name"]: (c["images"], c["faces"]) for c in engine.catalog.collections()}
    assert after == {"expiring": (0, 0), "fresh": (2, before["fresh"]),
                     "kept": (2, before["kept"])}  # fmt: skip
    assert all(h.collection != "expiring" for h in engine.search(people[0].read_bytes(), 20).hits)
    assert [e.action for e in audit.store.entries()] == ["retention_purge"]
    # A second run finds nothing more.
    assert purge_retention(engine, audit, WHO, None) == []


def test_nothing_on_disk_holds_a_plain_embedding_or_thumbnail(archive):
    engine = archive
    catalog = engine.catalog
    face_id = catalog.face_list(limit=1)[0]["id"]
    vector = catalog.embedding(face_id)[0]
    thumbnail = catalog.faces([face_id])[face_id].thumbnail
    assert thumbnail[:2] == b"\xff\xd8" and abs(float(vector @ vector) - 1) < 1e-4
    needles = {
        "embedding": np.asarray(vector, "<f4").tobytes(),
        "embedding prefix": np.asarray(vector, "<f4").tobytes()[:32],
        "thumbnail": thumbnail,
        "thumbnail middle": thumbnail[len(thumbnail) // 2 : len(thumbnail) // 2 + 64],
    }
    files = [p for p in engine.settings.data_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"catalog.sqlite3", "catalog.sqlite3-wal"} <= names
    for path in files:
        data = path.read_bytes()
        for what, needle in needles.items():
            assert needle not in data, f"{path.name} holds a plain {what}"


def test_without_its_key_a_collection_cannot_be_read(archive, tmp_path):
    engine = archive
    catalog = engine.catalog
    face_id = catalog.face_list(limit=1)[0]["id"]
    assert catalog.embedding(face_id)[0].shape == (128,)
    collection = catalog.collection("press")
    assert catalog.shred_collection_key(collection) == 1
    reopened = open_catalog_file(engine.settings.catalog_path)
    with pytest.raises(Exception, match="does not open"):
        reopened.embedding(face_id)
    reopened.close()
    # The wrong master key cannot open anything either.
    other = tmp_path / "elsewhere" / "catalog.sqlite3"
    other.parent.mkdir()
    with sqlite3.connect(engine.settings.catalog_path) as src, sqlite3.connect(other) as dst:
        src.backup(dst)
    stranger = open_catalog_file(other)  # generates a different master key beside the copy
    with pytest.raises(Exception, match="does not open"):
        stranger.faces([face_id])
    stranger.close()
