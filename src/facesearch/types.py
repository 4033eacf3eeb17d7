"""Plain data passed between pipeline stages, the catalog and the front doors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SourceItem:
    """One file to ingest, with what the operator declared about it."""

    path: Path
    source_url: str | None = None
    captured_at: str | None = None
    caption: str | None = None
    # Why the walk refused this path without reading it (a link loop, a FIFO, a name
    # that is not UTF-8, …): it is recorded as the path's error. None for a file to read.
    refused: str | None = None


@dataclass(frozen=True)
class Detection:
    """A face found in an image, in full-resolution pixel coordinates."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: np.ndarray  # (5, 2): right eye, left eye, nose, mouth right, mouth left
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


@dataclass
class FaceRecord:
    """A detected, aligned and embedded face, ready to store."""

    detection: Detection
    embedding: np.ndarray  # (dim,) float32, unit length
    quality: float
    thumbnail: bytes  # JPEG of the aligned crop


@dataclass
class ImageResult:
    """What the pipeline made of one file: faces, or the reason it failed."""

    item: SourceItem
    sha256: str
    size_bytes: int
    width: int = 0
    height: int = 0
    faces: list[FaceRecord] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


# What a search result is, said at every front door (API, web pages, CLI).
LEAD_NOTICE = "Matches are leads for a person to check, never an identification."


@dataclass(frozen=True)
class Hit:
    """One search result: a lead for a person to check, never an identification."""

    rank: int
    score: float
    face_id: int
    image_id: int
    collection: str
    path: str
    source_url: str | None
    captured_at: str | None
    box: tuple[float, float, float, float]
    thumbnail: bytes
    # From the model's calibration: the share of pairs of different people that
    # score this high, and its plain band ("strong lead", "possible lead", "weak",
    # "unlikely"). None where the model has no calibration.
    estimated_fmr: float | None = None
    band: str | None = None
    # The gallery size at which the band's meaning was fitted ("strong lead": top-1
    # precision of 99% among that many faces); in a larger gallery it is weaker evidence.
    band_gallery_size: int | None = None
    # The stored face's quality, 0..1 (pipeline/quality.py).
    quality: float | None = None
    # A face of a video: its track and moment (store/videos.py Moment); None for a photo.
    video: dict[str, int] | None = None
