"""Aligned crops → unit-length embeddings."""

from __future__ import annotations

import numpy as np

from ..models.registry import ModelSpec
from ..models.session import ModelSession

BATCH = 32


class Embedder:
    def __init__(self, session: ModelSession, spec: ModelSpec) -> None:
        self.session = session
        self.spec = spec

    @property
    def dim(self) -> int:
        return self.spec.embedding_dim or 0

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per 112x112 BGR crop."""
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = []
        for start in range(0, len(crops), BATCH):
            chunk = np.stack(crops[start : start + BATCH])
            # SFace was trained on RGB in 0..255, channels first.
            batch = np.ascontiguousarray(chunk[:, :, :, ::-1].transpose(0, 3, 1, 2), np.float32)
            rows.append(self.session.run(batch).reshape(len(chunk), -1))
        vectors = np.concatenate(rows).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
