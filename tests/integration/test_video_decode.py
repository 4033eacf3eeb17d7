"""Video decoding and sampling (facesearch.pipeline.video) on clips built from LFW photos
in every container and codec the PyAV wheel has, and on hostile video files."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from badfiles import CLEAR_ERRORS, ERROR, FACES
from badvideos import hostile_videos
from videoclips import FORMATS, Person, Shot, build_clip, people_photos, standard_shots

from facesearch.config import VideoSettings
from facesearch.errors import VideoRejected
from facesearch.pipeline import video

SETTINGS = VideoSettings()


@pytest.fixture(scope="module")
def people(lfw: Path) -> dict[str, list[Path]]:
    return people_photos(lfw, 4)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_format_is_sampled_on_the_grid_with_faces_where_people_are(
    kind, people, analyzer, tmp_path
):
    path = tmp_path / f"clip{FORMATS[kind][0]}"
    shots = standard_shots(people, seconds=1.5)
    appearances = build_clip(path, shots, kind, creation_time="2021-05-01T12:30:00.000000Z")
    info = video.probe(path, SETTINGS)
    assert (info.width, info.height, info.fps) == (640, 360, 15.0)
    assert abs(info.duration_ms - round(sum(s.seconds for s in shots) * 1000)) <= 150
    frames = list(video.sample(path, SETTINGS, 0, info.duration_ms))
    grid = [f.time_ms for f in frames if not f.cut]
    # The first frame at or after each half second (frames are 66.7 ms apart).
    assert all(t % 500 < 67 for t in grid)
    assert len(grid) == pytest.approx(info.duration_ms / 500, abs=1)
    if kind != "avi-mpeg4":  # AVI has no creation time
        assert info.created_at == "2021-05-01T12:30:00"
    for frame in frames[::2]:
        present = [a for a in appearances if a.start_ms <= frame.time_ms < a.end_ms]
        found = analyzer.faces(frame.pixels)
        # An LFW photo may show someone else in its background too.
        assert len(found) >= len(present) and (found or not present), (kind, frame.time_ms)
        assert present or not found, (kind, frame.time_ms)


def test_shots_change_at_cuts_and_a_cut_between_samples_is_sampled(people, tmp_path):
    path = tmp_path / "cuts.mp4"
    (first, second) = list(people)[:2]
    shots = [
        Shot(1.3, [Person(first, people[first][0])], (30, 30, 120)),
        Shot(1.5, [Person(second, people[second][0])], (140, 60, 20)),
        Shot(1.3, [], (20, 140, 20)),
    ]
    build_clip(path, shots, "mp4-h264", fps=10)
    frames = list(video.sample(path, SETTINGS, 0, 4100))
    extra = [f for f in frames if f.cut]
    # Shots alike in brightness (the first two) are told apart by colour.
    assert [f.time_ms for f in extra] == [1300, 2800]
    for frame in frames:
        assert frame.shot == (frame.time_ms >= 1300) + (frame.time_ms >= 2800)


def test_segments_sample_the_same_moments_as_the_whole_file(people, tmp_path):
    path = tmp_path / "long.mkv"
    build_clip(path, standard_shots(people, seconds=2.0), "mkv-h264")
    settings = VideoSettings(segment_s=3)
    info = video.probe(path, settings)
    parts = video.segments(info, settings)
    assert parts[0] == (0, 3000) and parts[-1][1] == info.duration_ms
    whole = [f.time_ms for f in video.sample(path, settings, 0, info.duration_ms)]
    pieces = [f.time_ms for s, e in parts for f in video.sample(path, settings, s, e)]
    assert pieces == whole


def test_sparse_sampling_seeks_and_decodes_less(people, tmp_path):
    path = tmp_path / "sparse.mp4"
    build_clip(path, [Shot(12.0, [])], "mp4-h264", fps=15)
    dense, sparse = {}, {}
    list(video.sample(path, SETTINGS, 0, 12000, dense))
    times = [f.time_ms for f in video.sample(path, VideoSettings(sample_fps=0.1), 0, 12000, sparse)]
    assert times == [0, 10000]
    assert dense["decoded"] == 180 and sparse["seeks"] == 1
    assert sparse["decoded"] <= 30 + 1 + 15  # up to the next keyframe twice, not the whole file


def test_rotation_metadata_is_honoured(people, analyzer, tmp_path):
    path = tmp_path / "phone.mp4"
    name = next(iter(people))
    build_clip(path, [Shot(1.0, [Person(name, people[name][0])])], "mp4-h264",
               rotation=90)  # fmt: skip
    info = video.probe(path, SETTINGS)
    assert (info.width, info.height, info.rotation) == (640, 360, 90)
    (frame, *_) = video.sample(path, SETTINGS, 0, 1000)
    assert frame.pixels.shape == (360, 640, 3)
    assert len(analyzer.faces(frame.pixels)) == 1


def test_every_hostile_video_decodes_or_is_refused_clearly(lfw, analyzer, tmp_path):
    face = cv2.imread(str(lfw / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"))
    for case in hostile_videos(face):
        path = tmp_path / case.name
        path.write_bytes(case.data)
        try:
            info = video.probe(path, SETTINGS)
            frames = list(video.sample(path, SETTINGS, 0, info.duration_ms))
        except VideoRejected as exc:
            reason = str(exc)
            assert reason.startswith(CLEAR_ERRORS), (case.name, reason)
            assert case.expect in (ERROR, "either") and case.phrase in reason, (case.name, reason)
            continue
        assert case.expect != ERROR, f"{case.name} should have been refused"
        if case.expect == FACES:
            assert frames and analyzer.faces(frames[0].pixels), case.name


def test_limits_and_the_time_budget_refuse_a_file(people, tmp_path):
    path = tmp_path / "clip.webm"
    build_clip(path, standard_shots(people, seconds=1.0), "webm-vp9")
    limits = {
        "max_duration_s": (VideoSettings(max_duration_s=2), "above the limit of 2 s"),
        "max_pixels": (VideoSettings(max_pixels=640 * 359), "megapixels"),
        "max_fps": (VideoSettings(max_fps=10), "frame rate 15 fps"),
        "max_bytes": (VideoSettings(max_bytes=1000), "above the video limit"),
    }
    for _name, (settings, phrase) in limits.items():
        with pytest.raises(VideoRejected, match=phrase):
            video.probe(path, settings)
    spin = VideoSettings(budget_base_s=1e-6, budget_per_video_s=1e-9)
    with pytest.raises(VideoRejected, match="time budget"):
        list(video.sample(path, spin, 0, 5000))


def test_a_pipe_is_refused_not_read_for_ever(tmp_path):
    import os

    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoRejected, match="not a regular file"):
        video.probe(fifo, SETTINGS)


def test_time_text():
    assert video.time_text(0) == "00:00:00.000"
    assert video.time_text(3_723_004) == "01:02:03.004"
