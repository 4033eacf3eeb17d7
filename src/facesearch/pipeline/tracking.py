"""Faces of sampled video frames → tracks: one person's stretch on screen within a shot.

A face joins the open track whose last box it overlaps (IoU) and whose appearance it
resembles (cosine similarity of embeddings), or one it resembles strongly wherever it
is on screen; otherwise it starts a track. A scene cut, or a track unseen for longer
than a gap, ends it. Each track keeps its best few faces by quality, each with its
moment, so a long shot costs a few stored faces rather than one per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import VideoSettings
from ..types import FaceRecord

# A face that overlaps a track's last box must still look at least this much like it:
# two people crossing should not swap tracks.
OVERLAP_MIN_SIMILARITY = 0.2


@dataclass
class TrackFace:
    face: FaceRecord
    time_ms: int


@dataclass
class Track:
    start_ms: int
    end_ms: int
    shot: int
    faces: list[TrackFace] = field(default_factory=list)  # the best, by quality
    seen: int = 0  # detections linked into it
    last_box: tuple[float, float, float, float] = (0, 0, 0, 0)
    _sum: np.ndarray | None = None

    @property
    def embedding(self) -> np.ndarray:
        assert self._sum is not None
        return self._sum / (np.linalg.norm(self._sum) or 1.0)


class Tracker:
    """Feed it frames in time order (`add`); `finish` returns every track."""

    def __init__(self, settings: VideoSettings) -> None:
        self.settings = settings
        self.open: list[Track] = []
        self.closed: list[Track] = []
        self.shot: int | None = None
        self.detections = 0

    def add(self, time_ms: int, shot: int, faces: list[FaceRecord]) -> None:
        if shot != self.shot:
            self._close_all()
            self.shot = shot
        gap = self.settings.track_gap_s * 1000
        for track in [t for t in self.open if time_ms - t.end_ms > gap]:
            self._close(track)
        self.detections += len(faces)
        pairs = []
        for i, face in enumerate(faces):
            for j, track in enumerate(self.open):
                overlap = iou(track.last_box, face.detection.box)
                similarity = float(np.dot(track.embedding, face.embedding))
                linked = similarity >= self.settings.track_similarity or (
                    overlap >= self.settings.track_iou and similarity >= OVERLAP_MIN_SIMILARITY
                )
                if linked:
                    pairs.append((overlap + similarity, i, j))
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for _, i, j in sorted(pairs, reverse=True):  # greedy: the best links first
            if i in taken_faces or j in taken_tracks:
                continue
            taken_faces.add(i)
            taken_tracks.add(j)
            self._extend(self.open[j], faces[i], time_ms)
        for i, face in enumerate(faces):
            if i not in taken_faces:
                track = Track(time_ms, time_ms, shot)
                self._extend(track, face, time_ms)
                self.open.append(track)

    def finish(self) -> list[Track]:
        self._close_all()
        return sorted(self.closed, key=lambda t: (t.start_ms, t.end_ms))

    def _extend(self, track: Track, face: FaceRecord, time_ms: int) -> None:
        vector = np.asarray(face.embedding, np.float64)
        track._sum = vector.copy() if track._sum is None else track._sum + vector
        track.end_ms = time_ms
        track.last_box = face.detection.box
        track.seen += 1
        track.faces.append(TrackFace(face, time_ms))
        track.faces.sort(key=lambda f: f.face.quality, reverse=True)
        del track.faces[self.settings.faces_per_track :]

    def _close(self, track: Track) -> None:
        self.open.remove(track)
        track.faces.sort(key=lambda f: f.time_ms)
        self.closed.append(track)

    def _close_all(self) -> None:
        for track in list(self.open):
            self._close(track)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
