"""Faces → unit-length embeddings, behind one interface for every recogniser.

A recogniser takes the image and the detections, not a ready-made crop: each
model family aligns faces its own way (SFace and other ArcFace-class ONNX models
on the 112x112 five-point template; dlib with its own shape predictor and
150x150 chips). `crops` and `embed` are exposed separately so an evaluation can
embed a crop and its mirror image without aligning twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..models.registry import ModelSpec
from ..models.session import ModelSession
from ..types import Detection
from .align import align

BATCH = 32


class FaceEmbedder(Protocol):
    spec: ModelSpec
    flip: bool

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        """The aligned input of each face, as the model expects it."""
        ...

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per crop."""
        ...


def embed_faces(
    embedder: FaceEmbedder, image: np.ndarray, detections: Sequence[Detection]
) -> np.ndarray:
    """One unit embedding per detection; with `flip`, the mean of the face and its mirror."""
    return embed_crops(embedder, embedder.crops(image, detections))


def embed_crops(embedder: FaceEmbedder, crops: list[np.ndarray]) -> np.ndarray:
    """One unit embedding per crop (of any number of images: one batch is fastest)."""
    vectors = embedder.embed(crops)
    if embedder.flip and crops:
        vectors = normalise(vectors + embedder.embed([mirror(c) for c in crops]))
    return vectors


def mirror(crop: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop[:, ::-1])


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder:
    """An ArcFace-class ONNX recogniser (SFace by default) on template crops, prepared as
    its registry entry's input layout says."""

    def __init__(self, session: ModelSession, spec: ModelSpec, flip: bool = False) -> None:
        self.session = session
        self.spec = spec
        self.flip = flip

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim or 0

    def crops(self, image: np.ndarray, detections: Sequence[Detection]) -> list[np.ndarray]:
        size = self.spec.layout.crop_size
        return [align(image, d.landmarks, size) for d in detections]

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per BGR template crop."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = []
        for start in range(0, len(crops), BATCH):
            rows.append(self.session.run(self.tensor(crops[start : start + BATCH])))
        vectors = np.concatenate([r.reshape(len(r), -1) for r in rows]).astype(np.float32)
        return normalise(vectors)

    def tensor(self, crops: list[np.ndarray]) -> np.ndarray:
        """BGR crops → the NCHW float32 batch the network was trained on."""
        layout = self.spec.layout
        chunk = np.stack(crops)
        if layout.colour == "RGB":
            chunk = chunk[:, :, :, ::-1]
        batch = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), np.float32)
        if layout.mean or layout.scale != 1.0:
            batch = (batch - np.float32(layout.mean)) * np.float32(layout.scale)
        return batch
