"""The interface every vector index back end implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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


class CatalogBackedIndex(VectorIndex, Protocol):
    """A persistent index that the catalog, the source of truth, can always repair."""

    def sync(self, catalog: object) -> object:
        """Catch up with faces added to and deleted from the catalog since last time."""
        ...

    def verify(self, catalog: object) -> dict:
        """Check that the index holds exactly the catalog's faces and no deleted one."""
        ...

    def rebuild(self, catalog: object) -> dict:
        """Build the index again from the catalog alone."""
        ...

    def compact(self, retrain: bool = False) -> dict:
        """Drop deleted faces from storage."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CollectionFilteredIndex(Protocol):
    """An index that knows each face's collection and filters by it itself (Milvus),
    instead of being handed every allowed face id."""

    def search_collections(
        self, queries: np.ndarray, k: int, collection_ids: list[int]
    ) -> tuple[np.ndarray, np.ndarray]: ...
