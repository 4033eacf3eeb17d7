"""Exact inner-product search in RAM (FAISS IndexFlatIP): the reference every other
index is measured against, and a back end of its own (`FACESEARCH_INDEX__BACKEND=flat`)
for a small archive: nothing on disk, filled from the catalog when it opens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .agreement import membership_problems
from .base import CatalogFed, CatalogSource, Marks, ReadWriteLock, Writer

if TYPE_CHECKING:
    from .registry import IndexRequest


class FlatIndex(CatalogFed):
    def __init__(self, dim: int, model: str = "", model_version: str = "") -> None:
        self.dim = dim
        self.model, self.model_version = model, model_version
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._collections: dict[int, set[int]] = {}
        self._marks = Marks()
        self._rw = ReadWriteLock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, collection_ids: np.ndarray | None = None
    ) -> None:
        if not len(ids):
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        with self._rw.write():
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            groups = np.zeros(len(ids), np.int64) if collection_ids is None else collection_ids
            for face, collection in zip(ids.tolist(), np.asarray(groups).tolist(), strict=True):
                self._collections.setdefault(int(collection), set()).add(face)

    def remove(self, ids: np.ndarray) -> None:
        self._remove(np.ascontiguousarray(ids, dtype=np.int64))

    def _remove(self, ids: np.ndarray) -> int:
        with self._rw.write():
            removed = int(self._index.remove_ids(ids))
            gone = set(ids.tolist())
            for faces in self._collections.values():
                faces -= gone
            return removed

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters(sel=selector)
        with self._rw.read():
            k = min(k, len(self))
            if k < 1:
                rows = len(queries)
                return np.zeros((rows, 0), np.float32), np.zeros((rows, 0), np.int64)
            return self._index.search(queries, k, params=params)

    def search_collections(
        self, queries: np.ndarray, k: int, collection_ids: list[int], refine: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact: `refine` does not apply."""
        with self._rw.read():
            allowed = self._ids_in(collection_ids)
        return self.search(queries, k, allowed)

    def _ids_in(self, collection_ids: list[int]) -> np.ndarray:
        faces = [self._collections.get(int(c), set()) for c in collection_ids]
        return np.fromiter(set().union(*faces), dtype=np.int64)

    def count(self, collection_ids: list[int] | None = None) -> int:
        if collection_ids is None:
            return len(self)
        with self._rw.read():
            return len(self._ids_in(collection_ids))

    # the hooks of CatalogFed's sync and rebuild

    def _behind(self, top: Marks) -> bool:
        m = self._marks
        return top.face_watermark > m.face_watermark or top.deletion_seq > m.deletion_seq

    @contextmanager
    def _syncing(self, catalog: CatalogSource) -> Iterator[Marks]:
        yield self._marks

    def _write_faces(self, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray) -> None:
        self.add(ids, vectors, collections)

    def _write_deletions(self, ids: np.ndarray) -> int:
        return self._remove(np.ascontiguousarray(ids, dtype=np.int64))

    def _commit_marks(self, marks: Marks) -> None:
        self._marks = marks

    @contextmanager
    def _new_generation(self, marks: Marks) -> Iterator[Writer]:
        with self._rw.write():
            self._index.reset()
            self._collections = {}
            self._marks = marks
        yield self.add

    # maintenance

    def verify(self, catalog: CatalogSource) -> dict:
        with self._rw.read():
            live = np.sort(faiss.vector_to_array(self._index.id_map).astype(np.int64))
        problems, expected = membership_problems(catalog, live, self.model, self.model_version)
        return {
            "ok": not problems, "problems": problems, "faces_in_catalog": len(expected),
            "faces_in_index": len(live), "tombstones": 0, "vectors_checked": 0,
        }  # fmt: skip

    def compact(self, retrain: bool = False) -> dict:
        return {"faces": len(self), "removed": 0, "seconds": 0.0}

    def info(self) -> dict:
        return {
            "backend": "flat", "model": self.model, "model_version": self.model_version,
            "faces": len(self), "kind": "Flat", "face_watermark": self._marks.face_watermark,
            "deletion_seq": self._marks.deletion_seq, "ram_bytes": len(self) * self.dim * 4,
        }  # fmt: skip

    def close(self) -> None:
        pass


def open_index(request: IndexRequest) -> FlatIndex:
    """The `flat` back end (registry.py): filled from the catalog at the first sync."""
    return FlatIndex(request.dim, request.model, request.model_version)
