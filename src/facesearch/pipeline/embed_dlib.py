"""dlib's ResNet recogniser: its own 5-point shape predictor, 150x150 chips, 128-d.

dlib places the shape predictor's landmarks inside a face box; the box here is
YuNet's, so detection stays the same for every recogniser.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelUnavailable
from ..models.registry import ModelSpec
from ..types import Detection
from .embed import normalise

CHIP_PX = 150
# dlib's default context around the face in a chip, as in compute_face_descriptor.
CHIP_PADDING = 0.25


def _dlib():
    try:
        import dlib
    except ImportError:
        raise ModelUnavailable(
            "the dlib recogniser needs dlib: pip install 'facesearch[dlib]' (dlib-bin)"
        ) from None
    return dlib


class DlibEmbedder:
    def __init__(
        self, shape_path: Path, model_path: Path, spec: ModelSpec, flip: bool = False
    ) -> None:
        dlib = _dlib()
        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(shape_path))
        self._net = dlib.face_recognition_model_v1(str(model_path))
        self.spec = spec
        self.flip = flip

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim or 0

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        if not detections:
            return []
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        shapes = self._dlib.full_object_detections()
        for d in detections:
            x, y, w, h = d.box
            box = self._dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
            shapes.append(self._shape(rgb, box))
        return list(self._dlib.get_face_chips(rgb, shapes, CHIP_PX, CHIP_PADDING))

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """Unit embeddings of 150x150 RGB chips, compared by cosine like every model here."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._net.compute_face_descriptor([np.ascontiguousarray(c) for c in crops])
        return normalise(np.array([np.asarray(v) for v in vectors], dtype=np.float32))
