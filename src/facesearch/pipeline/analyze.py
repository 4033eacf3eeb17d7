"""One image through every stage: decode → detect → align → embed.

This is what a worker process runs; it touches no database.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from ..config import Settings
from ..errors import FacesearchError, ImageRejected
from ..models.cache import ModelCache
from ..models.registry import ModelSpec
from ..models.registry import get as get_model
from ..models.session import open_session
from ..types import FaceRecord, ImageResult, SourceItem
from .align import align
from .decode import decode
from .detect import Detector
from .embed import Embedder, FaceEmbedder, embed_faces
from .quality import quality


class Analyzer:
    def __init__(self, detector: Detector, embedder: FaceEmbedder, settings: Settings) -> None:
        self.detector = detector
        self.embedder = embedder
        self.settings = settings

    @classmethod
    def load(cls, settings: Settings) -> Analyzer:
        """Models from the verified cache (fetched first if missing)."""
        cache = ModelCache(settings.models_dir)
        detector_spec = get_model(settings.detector)
        embedder_spec = get_model(settings.embedder)
        detector = Detector(cache.ensure(detector_spec), settings.detect)
        embedder = load_embedder(cache, embedder_spec, settings.flip_embeddings)
        return cls(detector, embedder, settings)

    def analyze(self, item: SourceItem, sha256: str, data: bytes) -> ImageResult:
        result = ImageResult(item=item, sha256=sha256, size_bytes=len(data))
        clock = time.perf_counter()
        try:
            image = decode(data, self.settings.decode)
        except ImageRejected as exc:
            result.error = str(exc)
            return result
        result.timings["decode"] = time.perf_counter() - clock
        result.width, result.height = image.width, image.height
        if image.taken_at and not item.captured_at:
            result.item = SourceItem(item.path, item.source_url, image.taken_at, item.caption)
        result.faces = self.faces(image.pixels, result.timings)
        return result

    def faces(
        self, pixels: np.ndarray, timings: dict[str, float] | None = None
    ) -> list[FaceRecord]:
        """Every face in a BGR image, detected, aligned, scored and embedded."""
        timings = timings if timings is not None else {}
        clock = time.perf_counter()
        detections = self.detector.detect(pixels)
        timings["detect"] = time.perf_counter() - clock
        clock = time.perf_counter()
        crops = [align(pixels, d.landmarks) for d in detections]
        timings["align"] = time.perf_counter() - clock
        clock = time.perf_counter()
        embeddings = embed_faces(self.embedder, pixels, detections)
        timings["embed"] = time.perf_counter() - clock
        size = self.settings.thumbnail_px
        out = []
        for detection, crop, embedding in zip(detections, crops, embeddings, strict=True):
            small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            _, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
            out.append(FaceRecord(detection, embedding, quality(detection, crop), jpeg.tobytes()))
        return out


def load_embedder(cache: ModelCache, spec: ModelSpec, flip: bool = False) -> FaceEmbedder:
    """The recogniser of `spec` with its files from the verified cache."""
    if spec.task != "embed":
        raise FacesearchError(f"{spec.name} is a {spec.task} model, not a recogniser")
    if spec.family == "dlib150":
        from .embed_dlib import DlibEmbedder

        (shape,) = (get_model(name) for name in spec.requires)
        return DlibEmbedder(cache.ensure(shape), cache.ensure(spec), spec, flip)
    return Embedder(open_session(cache.ensure(spec)), spec, flip)
