"""People end to end on real photos and models: clustering at ingest, the operations
on persons with their errors, undo, recluster keeping human decisions, erasure."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import lfw_people
from linkfarm import place

from facesearch.cli.governance import governed
from facesearch.engine import Engine
from facesearch.errors import Conflict, FacesearchError, NotFound
from facesearch.governance.audit import Who
from facesearch.governance.rights import access_report, erase, persons_held
from facesearch.people.actions import PersonActions
from facesearch.store.people import PeopleStore

DEFAULT_ORG = 1


@pytest.fixture
def archive(engine: Engine, lfw, wild, tmp_path):
    """Eight LFW people with 5+ photos (six each) and the wild group photo, ingested."""
    folder = tmp_path / "photos"
    folder.mkdir()
    truth = {}
    for name, images in lfw_people(lfw, min_images=6, count=8).items():
        for image in images[:6]:
            place(image, folder / image.name)
            truth[image.name] = name
    place(wild / "selfie-many-people.jpg", folder / "selfie-many-people.jpg")
    engine.create_collection("press", "LFW and deepface test photos", "test fixture")
    engine.ingest([folder], "press")
    return engine, truth


def _faces_by_person(engine: Engine) -> dict[int, list[dict]]:
    store = PeopleStore(engine.catalog)
    return {p.id: store.appearances(DEFAULT_ORG, p.id) for p in store.persons(DEFAULT_ORG)}


def test_ingest_groups_faces_into_persons_without_merging_people(archive):
    engine, truth = archive
    persons = _faces_by_person(engine)
    assert len(persons) >= 7
    for faces in persons.values():
        names = {truth.get(f["path"].rsplit("/", 1)[-1], f["path"]) for f in faces}
        assert len(names) == 1, names  # never two people in one person
        images = [f["image_id"] for f in faces]
        assert len(images) == len(set(images))  # never two faces of one photo
    grouped = sum(len(f) for f in persons.values())
    assert grouped >= 0.8 * len(truth)


def test_operations_are_audited_undoable_and_refuse_bad_input(archive):
    engine, _ = archive
    audit, _ = governed(engine)
    actions = PersonActions(engine.catalog, audit)
    store = actions.store
    who = Who("alice", DEFAULT_ORG, "test")
    a, b = store.persons(DEFAULT_ORG)[:2]

    person, op = actions.name(who, a.id, "  Jane Roe  ")
    assert person.name == "Jane Roe" and person.version == a.version + 1
    raw = (
        sqlite3.connect(engine.settings.catalog_path)
        .execute("SELECT name_sealed FROM persons WHERE id = ?", (a.id,))
        .fetchone()[0]
    )
    assert b"Jane" not in raw  # sealed at rest

    before = _faces_by_person(engine)
    for bad, message in [
        (lambda: actions.merge(who, a.id, a.id), "itself"),
        (lambda: actions.split(who, a.id, [before[b.id][0]["face_id"]]), "not person"),
        (lambda: actions.name(who, a.id, "x" * 101), "at most 100"),
        (lambda: actions.name(who, a.id, "Jane\x07Roe"), "control characters"),
        (lambda: actions.name(who, a.id, "Jane", expected=1), "changed meanwhile"),
    ]:
        with pytest.raises(FacesearchError, match=message):
            bad()
    with pytest.raises(NotFound):
        actions.name(Who("mallory", 999, "test"), a.id, "Other org")
    assert _faces_by_person(engine) == before

    merged, merge_op = actions.merge(who, b.id, a.id)
    assert merged.faces == a.faces + b.faces and merged.name == "Jane Roe"
    with pytest.raises(Conflict, match="merged into"):
        actions.split(who, b.id, [before[b.id][0]["face_id"]])
    moved = [f["face_id"] for f in before[b.id]]
    split, split_op = actions.split(who, a.id, moved)
    assert split.faces == len(moved)
    # Later operations first: the merge cannot be undone while the split stands.
    with pytest.raises(Conflict, match="undo it first"):
        actions.undo(who, merge_op)
    actions.undo(who, split_op)
    actions.undo(who, merge_op)
    after = _faces_by_person(engine)
    assert sorted(f["face_id"] for f in after[b.id]) == sorted(moved)
    actions.undo(who, op)
    assert store.person(DEFAULT_ORG, a.id).name is None

    hidden, _ = actions.hide(who, a.id)
    assert hidden.hidden and a.id not in [p.id for p in store.persons(DEFAULT_ORG)]

    actions_seen = [
        r.details for r in audit.store.query(None, "person", None, None, None, None, 100)
    ]
    assert len(actions_seen) == 7  # name, merge, split, undo x3, hide


def test_concurrent_merge_and_split_one_wins(archive, settings):
    engine, _ = archive
    store = PeopleStore(engine.catalog)
    a, b = store.persons(DEFAULT_ORG)[:2]
    face = store.face_ids(b.id)[0]
    grouped = sum(p.faces for p in store.persons(DEFAULT_ORG, include_hidden=True))
    outcomes: list[str] = []

    def run(kind: str) -> None:
        with Engine(settings) as other:
            actions = PersonActions(other.catalog, governed(other)[0])
            who = Who(kind, DEFAULT_ORG, "test")
            try:
                if kind == "merge":
                    actions.merge(who, b.id, a.id)
                else:
                    actions.split(who, b.id, [face])
                outcomes.append(kind)
            except FacesearchError as exc:
                outcomes.append(f"refused: {exc}")

    threads = [threading.Thread(target=run, args=(k,)) for k in ("merge", "split")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [o for o in outcomes if not o.startswith("refused")]
    assert done, outcomes
    if len(done) == 1:
        assert "merged into" in next(o for o in outcomes if o.startswith("refused"))
    # Whatever the order, every face still has exactly one person.
    assert sum(p.faces for p in store.persons(DEFAULT_ORG, include_hidden=True)) == grouped


def test_recluster_keeps_human_decisions(archive):
    engine, _ = archive
    actions = PersonActions(engine.catalog, governed(engine)[0])
    who = Who("alice", DEFAULT_ORG, "test")
    store = actions.store
    a = store.persons(DEFAULT_ORG)[0]
    actions.name(who, a.id, "Jane Roe")
    rejected = store.face_ids(a.id)[0]
    actions.reject(who, a.id, [rejected])
    kept = store.face_ids(a.id)
    result = engine.people().recluster(DEFAULT_ORG)
    assert result["faces"] > 0
    again = store.person(DEFAULT_ORG, a.id)
    assert again.name == "Jane Roe"
    assert set(kept) <= set(store.face_ids(a.id))
    assert rejected not in store.face_ids(a.id)


def test_access_report_lists_the_person_and_erasing_them_erases_all_their_faces(archive):
    engine, _ = archive
    audit, blocklist = governed(engine)
    store = PeopleStore(engine.catalog)
    a = store.persons(DEFAULT_ORG)[0]
    faces = store.face_ids(a.id)
    photo = next(f["path"] for f in store.appearances(DEFAULT_ORG, a.id))
    held, _ = access_report(engine, audit, Who.cli(DEFAULT_ORG), Path(photo).read_bytes(), None,
                            "SAR-1", None, engine.settings.governance.access_threshold)  # fmt: skip
    persons = persons_held(engine, DEFAULT_ORG, held)
    assert [p["id"] for p in persons] == [a.id]
    assert sorted(f["face_id"] for f in persons[0]["faces"]) == faces

    with pytest.raises(NotFound):  # another organisation's person is not found
        erase(engine, audit, blocklist, Who("x", 999, "test"), [], "ER-0", person_ids=[a.id])
    event = erase(engine, audit, blocklist, Who.cli(DEFAULT_ORG), [], "ER-1",
                  engine.settings.uploads_dir, person_ids=[a.id])  # fmt: skip
    assert sorted(event.face_ids) == faces and event.blocklisted == len(faces)
    assert event.person_ids == [a.id]
    with pytest.raises(NotFound):
        store.person(DEFAULT_ORG, a.id)


def test_retention_and_collection_deletion_leave_no_orphan_persons(archive):
    engine, _ = archive
    store = PeopleStore(engine.catalog)
    assert store.persons(DEFAULT_ORG)
    collection = engine.catalog.collection("press")
    engine.catalog.set_retention(collection, 1)
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    with engine.catalog.transaction():
        engine.catalog.purge_expired(later)
    # What the engine does after every deletion path (erasure, retention, a collection).
    engine.remove_orphan_persons()
    left = engine.catalog.conn.execute("SELECT COUNT(*) FROM persons").fetchone()[0]
    assert left == 0
