"""The interface every vector index back end implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add unit-length float32 vectors under int64 ids."""
        ...

    def remove(self, ids: np.ndarray) -> None:
        """Remove ids; they are never returned by a search afterwards."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product top-k: (scores, ids), each (len(queries), k), best first.

        Missing results have id -1. `allowed`, when given, restricts the
        search to those ids.
        """
        ...
