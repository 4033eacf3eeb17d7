"""A long video's ingest killed with SIGKILL part way through the file, then resumed: it
goes on at the first segment not stored, and the catalog ends as an uninterrupted run's,
nothing stored twice, the index and the audit log whole."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

from crashkit import (
    assert_store_intact,
    command,
    create_collection,
    kill_while_storing,
    run_ingest,
    snapshot,
)
from videoclips import build_clip, people_photos, standard_shots

from facesearch.config import Settings
from facesearch.engine import Engine

SEGMENT = {"FACESEARCH_VIDEO__SEGMENT_S": "2"}


def _segments(data_dir) -> list[int]:
    conn = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        return [r[0] for r in conn.execute("SELECT segment FROM video_segments ORDER BY segment")]
    finally:
        conn.close()


def _tracks(data_dir) -> list[tuple]:
    conn = sqlite3.connect(data_dir / "catalog.sqlite3")
    try:
        return sorted(conn.execute("SELECT segment, start_ms, end_ms, detections FROM tracks"))
    finally:
        conn.close()


def test_a_video_ingest_killed_mid_file_resumes_within_it(lfw, tmp_path, cache_dir, analyzer):
    folder = tmp_path / "in"
    folder.mkdir()
    clip = folder / "long.mp4"
    build_clip(clip, standard_shots(people_photos(lfw, 5)), "mp4-h264")  # 12 s: 6 segments

    reference = Settings(data_dir=tmp_path / "reference", cache_dir=cache_dir, workers=1,
                         video={"segment_s": 2})  # fmt: skip
    with Engine(reference, analyzer=analyzer) as engine:
        engine.create_collection("c", "built clips", "test")
        report = engine.ingest([folder], "c")
    assert report.segments == 6
    expected = snapshot(reference.catalog_path)

    data_dir = tmp_path / "killed"
    create_collection(data_dir, cache_dir)
    # Killed by the fault injection as the third segment's rows are written, uncommitted.
    killed = run_ingest(data_dir, cache_dir, folder, "c", fault="catalog_commit:3", **SEGMENT)
    assert killed.killed and killed.stage == "catalog_commit", killed.stderr
    assert _segments(data_dir) == [0, 1]
    # Then from outside, at a moment no fault point chose, once more segments are in.
    os.environ.update(SEGMENT)
    try:
        kill_while_storing(data_dir, cache_dir, folder, "c", workers=1, more=0, delay=1.5)
    finally:
        for key in SEGMENT:
            os.environ.pop(key)
    done = _segments(data_dir)
    assert done[:2] == [0, 1] and done == list(range(len(done)))

    # Resumed with worker processes: only the segments not stored are analysed.
    finished = subprocess.run(
        command(data_dir, cache_dir, "ingest", str(folder), "--collection", "c", "--json",
                workers=2),
        capture_output=True, text=True, timeout=300, env={**os.environ, **SEGMENT},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    assert summary.get("video_segments", 0) == 6 - len(done)
    assert summary.get("video_seconds", 0) == 12.0 - 2 * len(done)
    assert _segments(data_dir) == list(range(6))
    assert _tracks(data_dir) == _tracks(reference.data_dir)
    assert_store_intact(data_dir, cache_dir, expected, [clip.resolve()])
