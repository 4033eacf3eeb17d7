"""The interface every vector index back end implements, and the loop they share.

`CatalogBackedIndex` is what the engine holds: persistent.py (embedded, the default),
milvus.py and flat.py implement it, and registry.py opens the one the settings name.
`CatalogFed` is the shared half of every back end: it keeps the index in step with
the catalog, the source of truth (faces above the watermark, deletions past the
sequence number), and rebuilds it from the catalog alone; a back end supplies only
how to write a chunk of faces, a list of deletions and its marks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

CHUNK = 65_536  # faces read from the catalog at a time


class CatalogSource(Protocol):
    """What an index reads from the catalog (store/catalog.py implements it)."""

    def index_marks(self) -> tuple[int, int]: ...

    def embeddings_between(
        self, model: str, model_version: str, after_id: int, upto_id: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def collection_ids_of(self, ids: np.ndarray) -> np.ndarray: ...

    def deletions_between(self, after_seq: int, upto_seq: int) -> np.ndarray: ...

    def model_face_ids(self, model: str, model_version: str) -> np.ndarray: ...

    def deleted_face_ids(self) -> np.ndarray: ...

    def embeddings_of(self, ids: np.ndarray) -> dict[int, np.ndarray]: ...


@dataclass
class SyncReport:
    added: int = 0
    deleted: int = 0
    trained: bool = False


@dataclass(frozen=True)
class Marks:
    """How far an index has followed the catalog."""

    face_watermark: int = 0  # highest catalog face id copied
    deletion_seq: int = 0  # highest catalog deletion-log sequence applied


class VectorIndex(Protocol):
    dim: int

    def __len__(self) -> int: ...

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, collection_ids: np.ndarray | None = None
    ) -> None:
        """Add unit-length float32 vectors under int64 ids (in collection 0 unless given)."""
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


@runtime_checkable
class CatalogBackedIndex(VectorIndex, Protocol):
    """A persistent index that the catalog, the source of truth, can always repair.

    Searches may run in many threads at once, and alongside `sync`."""

    def search_collections(
        self, queries: np.ndarray, k: int, collection_ids: list[int], refine: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among the faces of these collections only, without being handed
        their face ids: the index knows each face's collection. `refine`: candidates
        re-ranked exactly per result, where the back end re-ranks (else its setting)."""
        ...

    def sync(self, catalog: CatalogSource, wait: bool = True) -> SyncReport:
        """Catch up with faces added to and deleted from the catalog since last time.
        `wait` False (a search): do nothing while another process writes the index; that
        writer (an ingest) is catching it up, and a search must not queue behind it."""
        ...

    def verify(self, catalog: CatalogSource) -> dict:
        """Check that the index holds exactly the catalog's faces and no deleted one."""
        ...

    def warm(self) -> int:
        """Build now what the first searches would otherwise wait for; how many parts."""
        ...

    def rebuild(self, catalog: CatalogSource) -> dict:
        """Build the index again from the catalog alone."""
        ...

    def compact(self, retrain: bool = False) -> dict:
        """Drop deleted faces from storage."""
        ...

    def info(self) -> dict: ...

    def close(self) -> None: ...


Writer = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def feed(
    catalog: CatalogSource, model: str, model_version: str, after_id: int, upto_id: int,
    write: Writer, chunk: int = CHUNK,
) -> int:  # fmt: skip
    """Hand the catalog's faces of the model with after_id < id <= upto_id to `write`
    (ids, vectors, collection ids) a chunk at a time, in id order; how many."""
    count = 0
    while after_id < upto_id:
        ids, vectors = catalog.embeddings_between(model, model_version, after_id, upto_id, chunk)
        if not len(ids):
            break
        write(ids, vectors, catalog.collection_ids_of(ids))
        after_id, count = int(ids[-1]), count + len(ids)
    return count


class CatalogFed:
    """The sync and rebuild loop of every catalog-backed index, written once.

    A back end implements the hooks below; `sync` and `rebuild` call them in the
    order that keeps the index safe to search and to kill at any point: faces first,
    then the deletions logged by then (a face erased while it was being copied is
    dropped again), then the marks that say how far it got.
    """

    model: str
    model_version: str
    chunk: int = CHUNK

    # hooks

    def _behind(self, top: Marks) -> bool:
        """Whether there is anything to do for a catalog at `top` (cheap, no lock)."""
        raise NotImplementedError

    def _syncing(self, catalog: CatalogSource) -> AbstractContextManager[Marks]:
        """The back end's write section; yields the marks to continue from."""
        raise NotImplementedError

    def _write_faces(self, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray) -> None:
        raise NotImplementedError

    def _write_deletions(self, ids: np.ndarray) -> int:
        """Make these faces unsearchable; how many were searchable."""
        raise NotImplementedError

    def _deletions_after(self, marks: Marks) -> int:
        return marks.deletion_seq

    def _commit_marks(self, marks: Marks) -> None:
        raise NotImplementedError

    def _after_sync(self, report: SyncReport) -> None:
        """Maintenance once caught up (training an approximate index, a barrier)."""

    def _new_generation(self, marks: Marks) -> AbstractContextManager[Writer]:
        """An empty index beside the one in use, made the one in use on leaving."""
        raise NotImplementedError

    def _after_rebuild(self, catalog: CatalogSource) -> int:
        """What changed in the catalog while rebuilding, applied: faces added - deleted."""
        return 0

    # the loop

    def _busy(self) -> bool:
        """Whether another process is writing the index now."""
        return False

    def warm(self) -> int:
        return 0

    def sync(self, catalog: CatalogSource, wait: bool = True) -> SyncReport:
        report = SyncReport()
        if not wait and self._busy():
            return report
        if not self._behind(Marks(*catalog.index_marks())):
            return report
        with self._syncing(catalog) as marks:
            top_id, top_seq = catalog.index_marks()
            report.added = feed(
                catalog, self.model, self.model_version, marks.face_watermark, top_id,
                self._write_faces, self.chunk,
            )  # fmt: skip
            top_seq = max(top_seq, catalog.index_marks()[1])
            dead = catalog.deletions_between(self._deletions_after(marks), top_seq)
            report.deleted = self._write_deletions(dead) if len(dead) else 0
            self._commit_marks(
                Marks(max(top_id, marks.face_watermark), max(top_seq, marks.deletion_seq))
            )
            self._after_sync(report)
        return report

    def rebuild(self, catalog: CatalogSource) -> dict[str, int | float | str]:
        """Discard the index and build it again from the catalog alone."""
        started = time.perf_counter()
        top = Marks(*catalog.index_marks())
        with self._new_generation(top) as write:
            count = feed(
                catalog, self.model, self.model_version, 0, top.face_watermark, write, self.chunk
            )
        count += self._after_rebuild(catalog)
        return {"faces": count, "seconds": round(time.perf_counter() - started, 2)}


class ReadWriteLock:
    """Many readers (searches) at once, or one writer (a sync); a waiting writer
    holds back new readers, so a stream of searches cannot starve an ingest."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting = 0
        self._owner: int | None = None

    @contextmanager
    def read(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:  # a writer reading its own state
            yield
            return
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:  # re-entered by the same writer
            yield
            return
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer, self._owner = True, me
        try:
            yield
        finally:
            with self._cond:
                self._writer, self._owner = False, None
                self._cond.notify_all()
