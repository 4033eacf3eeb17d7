"""Videos through ingest, search and governance, on clips built from LFW photos (exact
ground truth of who appears when) and on the hostile video files of tests/badvideos.py."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
from badvideos import ERROR, FACES, hostile_videos
from videoclips import build_clip, single_face_people, standard_shots

from facesearch.cli.governance import governed
from facesearch.governance.audit import Who
from facesearch.governance.rights import access_report, erase, purge_retention
from facesearch.storage import open_catalog_file
from facesearch.store import videos

WHO = Who("cli:tester", None, "cli")


@pytest.fixture(scope="module")
def people(lfw: Path, analyzer) -> dict[str, list[Path]]:
    return single_face_people(lfw, analyzer, 4)


@pytest.fixture
def clip(people, tmp_path):
    """A folder with one 10 s clip (five appearances of four people) and one photo of
    someone else."""
    folder = tmp_path / "in"
    folder.mkdir()
    appearances = build_clip(folder / "clip.webm", standard_shots(people), "webm-vp9",
                             creation_time="2024-05-06T07:08:09Z")  # fmt: skip
    return folder, appearances


def _video_hits(engine, photo: Path, top: int = 10):
    return [h for h in engine.search(photo.read_bytes(), top).hits if h.video]


def test_a_photo_search_finds_each_person_in_the_video_at_the_moment(catalog_engine, people, clip):
    engine = catalog_engine
    folder, appearances = clip
    photo = next(iter(people.values()))[1]  # a second photo of the first person
    (folder / "photo.jpg").write_bytes(photo.read_bytes())
    engine.create_collection("footage", "built clips", "test")
    report = engine.ingest([folder], "footage")
    assert (report.images, report.errors, report.done, report.total) == (2, 0, 2, 2)
    assert report.video_seconds == report.video_seconds_total == 10.0
    assert report.segments == 1 and report.tracks == len(appearances)

    found = 0
    for appearance in appearances:
        probe = people[appearance.name][1]  # another photo than the one shown
        hits = [
            h for h in _video_hits(engine, probe)
            if appearance.start_ms - 1000 <= h.video["time_ms"] <= appearance.end_ms + 1000
        ]  # fmt: skip
        if hits and hits[0].score > 0.5:
            found += 1
            moment = hits[0].video
            assert moment["start_ms"] <= moment["time_ms"] <= moment["end_ms"]
            assert moment["duration_ms"] == 10_000
            assert hits[0].captured_at == "2024-05-06T07:08:09"
    assert found == len(appearances)
    # A photo probe finds photo faces and video faces alike.
    first = next(iter(people.values()))[0]
    hits = engine.search(first.read_bytes(), 10).hits
    assert {bool(h.video) for h in hits if h.score > 0.5} == {True, False}


def test_a_long_video_is_stored_in_segments_and_not_twice(engine, clip):
    folder, appearances = clip
    engine.settings.video.segment_s = 3.0
    engine.create_collection("footage", "built clips", "test")
    report = engine.ingest([folder], "footage")
    assert report.segments == 4 and report.images == 1 and report.done == 1
    conn = sqlite3.connect(engine.settings.catalog_path)
    spans = conn.execute("SELECT segment, start_ms, end_ms FROM video_segments ORDER BY segment")
    assert spans.fetchall() == [(0, 0, 3000), (1, 3000, 6000), (2, 6000, 9000), (3, 9000, 10000)]
    row = conn.execute("SELECT kind, duration_ms, segments, complete, face_count FROM images")
    kind, duration, segments, complete, faces = row.fetchone()
    assert (kind, duration, segments, complete) == ("video", 10_000, 4, 1)
    assert faces == report.faces == conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    # Each track's faces lie within it; a person on screen across a segment's edge is
    # one track, joined at the edge: as many tracks as appearances, as in one segment.
    spans = []
    for start, end, low, high in conn.execute(
        "SELECT t.start_ms, t.end_ms, MIN(f.time_ms), MAX(f.time_ms) FROM tracks t "
        "JOIN faces f ON f.track_id = t.id GROUP BY t.id"
    ):
        assert start <= low <= high <= end
        spans.append((start, end))
    conn.close()
    crossing = [a for a in appearances if a.start_ms // 3000 != (a.end_ms - 1) // 3000]
    assert crossing and len(spans) == len(appearances) == report.tracks
    for a in crossing:
        assert any(s <= a.start_ms + 500 and e >= a.end_ms - 600 for s, e in spans), a
    again = engine.ingest([folder], "footage")
    assert (again.duplicates, again.segments, again.faces) == (1, 0, 0)


def test_each_bad_video_gets_a_clear_error_and_the_ingest_goes_on(engine, lfw, tmp_path):
    face = cv2.imread(str(lfw / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"))
    cases = hostile_videos(face)
    folder = tmp_path / "bad"
    folder.mkdir()
    for case in cases:
        (folder / case.name).write_bytes(case.data)
    engine.create_collection("bad", "hostile videos", "test")
    report = engine.ingest([folder], "bad")
    conn = sqlite3.connect(engine.settings.catalog_path)
    faces = {Path(p).name: n for p, n in conn.execute("SELECT path, face_count FROM images")}
    errors = {Path(p).name: r for p, r in conn.execute("SELECT path, reason FROM ingest_errors")}
    conn.close()
    assert faces.keys() | errors.keys() == {c.name for c in cases}
    assert faces.keys().isdisjoint(errors)
    assert report.done == len(cases) and report.status == "finished"
    for case in cases:
        if case.expect == ERROR:
            assert case.phrase in errors.get(case.name, ""), (case.name, errors.get(case.name))
        elif case.expect == FACES:
            assert faces.get(case.name), (case.name, errors.get(case.name))
        if case.name in errors:
            assert "Traceback" not in errors[case.name]


def test_erasure_of_a_face_a_track_and_a_video_with_block_list_and_audit(
    engine, people, clip, tmp_path
):
    folder, appearances = clip
    engine.create_collection("footage", "built clips", "test")
    engine.ingest([folder], "footage")
    audit, blocklist = governed(engine)
    name = appearances[0].name
    probe = people[name][1].read_bytes()

    held, _ = access_report(engine, audit, WHO, probe, ["footage"], "DSR-1", None, 0.363)
    assert held and all(h.video for h in held)
    assert held[0].video["time"].startswith("00:00:0")
    track_id = held[0].video["track_id"]
    track_faces = videos.track_face_ids(engine.catalog, track_id)
    event = erase(engine, audit, blocklist, WHO, [], "DSR-1", track_ids=[track_id])
    assert event.face_ids == track_faces and event.blocklisted == len(track_faces)
    assert videos.track(engine.catalog, track_id) is None
    assert all(h.video["track_id"] != track_id for h in _video_hits(engine, people[name][1]))

    # The block-list keeps the person out of the next video too, track by track.
    again = tmp_path / "again"
    again.mkdir()
    build_clip(again / "again.mp4", standard_shots({name: people[name]}), "mp4-h264")
    report = engine.ingest([again], "footage", screen=governed(engine)[1].screen)
    assert report.blocked > 0 and report.faces == 0

    # One face, then the whole video.
    other = _video_hits(engine, people[appearances[-1].name][1])[0]
    erase(engine, audit, blocklist, WHO, [other.face_id], "DSR-2")
    assert engine.catalog.faces([other.face_id]) == {}
    video_id = other.image_id
    event = erase(engine, audit, blocklist, WHO, [], "ORDER-3", video_ids=[video_id])
    assert event.images_deleted == 1 and event.blocklisted == 0
    assert videos.tracks(engine.catalog, video_id) == []
    assert (
        engine.catalog.conn.execute(
            "SELECT COUNT(*) FROM images WHERE id = ?", (video_id,)
        ).fetchone()[0]
        == 0
    )
    details = [e.details for e in audit.store.entries() if e.action == "erase"]
    assert f'"track_ids":[{track_id}]' in details[0].replace(" ", "")
    assert f'"video_ids":[{video_id}]' in details[-1].replace(" ", "")
    assert audit.verify().ok


def test_retention_purges_videos_with_their_tracks(engine, clip):
    folder, _ = clip
    engine.create_collection("short", "built clips", "test", 1)
    engine.ingest([folder], "short")
    assert videos.stats(engine.catalog)["tracks"] > 0
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="seconds")
    engine.catalog.conn.execute("UPDATE images SET added_at = ?", (old,))
    purged = purge_retention(engine, governed(engine)[0], WHO, None)
    assert purged[0]["images"] == 1 and purged[0]["faces"] > 0
    assert videos.stats(engine.catalog) == {"videos": 0, "video_seconds": 0, "tracks": 0}
    assert engine.stats()["faces"] == 0


def test_video_faces_are_sealed_at_rest_like_photo_faces(engine, clip):
    folder, _ = clip
    engine.create_collection("footage", "built clips", "test")
    engine.ingest([folder], "footage")
    engine.catalog.close()
    conn = sqlite3.connect(engine.settings.catalog_path)
    rows = conn.execute(
        "SELECT id, sealed, thumbnail, embedding FROM faces WHERE track_id IS NOT NULL"
    ).fetchall()
    conn.close()
    assert rows and all(sealed == 1 for _, sealed, _, _ in rows)
    assert not any(thumbnail.startswith(b"\xff\xd8") for _, _, thumbnail, _ in rows)
    raw = engine.settings.catalog_path.read_bytes()
    with open_catalog_file(engine.settings.catalog_path) as catalog:
        opened = catalog.faces([rows[0][0]])[rows[0][0]].thumbnail
    assert opened.startswith(b"\xff\xd8") and opened not in raw
