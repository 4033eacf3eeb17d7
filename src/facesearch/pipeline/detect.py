"""Pixels → faces: YuNet boxes, five landmarks and a confidence per face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..config import DetectSettings
from ..models import session as _quiet_opencv  # noqa: F401  (silences OpenCV's load warnings)
from ..types import Detection


class Detector:
    """YuNet through OpenCV's FaceDetectorYN, which owns the model's decoding and NMS."""

    def __init__(self, model_path: Path, settings: DetectSettings) -> None:
        self.settings = settings
        self._yunet = cv2.FaceDetectorYN.create(
            str(model_path),
            "",
            (320, 320),
            settings.score_threshold,
            settings.nms_threshold,
            settings.top_k,
        )

    def detect(self, image: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """Faces in a BGR image, best score first, in its own pixel coordinates.

        Detection runs on a copy no larger than `max_side` (the setting's unless
        given: video frames use their own); big photos gain nothing from more
        pixels at this stage, and crops come from the original.
        """
        height, width = image.shape[:2]
        scale = min(1.0, (max_side or self.settings.max_side) / max(height, width))
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self._yunet.setInputSize((small.shape[1], small.shape[0]))
        _, rows = self._yunet.detect(small)
        if rows is None:
            return []
        found = []
        for row in rows:
            x, y, w, h = (float(v) / scale for v in row[:4])
            if min(w, h) < self.settings.min_face_px:
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            found.append(Detection((x, y, w, h), landmarks, float(row[14])))
        found.sort(key=lambda d: d.score, reverse=True)
        return found
