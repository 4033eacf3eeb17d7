"""Video clips built from labelled photos, with exact ground truth of who appears when.

A clip is a list of shots separated by hard cuts. In each shot some LFW people are shown
(their photo pasted onto a plain background, drifting and growing across the frames) for
the whole shot, so every appearance's interval is known to the frame. The clips are
encoded with PyAV in any container and codec its FFmpeg has, and never committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

# SVT-AV1 prints its configuration to stderr unless told to keep to errors.
os.environ.setdefault("SVT_LOG", "1")

# (container suffix, encoder, pixel format, encoder options) for each kind of clip tested.
FORMATS: dict[str, tuple[str, str, str, dict]] = {
    "mp4-h264": (".mp4", "libx264", "yuv420p", {"preset": "ultrafast"}),
    "webm-vp9": (".webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "mkv-h264": (".mkv", "libx264", "yuv420p", {"preset": "ultrafast"}),
    "avi-mpeg4": (".avi", "mpeg4", "yuv420p", {"qscale": "3"}),
    "mov-h264": (".mov", "libx264", "yuv420p", {"preset": "ultrafast"}),
    "mp4-av1": (".mp4", "libsvtav1", "yuv420p", {"preset": "12"}),
    "mkv-h265": (".mkv", "libx265", "yuv420p",
                 {"preset": "ultrafast", "x265-params": "log-level=none"}),
    "webm-vp8": (".webm", "libvpx", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
}  # fmt: skip


@dataclass(frozen=True)
class Person:
    name: str
    photo: Path
    # Where the photo's centre starts and ends, as fractions of the frame, and its scale.
    start: tuple[float, float] = (0.5, 0.5)
    end: tuple[float, float] = (0.5, 0.5)
    scale: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class Shot:
    seconds: float
    people: list[Person] = field(default_factory=list)
    background: tuple[int, int, int] = (40, 90, 140)


@dataclass(frozen=True)
class Appearance:
    name: str
    photo: Path
    start_ms: int
    end_ms: int


def build_clip(
    path: Path, shots: list[Shot], kind: str = "mp4-h264", size: tuple[int, int] = (640, 360),
    fps: int = 15, rotation: int = 0, creation_time: str | None = None,
) -> list[Appearance]:  # fmt: skip
    """Encode `shots` to `path` (its suffix should be the kind's); the appearances in it.

    With `rotation`, the frames are stored turned and the display matrix says to turn
    them back by `rotation` degrees counterclockwise, as a phone's camera does."""
    _suffix, encoder, pix_fmt, options = FORMATS[kind]
    width, height = size
    stored = (height, width) if rotation % 180 else (width, height)
    photos = {p.photo: cv2.imread(str(p.photo)) for shot in shots for p in shot.people}
    appearances, frame_number = [], 0
    with av.open(str(path), "w") as container:
        if creation_time:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream(encoder, rate=fps, options=dict(options))
        stream.width, stream.height = stored
        stream.pix_fmt = pix_fmt
        stream.gop_size = fps * 2
        if rotation:
            stream.set_display_rotation(rotation)
        for shot in shots:
            count = max(1, round(shot.seconds * fps))
            start_ms = round(frame_number * 1000 / fps)
            for person in shot.people:
                end_ms = round((frame_number + count) * 1000 / fps)
                appearances.append(Appearance(person.name, person.photo, start_ms, end_ms))
            for n in range(count):
                share = n / max(count - 1, 1)
                frame = np.empty((height, width, 3), np.uint8)
                frame[:] = shot.background
                for person in shot.people:
                    _paste(frame, photos[person.photo], person, share)
                if rotation:
                    frame = np.ascontiguousarray(np.rot90(frame, -(rotation // 90)))
                picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
                picture.pts = frame_number
                frame_number += 1
                for packet in stream.encode(picture):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return appearances


def _paste(frame: np.ndarray, photo: np.ndarray, person: Person, share: float) -> None:
    height, width = frame.shape[:2]
    scale = person.scale[0] + (person.scale[1] - person.scale[0]) * share
    side = max(8, round(min(width, height) * 0.55 * scale))
    picture = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    cx = (person.start[0] + (person.end[0] - person.start[0]) * share) * width
    cy = (person.start[1] + (person.end[1] - person.start[1]) * share) * height
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + side, width), min(y0 + side, height)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = picture[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]


def people_photos(lfw: Path, count: int, min_images: int = 2) -> dict[str, list[Path]]:
    """The first `count` LFW people with at least `min_images` photos: the first photo is
    shown in clips, another is the probe."""
    people = {}
    for folder in sorted(p for p in lfw.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if len(photos) >= min_images:
            people[folder.name] = photos
            if len(people) == count:
                break
    return people


def standard_shots(people: dict[str, list[Path]], seconds: float = 2.0) -> list[Shot]:
    """Shots with one or two people each, moving and growing, with an empty shot between;
    a person may come back in a later shot."""
    names = list(people)
    colours = [(40, 90, 140), (150, 60, 30), (30, 130, 60), (120, 120, 120), (10, 10, 60)]
    shots = []
    for n, name in enumerate(names):
        cast = [Person(name, people[name][0], (0.35, 0.5), (0.45, 0.5), (0.9, 1.1))]
        if n % 3 == 2 and n > 0:  # two people side by side
            other = names[n - 1]
            cast = [
                Person(name, people[name][0], (0.26, 0.5), (0.3, 0.5), (0.8, 0.85)),
                Person(other, people[other][0], (0.74, 0.5), (0.7, 0.5), (0.8, 0.85)),
            ]
        shots.append(Shot(seconds, cast, colours[n % len(colours)]))
        if n % 2 == 1:
            shots.append(Shot(1.0, [], colours[(n + 2) % len(colours)]))
    return shots


def single_face_people(lfw: Path, analyzer, count: int) -> dict[str, list[Path]]:
    """Like `people_photos`, keeping only people whose first two photos each show exactly
    one face, so every face in a clip is one of the cast."""
    chosen = {}
    for name, photos in people_photos(lfw, count * 4).items():
        if all(len(analyzer.faces(cv2.imread(str(p)))) == 1 for p in photos[:2]):
            chosen[name] = photos
            if len(chosen) == count:
                break
    return chosen
