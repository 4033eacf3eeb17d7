"""The Ray path takes video segments as units of work: a clip ingested through a local Ray
instance is stored segment by segment, as the in-process path stores it."""

from __future__ import annotations

import sqlite3

import pytest
from videoclips import build_clip, people_photos, standard_shots

from facesearch.config import Settings
from facesearch.engine import Engine

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")


def _tracks(settings: Settings) -> list[tuple]:
    conn = sqlite3.connect(settings.catalog_path)
    try:
        return sorted(conn.execute("SELECT segment, start_ms, end_ms, detections FROM tracks"))
    finally:
        conn.close()


def test_segments_are_units_of_work_on_ray(lfw, tmp_path, cache_dir, analyzer, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    build_clip(folder / "clip.mkv", standard_shots(people_photos(lfw, 4)), "mkv-h264")
    local = Settings(data_dir=tmp_path / "local", cache_dir=cache_dir, workers=1,
                     video={"segment_s": 3})  # fmt: skip
    with Engine(local, analyzer=analyzer) as engine:
        engine.create_collection("c", "built clips", "test")
        expected = engine.ingest([folder], "c")

    # An instance of this process's own: the actors are started here, as on a cluster.
    # Token authentication off for this in-process instance, said explicitly: with the
    # mode unset, ray.init() writes ~/.ray/auth_token, and Ray clusters other tests start
    # at the same time would see a token appear under them (tests/raycluster.py).
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, namespace="facesearch")
    try:
        on_ray = Settings(
            data_dir=tmp_path / "ray",
            cache_dir=cache_dir,
            workers=1,
            video={"segment_s": 3},
            ray={"address": "local", "workers": 1},
        )
        with Engine(on_ray) as engine:
            engine.create_collection("c", "built clips", "test")
            report = engine.ingest([folder], "c")
    finally:
        ray.shutdown()
    assert report.status == "finished" and report.segments == 4 == expected.segments
    assert sum(report.ray_nodes.values()) == 4  # one per segment
    assert (report.faces, report.tracks) == (expected.faces, expected.tracks)
    assert _tracks(on_ray) == _tracks(local)
