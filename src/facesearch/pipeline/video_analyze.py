"""One segment of a video through every stage: sample → detect → align → embed → track.

A segment is the unit of work for worker processes and Ray actors alike, and what is
stored in one transaction; it touches no database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import ImageRejected
from ..types import ImageResult, SourceItem
from .analyze import Analyzer
from .tracking import Track, Tracker
from .video import VideoInfo, sample


@dataclass(frozen=True)
class SegmentWork:
    item: SourceItem
    sha256: str
    size_bytes: int
    info: VideoInfo
    index: int  # segment number, from 0
    count: int  # segments in the file
    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass
class SegmentResult:
    work: SegmentWork
    tracks: list[Track] = field(default_factory=list)
    frames: int = 0  # frames sampled and analysed
    detections: int = 0
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def analyze_segment(analyzer: Analyzer, work: SegmentWork) -> SegmentResult:
    """The tracks of faces in one segment, or the reason the file cannot be used."""
    result = SegmentResult(work)
    settings = analyzer.settings.video
    tracker = Tracker(settings)
    timings = result.timings
    clock = time.perf_counter()
    try:
        for frame in sample(work.item.path, settings, work.start_ms, work.end_ms):
            timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - clock
            stage: dict[str, float] = {}
            faces = analyzer.faces(frame.pixels, stage, settings.detect_max_side)
            for name, seconds in stage.items():
                timings[name] = timings.get(name, 0.0) + seconds
            tracker.add(frame.time_ms, frame.shot, faces)
            result.frames += 1
            clock = time.perf_counter()
    except ImageRejected as exc:
        result.error = str(exc)
        return result
    except MemoryError:
        result.error = "not enough memory to decode this video's frames"
        return result
    result.tracks = tracker.finish()
    result.detections = tracker.detections
    return result


def analyze_work(analyzer: Analyzer, work) -> list[ImageResult] | SegmentResult:
    """A unit of ingest work, whichever it is: a batch of photos (their bytes) or one
    segment of a video (read from its path by whoever runs it)."""
    if isinstance(work, SegmentWork):
        return analyze_segment(analyzer, work)
    return analyzer.analyze_batch(work)


def work_size(work) -> int:
    """Files in a unit of work (a segment is part of one)."""
    return 1 if isinstance(work, SegmentWork) else len(work)
