"""The block-list: embeddings of erased persons, kept so they are not imported again."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..clock import now
from ..engine import Engine
from ..store.audit import AuditStore
from ..types import ImageResult
from .crypto import open_sealed, seal

BLOCKLIST_KEY = "blocklist"


class Blocklist:
    """Embeddings of erased persons, sealed with their own data key.

    Checked at ingest: a face at or above `threshold` cosine similarity to any
    entry is refused (counted and logged, never stored)."""

    def __init__(self, engine: Engine, store: AuditStore, threshold: float) -> None:
        self.engine = engine
        self.store = store
        self.threshold = threshold
        self._matrix: np.ndarray | None = None

    def _key(self) -> bytes:
        return self.engine.catalog.data_key(None, BLOCKLIST_KEY)

    def add(self, vectors: np.ndarray, organisation_id: int | None, reference: str) -> int:
        spec = self.engine.embedder_spec
        key = self._key()
        for vector in vectors:
            sealed = seal(key, np.asarray(vector, "<f4").tobytes(), BLOCKLIST_KEY.encode())
            self.store.add_blocked(organisation_id, spec.name, spec.version, sealed, reference,
                                   now())  # fmt: skip
        self._matrix = None
        return len(vectors)

    def matrix(self) -> np.ndarray:
        if self._matrix is None:
            spec = self.engine.embedder_spec
            rows = self.store.blocked(spec.name, spec.version)
            key = self._key() if rows else b""
            plain = [
                np.frombuffer(open_sealed(key, s, BLOCKLIST_KEY.encode()), "<f4") for _, s in rows
            ]
            dim = spec.embedding_dim or 128
            self._matrix = np.vstack(plain).astype(np.float32) if plain else np.zeros((0, dim))
        return self._matrix

    def screen(self, result: ImageResult) -> tuple[ImageResult, int]:
        """The image with every face matching the block-list removed, and how many were."""
        blocked = self.matrix()
        if not len(blocked) or not result.faces:
            return result, 0
        faces = np.vstack([f.embedding for f in result.faces]).astype(np.float32)
        hits = (faces @ blocked.T).max(axis=1) >= self.threshold
        if not hits.any():
            return result, 0
        kept = [f for f, hit in zip(result.faces, hits, strict=True) if not hit]
        return replace(result, faces=kept), int(hits.sum())
