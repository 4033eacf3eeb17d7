"""Tracking faces across sampled frames (facesearch.pipeline.tracking) on clips built from
LFW photos, where who appears when is known exactly."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from videoclips import Person, Shot, build_clip, single_face_people, standard_shots

from facesearch.config import Settings
from facesearch.pipeline import video
from facesearch.pipeline.analyze import Analyzer
from facesearch.pipeline.video_analyze import SegmentWork, analyze_segment
from facesearch.types import SourceItem


@pytest.fixture(scope="module")
def people(lfw: Path, analyzer) -> dict[str, list[Path]]:
    return single_face_people(lfw, analyzer, 4)


def _segment(analyzer: Analyzer, path: Path, **video_settings):
    settings = analyzer.settings.model_copy(
        update={"video": analyzer.settings.video.model_copy(update=video_settings)}
    )
    local = Analyzer(analyzer.detector, analyzer.embedder, settings)
    info = video.probe(path, settings.video)
    work = SegmentWork(SourceItem(path), "0" * 64, 0, info, 0, 1, 0, info.duration_ms)
    return analyze_segment(local, work)


def test_one_track_per_appearance_with_its_moments_and_best_faces(people, analyzer, tmp_path):
    path = tmp_path / "clip.mp4"
    appearances = build_clip(path, standard_shots(people, seconds=2.0), "mp4-h264")
    result = _segment(analyzer, path)
    assert result.error is None
    assert len(result.tracks) == len(appearances)
    for appearance in appearances:
        reference = analyzer.faces(cv2.imread(str(appearance.photo)))[0].embedding
        overlapping = [
            t for t in result.tracks
            if t.start_ms < appearance.end_ms and t.end_ms >= appearance.start_ms
        ]  # fmt: skip
        best = max(overlapping, key=lambda t: float(t.embedding @ reference))
        assert float(best.embedding @ reference) > 0.6
        assert appearance.start_ms <= best.start_ms < appearance.start_ms + 500
        assert appearance.end_ms - 600 <= best.end_ms < appearance.end_ms
        assert len(best.faces) == 3 and best.seen == 4
        assert all(best.start_ms <= f.time_ms <= best.end_ms for f in best.faces)
        assert [f.time_ms for f in best.faces] == sorted(f.time_ms for f in best.faces)


def test_a_scene_cut_breaks_a_track_even_for_the_same_person(people, analyzer, tmp_path):
    path = tmp_path / "cut.mkv"
    name = next(iter(people))
    photo = people[name][0]
    shots = [
        Shot(1.5, [Person(name, photo, (0.4, 0.5), (0.4, 0.5))], (30, 30, 120)),
        Shot(1.5, [Person(name, photo, (0.6, 0.5), (0.6, 0.5))], (20, 140, 20)),
    ]
    build_clip(path, shots, "mkv-h264")
    result = _segment(analyzer, path)
    assert [(t.start_ms, t.shot) for t in result.tracks] == [(0, 0), (1467, 1)]  # 22 frames


def test_best_faces_per_track_is_a_setting(people, analyzer, tmp_path):
    path = tmp_path / "long.webm"
    name = next(iter(people))
    build_clip(path, [Shot(4.0, [Person(name, people[name][0], (0.3, 0.5), (0.7, 0.5))])],
               "webm-vp9")  # fmt: skip
    result = _segment(analyzer, path, faces_per_track=5)
    (track,) = result.tracks
    assert track.seen == 8 and len(track.faces) == 5
    assert Settings().video.faces_per_track == 3
