"""The persistent vector index: one folder per embedding model, kept in step with the catalog.

Files (every name but `manifest.json` and `lock` carries a generation number):

- `vectors-G.f32`  full float32 vectors, row = slot, append-only, memory-mapped
- `ids-G.i64`      face id of each slot, append-only; ids only grow, so a face id
                   finds its slot by binary search
- `tombstones-G.i64` face ids deleted since the generation began, append-only
- `collections-G.i64` the collection id of each slot, append-only: a collection
                   filter finds its slots here, never by asking the catalog
- `ivf-G-N.faiss`  the approximate index over the first N slots (absent while the
                   index is small enough for exact search)
- `manifest.json`  the commit point: how many slots and tombstones are valid, the
                   highest face id and deletion the index has seen, which files
                   hold the generation; replaced atomically

Appends go to the end of a file and are fsynced before the manifest that counts
them is replaced, so a process killed at any point leaves a torn tail that the
next open cuts off. Compaction and rebuild write a new generation beside the old
one and switch the manifest; the old files go only after the switch. The catalog
is the source of truth: on every open and before every search the index catches
up with faces added (ids above its watermark) and faces deleted (the catalog's
deletion log past its sequence number; base.py's `CatalogFed` is that loop). Every
change is made under an exclusive lock, so several processes can share one index
folder; inside a process, searches share a read lock and a change takes it alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from cryptography.exceptions import InvalidTag

from .. import faults
from ..config import IndexSettings
from ..diskfull import writing
from ..errors import FacesearchError
from .agreement import membership_problems
from .base import CatalogFed, CatalogSource, Marks, ReadWriteLock, SyncReport, Writer
from .files import (
    append,
    atomic_write,
    fsync_dir,
    fsync_file,
    locked,
    mapped,
    truncate,
)
from .ivf import IVFCandidates, auto_factory
from .sealed import REPAIR, GcmBlocks, IndexDamaged, PlainRows, vector_layout

if TYPE_CHECKING:
    from .registry import IndexRequest

# Faces added since the approximate index was last written: above this many,
# closing the index writes it again so the next open has less to re-encode.
CHECKPOINT_FACES = 50_000
CHUNK = 65_536
# A collection filter that allows at least this share of the index searches the shared
# inverted lists through a bitmap rather than each collection's own lists.
SHARED_LISTS_SHARE = 0.5
FORMAT = 1
__all__ = ["CatalogSource", "PersistentIndex", "SyncReport"]


@dataclass(frozen=True)
class Manifest:
    model: str
    model_version: str
    dim: int
    generation: int = 0
    count: int = 0
    tombstones: int = 0
    face_watermark: int = 0
    deletion_seq: int = 0
    ivf_file: str | None = None
    ivf_factory: str | None = None
    ivf_count: int = 0
    format: int = FORMAT
    sealed: bool = False  # vectors and IVF files encrypted with the index's key
    # 1: a float32 row per slot (AES-CTR when sealed, before format 2); 2: AES-GCM blocks
    vectors_format: int = 1
    # A collection id per slot in `collections-G.i64`; an index written before it had one
    # gets it from the catalog at its next sync.
    with_collections: bool = False

    @property
    def vectors_file(self) -> str:
        return f"vectors-{self.generation}.f32"

    @property
    def ids_file(self) -> str:
        return f"ids-{self.generation}.i64"

    @property
    def tombstones_file(self) -> str:
        return f"tombstones-{self.generation}.i64"

    @property
    def collections_file(self) -> str:
        return f"collections-{self.generation}.i64"

    def appended(self) -> tuple[str, ...]:
        names = (self.vectors_file, self.ids_file, self.tombstones_file)
        return names + ((self.collections_file,) if self.with_collections else ())

    def files(self) -> set[str]:
        names = set(self.appended())
        return names | ({self.ivf_file} if self.ivf_file else set())

    def committed_sizes(self) -> dict[str, int | None]:
        """Each file this manifest commits and its committed size (None: the whole file);
        bytes past it belong to a write not yet committed."""
        # The rows' layout depends on whether they are sealed, not on the key itself.
        layout = vector_layout(self.dim, b"\0" * 32 if self.sealed else None, self.vectors_format)
        sizes: dict[str, int | None] = {
            self.vectors_file: layout.size(self.count),
            self.ids_file: self.count * 8,
            self.tombstones_file: self.tombstones * 8,
        }
        if self.with_collections:
            sizes[self.collections_file] = self.count * 8
        if self.ivf_file:
            sizes[self.ivf_file] = None
        return sizes


class PersistentIndex(CatalogFed):
    """Exact search over the memory-mapped vectors while small; IVF candidates
    re-ranked exactly against them once the index holds `approx_min_faces`."""

    def __init__(
        self, folder: Path, model: str, model_version: str, dim: int, settings: IndexSettings,
        key: bytes | None = None,
    ) -> None:  # fmt: skip
        """`key` (32 bytes) encrypts the vectors and IVF files at rest; None keeps them plain."""
        self.folder = folder
        self.model, self.model_version = model, model_version
        self._row_key = _derive(key, b"rows") if key else None
        self._ivf_key = _derive(key, b"ivf") if key else None
        self.dim = dim
        self.settings = settings
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = folder / "lock"
        layout = GcmBlocks.format if key else PlainRows.format
        self._empty = Manifest(model, model_version, dim, sealed=key is not None,
                               vectors_format=layout, with_collections=True)  # fmt: skip
        self.m = self._empty
        self._stamp: bytes | None = None
        self._loaded = False
        self._ivf: IVFCandidates | None = None
        self._dead: np.ndarray = np.zeros(0, dtype=np.int64)  # sorted dead slots
        self._bits: np.ndarray | None = None
        self._groups: dict[int, list[np.ndarray]] = {}  # collection id -> its slots, in parts
        self._grouped = 0  # slots grouped so far
        self._joined: dict[int, np.ndarray] = {}  # the parts joined, until more are grouped
        self._group_lock = threading.Lock()  # grouping happens under the shared read lock
        # A large collection's own inverted lists: the IVF's quantizer and codebooks over
        # only its faces, so a search limited to it scans its codes and no others.
        self._own: dict[int, IVFCandidates] = {}
        self._own_lock = threading.Lock()
        self._bitmaps: dict[tuple[frozenset[int], int, int], tuple[np.ndarray, int]] = {}
        self._rw = ReadWriteLock()
        with self._rw.write(), locked(self._lock, exclusive=True):
            try:
                self._load(repair=True)
            except IndexDamaged:
                # Every use raises it again until `rebuild` writes new files.
                self.m, self._stamp, self._loaded = self._read_manifest(), None, False
                return
            if self.m.sealed and self.m.vectors_format < GcmBlocks.format:
                self._rewrite(retrain=False)  # AES-CTR rows of an older version: migrate

    # state on disk

    def _layout(self, m: Manifest):
        return vector_layout(m.dim, self._row_key, m.vectors_format)

    def _manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    def _read_manifest(self) -> Manifest:
        path = self._manifest_path()
        if not path.exists():
            return self._empty
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise FacesearchError(f"{path} has format {data.get('format')}; rebuild the index")
        m = Manifest(**data)
        if (m.model, m.model_version, m.dim) != (
            self._empty.model, self._empty.model_version, self._empty.dim,
        ):  # fmt: skip
            raise FacesearchError(f"{path} belongs to {m.model} {m.model_version}")
        return m

    def _commit(self, m: Manifest) -> None:
        atomic_write(self._manifest_path(), _encoded(m))
        self.m = m
        self._stamp = self._manifest_stamp()

    def _manifest_stamp(self) -> bytes | None:
        # The manifest is a few hundred bytes: comparing it whole is cheaper than a
        # wrong guess from inode numbers and timestamps, which the file system reuses.
        try:
            return self._manifest_path().read_bytes()
        except FileNotFoundError:
            return None

    def _path(self, name: str) -> Path:
        return self.folder / name

    def _load(self, repair: bool) -> None:
        """(Re)load the committed state; under the exclusive lock."""
        m = self._read_manifest()
        if m.sealed != self._empty.sealed:
            if not repair:
                raise FacesearchError(f"{self.folder} is being rewritten with another key setting")
            # Written with the other setting (before encryption at rest, say): start a
            # new, empty generation; the next sync refills it from the catalog and the
            # old files go as strays below.
            m = replace(self._empty, generation=m.generation + 1)
            self._commit(m)
        if repair:
            for name in m.appended():
                self._path(name).touch()
            truncate(self._path(m.vectors_file), self._layout(m).size(m.count))
            truncate(self._path(m.ids_file), m.count * 8)
            truncate(self._path(m.tombstones_file), m.tombstones * 8)
            if m.with_collections:
                truncate(self._path(m.collections_file), m.count * 8)
            keep = m.files() | {"manifest.json", "lock"}
            for stray in self.folder.iterdir():
                if stray.name not in keep:
                    stray.unlink()  # torn writes and the leftovers of a switched generation
        old = self.m
        same_generation = (
            self._loaded
            and m.generation == old.generation
            and m.ivf_factory == old.ivf_factory
            and m.count >= old.count
            and (self._ivf is not None) == (m.ivf_file is not None)
        )
        if same_generation:
            self._extend(old, m)
        else:
            self.m = replace(m, count=0, tombstones=0)
            self._ivf = None
            self._dead = np.zeros(0, dtype=np.int64)
            self._groups, self._grouped, self._joined, self._own = {}, 0, {}, {}
            self._bitmaps = {}
            if m.ivf_file:
                try:
                    self._ivf = IVFCandidates.read(
                        self._path(m.ivf_file), m.ivf_factory or "", self._ivf_key
                    )
                except InvalidTag:
                    raise IndexDamaged(f"{m.ivf_file} fails authentication; {REPAIR}") from None
                self.m = replace(self.m, count=m.ivf_count)
            self._extend(self.m, m)
        self.m = m
        self._stamp = self._manifest_stamp()
        self._loaded = True

    def _extend(self, old: Manifest, new: Manifest) -> None:
        """Bring the in-memory state from `old` to `new` of the same generation."""
        self._map(new)
        if self._ivf is not None:
            for start in range(old.count, new.count, CHUNK):
                self._ivf.add(start, self._vectors[start : min(start + CHUNK, new.count)])
            self._extend_own(old.count, new.count)
        if new.tombstones > old.tombstones:
            tomb = mapped(self._path(new.tombstones_file), "<i8", new.tombstones)
            self._mark_dead(np.array(tomb[old.tombstones :]))
        self._bits = None

    def _extend_own(self, start: int, end: int) -> None:
        """Encode slots start..end into the own lists of their collections (under the
        write lock)."""
        if not self._own or end <= start:
            return
        collections = np.asarray(self._collections[start:end])
        for collection, ivf in self._own.items():
            slots = np.flatnonzero(collections == collection) + start
            if len(slots):
                ivf.index.add_with_ids(np.ascontiguousarray(self._vectors[slots]), slots)

    def _own_lists(self, collection: int, slots: np.ndarray) -> IVFCandidates:
        """The collection's own lists, encoded on first use from all its slots (`slots`,
        the dead among them too: the alive bitmap filters those)."""
        ivf = self._own.get(collection)
        if ivf is None:
            with self._own_lock:
                ivf = self._own.get(collection)
                if ivf is None:
                    assert self._ivf is not None
                    ivf = self._ivf.empty_copy()
                    for start in range(0, len(slots), CHUNK):
                        part = slots[start : start + CHUNK]
                        ivf.index.add_with_ids(np.ascontiguousarray(self._vectors[part]), part)
                    self._own[collection] = ivf  # published whole: readers never see it grow
        return ivf

    def _map(self, m: Manifest) -> None:
        self._vectors = self._layout(m).open(self._path(m.vectors_file), m.count)
        self._ids = mapped(self._path(m.ids_file), "<i8", m.count)
        self._collections = (
            mapped(self._path(m.collections_file), "<i8", m.count)
            if m.with_collections
            else np.zeros(m.count, dtype=np.int64)  # until the next sync asks the catalog
        )

    def _refresh(self, wait: bool = True) -> None:
        """Pick up what another process committed since we last looked; without `wait`,
        not while another process writes (what is loaded stays valid: files only grow
        within a generation, and a replaced one stays mapped)."""
        if self._manifest_stamp() != self._stamp:
            with self._rw.write(), locked(self._lock, exclusive=True, wait=wait) as taken:
                if taken and self._manifest_stamp() != self._stamp:
                    self._load(repair=False)

    def _busy(self) -> bool:
        with locked(self._lock, exclusive=True, wait=False) as taken:
            return not taken

    # reading

    def __len__(self) -> int:
        return self.m.count - len(self._dead)

    @property
    def approximate(self) -> bool:
        return self._ivf is not None

    def live_ids(self) -> np.ndarray:
        alive = np.ones(self.m.count, dtype=bool)
        alive[self._dead] = False
        return np.asarray(self._ids)[alive]

    def _slots_of(self, face_ids: np.ndarray) -> np.ndarray:
        face_ids = np.sort(np.asarray(face_ids, dtype=np.int64))
        if not len(self._ids) or not len(face_ids):
            return np.zeros(0, dtype=np.int64)
        slots = np.searchsorted(self._ids, face_ids)
        slots = slots[slots < len(self._ids)]
        slots = slots[self._ids[slots] == face_ids[: len(slots)]]
        return slots[np.concatenate(([True], slots[1:] != slots[:-1]))] if len(slots) else slots

    def _mark_dead(self, face_ids: np.ndarray) -> int:
        slots = self._slots_of(np.sort(face_ids))
        fresh = np.setdiff1d(slots, self._dead, assume_unique=True)
        if len(fresh):
            self._dead = np.union1d(self._dead, fresh)
            self._bits = None
        return len(fresh)

    def _alive_bits(self) -> np.ndarray | None:
        """A bitmap over slots of the live faces, or None when nothing is dead."""
        if not len(self._dead):
            return None
        if self._bits is None or len(self._bits) * 8 < self.m.count:
            alive = np.ones(self.m.count, dtype=bool)
            alive[self._dead] = False
            self._bits = np.packbits(alive, bitorder="little")
        return self._bits

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product top-k: (scores, face ids), best first; id -1 pads missing results."""
        self._refresh(wait=False)
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        with self._rw.read():
            if allowed is None:
                return self._search_slots(queries, k, None)
            slots = np.setdiff1d(self._slots_of(np.sort(allowed)), self._dead, assume_unique=True)
            return self._search_slots(queries, k, slots)

    def search_collections(
        self, queries: np.ndarray, k: int, collection_ids: list[int], refine: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among the faces of these collections, found from the slots' collection
        ids: the cost follows the collections' faces, not the whole index."""
        self._refresh(wait=False)
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        with self._rw.read():
            if not self.m.with_collections:
                raise FacesearchError("the index learns each face's collection at its next sync")
            if self._ivf is None:
                return self._exact(queries, k, self._collection_slots(collection_ids))
            groups = self._grouped_slots()
            chosen = [c for c in set(map(int, collection_ids)) if c in groups]
            if set(groups) <= set(chosen):
                return self._search_slots(queries, k, None, refine)  # every face is allowed
            share = sum(len(groups[c]) for c in chosen) / max(self.m.count, 1)
            if share >= SHARED_LISTS_SHARE:
                # Most of the index: the shared lists with a bitmap scan little in vain,
                # and one search beats one per collection.
                bits, allowed = self._bitmap_of(chosen)
                return self._search_bits(queries, k, bits, allowed, refine)
            large = [c for c in chosen if len(groups[c]) > self.settings.filter_exact_max]
            small = self._collection_slots([c for c in chosen if c not in large])
            parts = (
                [self._search_slots(queries, k, small, refine)] if len(small) or not large else []
            )
            if large:
                bits = self._alive_bits()
                pool = self._pool(k, refine)
                # The own lists hold only the chosen faces: probing `nprobe / share` of
                # them scans as many codes as an unfiltered search does, and finds the
                # true neighbours more often (all lists probed below a share of
                # nprobe / nlist).
                nprobe = math.ceil(self._nprobe() / max(share, 1e-9))
                found = [self._own_lists(c, groups[c]).scored(queries, pool, nprobe, bits)
                         for c in large]  # fmt: skip
                scores = np.concatenate([f[0] for f in found], axis=1)
                slots = np.concatenate([f[1] for f in found], axis=1)
                # The best `pool` by approximate score over all the collections: re-ranking
                # reads (and, sealed, decrypts) each candidate's full vector.
                best = np.argsort(-scores, axis=1, kind="stable")[:, :pool]
                parts.append(self._rerank(queries, k, np.take_along_axis(slots, best, 1)))
            return _merge(parts, k)

    def warm(self) -> int:
        """Encode the own lists of every collection that searches use them for, so that
        no first search waits for it (9 s for a collection of 1M faces); how many. Each
        under the read lock, as a first search would."""
        self._refresh(wait=False)
        with self._rw.read():
            if self._ivf is None or not self.m.with_collections:
                return 0
            groups = self._grouped_slots()
        limit, total = self.settings.filter_exact_max, max(self.m.count, 1)
        large = [c for c, slots in groups.items()
                 if len(slots) > limit and len(slots) / total < SHARED_LISTS_SHARE]  # fmt: skip
        for collection in large:
            with self._rw.read():
                slots = self._grouped_slots().get(collection)
                if self._ivf is not None and slots is not None:
                    self._own_lists(collection, slots)
        return len(large)

    def count(self, collection_ids: list[int] | None = None) -> int:
        """Live faces in the index, or in these collections."""
        if collection_ids is None:
            return len(self)
        with self._rw.read():
            groups = self._grouped_slots()
            chosen = {int(c) for c in collection_ids}
            total = sum(len(groups[c]) for c in chosen if c in groups)
            if len(self._dead):
                dead = np.asarray(self._collections)[self._dead]
                total -= int(np.isin(dead, list(chosen)).sum())
            return total

    def _collection_slots(self, collection_ids: list[int]) -> np.ndarray:
        """The live slots of these collections, sorted (under the read lock)."""
        groups = self._grouped_slots()
        parts = [groups[c] for c in set(map(int, collection_ids)) if c in groups]
        slots = np.sort(np.concatenate(parts)) if len(parts) > 1 else (
            parts[0] if parts else np.zeros(0, np.int64))  # fmt: skip
        if len(self._dead) and len(slots):
            slots = slots[~np.isin(slots, self._dead, assume_unique=True)]
        return slots

    def _grouped_slots(self) -> dict[int, np.ndarray]:
        """Each collection's slots; only slots added since the last call are grouped."""
        count = self.m.count
        if self._grouped < count:
            with self._group_lock:
                if self._grouped < count:
                    tail = np.asarray(self._collections[self._grouped : count])
                    order = np.argsort(tail, kind="stable")
                    values, starts = np.unique(tail[order], return_index=True)
                    for value, part in zip(values, np.split(order, starts[1:]), strict=True):
                        slots = part.astype(np.int64) + self._grouped
                        self._groups.setdefault(int(value), []).append(slots)
                    self._grouped = count
                    self._joined = {}
        joined = self._joined
        for value, parts in self._groups.items():
            if value not in joined:
                joined[value] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return joined

    def _pool(self, k: int, refine: int | None) -> int:
        """Candidates re-ranked exactly for a top-k: `refine` (else the settings') times k."""
        return max(k * (refine or self.settings.refine), k)

    def _search_slots(
        self, queries: np.ndarray, k: int, slots: np.ndarray | None, refine: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over all live slots (None) or the given live ones (under the read lock)."""
        if slots is not None:
            if self._ivf is None or len(slots) <= self.settings.filter_exact_max:
                return self._exact(queries, k, slots)
            mask = np.zeros(self.m.count, dtype=bool)
            mask[slots] = True
            bits = np.packbits(mask, bitorder="little")
            return self._search_bits(queries, k, bits, len(slots), refine)
        if self._ivf is None:
            return self._exact(queries, k, None)
        pool = self._pool(k, refine)
        candidates = self._ivf.search(queries, pool, self._nprobe(), self._alive_bits())
        return self._rerank(queries, k, candidates)

    def _search_bits(
        self, queries: np.ndarray, k: int, bits: np.ndarray, allowed: int,
        refine: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Top-k over the shared lists among the `allowed` live slots set in `bits`."""
        assert self._ivf is not None
        # A filter keeps a fraction of each probed list: probe more lists so
        # about as many allowed candidates are seen as without a filter.
        nprobe = math.ceil(self._nprobe() / max(allowed / max(len(self), 1), 1e-9))
        pool = self._pool(k, refine)
        return self._rerank(queries, k, self._ivf.search(queries, pool, nprobe, bits))

    def _bitmap_of(self, collections: list[int]) -> tuple[np.ndarray, int]:
        """A bitmap of the live slots of these collections and their number, kept for the
        next searches of the same collections until the index changes (read lock)."""
        key = (frozenset(collections), self.m.count, len(self._dead))
        found = self._bitmaps.get(key)
        if found is None:
            slots = self._collection_slots(collections)
            mask = np.zeros(self.m.count, dtype=bool)
            mask[slots] = True
            found = (np.packbits(mask, bitorder="little"), len(slots))
            # Replaced whole, so concurrent readers never see it half-changed; a few
            # sets of collections (organisations, say) are kept.
            self._bitmaps = {**dict(list(self._bitmaps.items())[-7:]), key: found}
        return found

    def _nprobe(self) -> int:
        assert self._ivf is not None
        return self.settings.nprobe or max(self._ivf.nlist // 4, 1)

    def _rerank(
        self, queries: np.ndarray, k: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row, (query, slots) in enumerate(zip(queries, candidates, strict=True)):
            slots = np.unique(slots[slots >= 0])
            if not len(slots):
                continue
            exact = self._vectors[slots] @ query
            top = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(top)] = exact[top]
            ids[row, : len(top)] = self._ids[slots[top]]
        return scores, ids

    def _exact(
        self, queries: np.ndarray, k: int, slots: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact scan of all live slots (`slots` None) or of the given ones, in blocks."""
        best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        best_slots = np.zeros((len(queries), 0), dtype=np.int64)
        for block in self._blocks(slots):
            scores = self._vectors[block] @ queries.T  # (len(block), nq)
            if slots is None and len(self._dead):
                scores[np.isin(block, self._dead)] = -np.inf
            if len(block) > k:
                part = np.argpartition(-scores, k - 1, axis=0)[:k].T  # (nq, k)
                block_scores = np.take_along_axis(scores.T, part, 1)
                block_slots = block[part]
            else:
                block_scores = scores.T
                block_slots = np.broadcast_to(block, block_scores.shape)
            merged_scores = np.concatenate([best_scores, block_scores], axis=1)
            merged_slots = np.concatenate([best_slots, block_slots], axis=1)
            top = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(merged_scores, top, 1)
            best_slots = np.take_along_axis(merged_slots, top, 1)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        found = np.isfinite(best_scores)
        width = best_scores.shape[1]
        scores[:, :width] = np.where(found, best_scores, -np.inf)
        if width:
            ids[:, :width] = np.where(found, np.asarray(self._ids)[best_slots], -1)
        return scores, ids

    def _blocks(self, slots: np.ndarray | None) -> Iterator[np.ndarray]:
        if slots is None:
            for start in range(0, self.m.count, CHUNK * 4):
                yield np.arange(start, min(start + CHUNK * 4, self.m.count))
        else:
            for start in range(0, len(slots), CHUNK * 4):
                yield slots[start : start + CHUNK * 4]

    # writing

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Under the exclusive lock; a change that fails half way (a full disk) leaves
        memory ahead of the manifest, so the next use reloads from the files."""
        with self._rw.write(), locked(self._lock, exclusive=True):
            try:
                self._load(repair=False)
                yield
            except BaseException:
                self._loaded = False
                raise

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, collection_ids: np.ndarray | None = None
    ) -> None:
        """Append faces whose ids are all above every id already in the index."""
        with self._changing():
            self._commit(self._append(self.m, ids, vectors, collection_ids))

    def _append(
        self, m: Manifest, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray | None
    ) -> Manifest:
        ids = np.ascontiguousarray(ids, dtype="<i8")
        if not len(ids):
            return m
        if collections is None:
            collections = np.zeros(len(ids), dtype="<i8")
        vectors = np.ascontiguousarray(vectors, dtype="<f4").reshape(len(ids), self.dim)
        last = int(self._ids[-1]) if m.count else 0
        if ids[0] <= max(last, 0) or np.any(np.diff(ids) <= 0):
            raise FacesearchError("face ids must be added in increasing order, each only once")
        self._layout(m).append(self._path(m.vectors_file), m.count, vectors)
        faults.point("index_write", f"{len(ids)} vectors appended, not their ids")
        append(self._path(m.ids_file), ids.tobytes(), m.count * 8)
        if m.with_collections:
            collections = np.ascontiguousarray(collections, dtype="<i8")
            append(self._path(m.collections_file), collections.tobytes(), m.count * 8)
        new = replace(
            m, count=m.count + len(ids), face_watermark=max(m.face_watermark, int(ids[-1]))
        )
        self._map(new)
        if self._ivf is not None:
            self._ivf.add(m.count, vectors)
            self._extend_own(m.count, new.count)
        self._bits = None
        return new

    def remove(self, ids: np.ndarray) -> None:
        """Tombstone faces: no search returns them from now on, in any process."""
        with self._changing():
            self._commit(self._tombstone(self.m, np.asarray(ids, dtype=np.int64)))

    def _tombstone(self, m: Manifest, ids: np.ndarray) -> Manifest:
        slots = np.setdiff1d(self._slots_of(np.sort(ids)), self._dead, assume_unique=True)
        if not len(slots):
            return m
        face_ids = np.ascontiguousarray(self._ids[slots], dtype="<i8")
        append(self._path(m.tombstones_file), face_ids.tobytes(), m.tombstones * 8)
        self._mark_dead(face_ids)
        return replace(m, tombstones=m.tombstones + len(face_ids))

    # the hooks of CatalogFed's sync and rebuild

    def _behind(self, top: Marks) -> bool:
        self._refresh()
        m = self.m
        return (
            top.face_watermark > m.face_watermark
            or top.deletion_seq > m.deletion_seq
            or not m.with_collections
            or self._wants_ivf()
        )

    @contextmanager
    def _syncing(self, catalog: CatalogSource) -> Iterator[Marks]:
        with self._changing():
            if not self.m.with_collections:
                self._fill_collections(catalog)
            yield Marks(self.m.face_watermark, self.m.deletion_seq)

    def _fill_collections(self, catalog: CatalogSource) -> None:
        """Write the collection of every slot, asked of the catalog (an index written
        before slots had one); a face deleted meanwhile gets 0 (it is tombstoned)."""
        m = replace(self.m, with_collections=True)
        path = self._path(m.collections_file)
        path.write_bytes(b"")
        for start in range(0, m.count, CHUNK):
            ids = np.asarray(self._ids[start : start + CHUNK])
            append(path, catalog.collection_ids_of(ids).astype("<i8").tobytes(), start * 8)
        self._commit(m)
        self._map(m)
        self._groups, self._grouped, self._joined, self._own = {}, 0, {}, {}
        self._bitmaps = {}

    def _write_faces(self, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray) -> None:
        m = self._append(self.m, ids, vectors, collections)
        self._commit(replace(m, face_watermark=int(ids[-1])))

    def _write_deletions(self, ids: np.ndarray) -> int:
        before = len(self._dead)
        self.m = self._tombstone(self.m, ids)  # committed with the marks
        return len(self._dead) - before

    def _commit_marks(self, marks: Marks) -> None:
        m = replace(self.m, face_watermark=marks.face_watermark, deletion_seq=marks.deletion_seq)
        # Threads that waited for another's sync find nothing left to write.
        if _encoded(m) != self._stamp:
            self._commit(m)

    def _after_sync(self, report: SyncReport) -> None:
        if self._wants_ivf():
            self._train()
            report.trained = True

    @contextmanager
    def _new_generation(self, marks: Marks) -> Iterator[Writer]:
        with self._rw.write(), locked(self._lock, exclusive=True):
            try:
                self._load(repair=True)
            except IndexDamaged:
                self.m = self._read_manifest()  # what is damaged is what gets replaced
            old = self.m
            new = replace(self._empty, generation=old.generation + 1,
                          face_watermark=marks.face_watermark,
                          deletion_seq=marks.deletion_seq)  # fmt: skip
            for name in new.appended():
                self._path(name).write_bytes(b"")
            count = 0

            def write(ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray) -> None:
                nonlocal count
                self._append_raw(new, count, ids, vectors, collections)
                count += len(ids)

            yield write
            self._switch(old, replace(new, count=count), None)

    def _append_raw(
        self, m: Manifest, at: int, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray
    ) -> None:
        """Rows written at slot `at` of a generation not yet in use (compaction, rebuild)."""
        self._layout(m).append(self._path(m.vectors_file), at, vectors)
        append(self._path(m.ids_file), np.asarray(ids, "<i8").tobytes(), at * 8)
        if m.with_collections:
            append(self._path(m.collections_file), np.asarray(collections, "<i8").tobytes(),
                   at * 8)  # fmt: skip

    def train(self) -> None:
        """Train the approximate index over the live faces now, whatever their number."""
        with self._rw.write(), locked(self._lock, exclusive=True):
            self._load(repair=False)
            self._train()

    def _wants_ivf(self) -> bool:
        return self._ivf is None and len(self) >= self.settings.approx_min_faces

    def _factory(self) -> str:
        if self.settings.factory != "auto":
            return self.settings.factory
        return auto_factory(len(self), self.settings.codes)

    def _train(self) -> None:
        """Train an IVF on a sample of the live vectors, add them all, write it (under lock)."""
        live = np.setdiff1d(np.arange(self.m.count), self._dead, assume_unique=True)
        factory = self._factory()
        ivf = IVFCandidates.train(factory, self._sample(live, factory))
        for start in range(0, self.m.count, CHUNK):
            ivf.add(start, self._vectors[start : min(start + CHUNK, self.m.count)])
        self._ivf, self._own = ivf, {}
        self._checkpoint()

    def _sample(self, live: np.ndarray, factory: str) -> np.ndarray:
        nlist = int(factory[3:].split(",")[0].split("_")[0])
        # 40 points per centroid is what k-means needs; PQ codebooks want 256 per code.
        size = min(len(live), max(40 * nlist, 65_536))
        rng = np.random.default_rng(0)
        return np.asarray(self._vectors[np.sort(rng.choice(live, size, replace=False))])

    def _checkpoint(self) -> None:
        """Write the in-memory IVF (under lock) and point the manifest at it."""
        assert self._ivf is not None
        name = f"ivf-{self.m.generation}-{self.m.count}.faiss"
        tmp = self._path(name + ".tmp")
        try:
            with writing(tmp):
                self._ivf.write(tmp, self._ivf_key)
                fsync_file(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(self._path(name))
        fsync_dir(self.folder)
        old = self.m.ivf_file
        self._commit(replace(self.m, ivf_file=name, ivf_factory=self._ivf.factory,
                             ivf_count=self.m.count))  # fmt: skip
        if old and old != name:
            self._path(old).unlink(missing_ok=True)

    def close(self) -> None:
        if self._ivf is not None and self.m.count - self.m.ivf_count >= CHECKPOINT_FACES:
            with self._rw.write(), locked(self._lock, exclusive=True):
                self._load(repair=False)
                if self.m.count - self.m.ivf_count >= CHECKPOINT_FACES:
                    self._checkpoint()

    # maintenance

    def compact(self, retrain: bool = False) -> dict[str, int | float | str]:
        """Rewrite the live faces as a new generation; tombstoned faces leave the disk."""
        started = time.perf_counter()
        with self._rw.write(), locked(self._lock, exclusive=True):
            self._load(repair=False)
            faces, removed = self._rewrite(retrain)
        return {"faces": faces, "removed": removed,
                "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip

    def _rewrite(self, retrain: bool) -> tuple[int, int]:
        """Write the live faces as a new generation in the present format (under lock)."""
        old = self.m
        live = np.setdiff1d(np.arange(old.count), self._dead, assume_unique=True)
        new = replace(old, generation=old.generation + 1, count=0, tombstones=0,
                      ivf_file=None, ivf_factory=None, ivf_count=0,
                      vectors_format=self._empty.vectors_format)  # fmt: skip
        for name in new.appended():
            self._path(name).write_bytes(b"")
        ivf = self._ivf.empty_copy() if self._ivf is not None and not retrain else None
        for start in range(0, len(live), CHUNK):
            part = live[start : start + CHUNK]
            vectors = np.asarray(self._vectors[part])
            self._append_raw(new, start, self._ids[part], vectors, self._collections[part])
            if ivf is not None:
                ivf.add(start, vectors)
        self._switch(old, replace(new, count=len(live)), ivf)
        return len(live), old.count - len(live)

    def _switch(self, old: Manifest, new: Manifest, ivf: IVFCandidates | None) -> None:
        """Make `new` the committed generation (under lock), then drop the old files."""
        self._ivf = ivf
        self._dead = np.zeros(0, dtype=np.int64)
        self._groups, self._grouped, self._joined, self._bits = {}, 0, {}, None
        self._own, self._bitmaps = {}, {}
        self._map(new)
        self.m = new
        if ivf is not None:
            self._checkpoint()  # commits the manifest with the IVF file
        else:
            self._commit(new)
            if self._wants_ivf():
                self._train()
        for name in old.files() - self.m.files():
            self._path(name).unlink(missing_ok=True)

    def verify(self, catalog: CatalogSource, sample: int = 1000) -> dict:
        """Prove that index and catalog agree; returns the checks and any problems."""
        with self._rw.write(), locked(self._lock, exclusive=True):
            self._load(repair=False)
            problems = self._layout(self.m).check(self._path(self.m.vectors_file), self.m.count)
            ids = np.asarray(self._ids)
            if len(ids) > 1 and np.any(np.diff(ids) <= 0):
                problems.append("face ids in the index are not strictly increasing")
            live = self.live_ids()
            found, expected = membership_problems(catalog, live, self.m.model, self.m.model_version)
            problems += found
            if self._ivf is not None and len(self._ivf) != self.m.count:
                problems.append(f"the IVF holds {len(self._ivf)} slots, not {self.m.count}")
            rng = np.random.default_rng()
            checked = rng.choice(live, min(sample, len(live)), replace=False) if len(live) else live
            stored = catalog.embeddings_of(checked)
            slots = self._slots_of(np.sort(checked))
            # A block that fails authentication cannot be compared: reported above.
            differ = sum(
                1
                for slot in ([] if problems else slots)
                if not np.array_equal(self._vectors[slot], stored.get(int(self._ids[slot])))
            )
            if differ:
                problems.append(f"{differ} of {len(slots)} sampled vectors differ from the catalog")
            return {
                "ok": not problems, "problems": problems, "faces_in_catalog": len(expected),
                "faces_in_index": len(live), "tombstones": len(self._dead),
                "vectors_checked": len(slots),
            }  # fmt: skip

    def info(self) -> dict:
        self._refresh()
        disk = sum(self._path(n).stat().st_size for n in self.m.files() if self._path(n).exists())
        ram = (self._ivf.ram_bytes() if self._ivf else 0) + self.m.count // 8
        return {
            "folder": str(self.folder), "model": self.m.model,
            "model_version": self.m.model_version, "faces": len(self),
            "tombstones": len(self._dead), "kind": self._ivf.factory if self._ivf else "Flat",
            "nprobe": self._nprobe() if self._ivf else None, "refine": self.settings.refine,
            "generation": self.m.generation, "face_watermark": self.m.face_watermark,
            "deletion_seq": self.m.deletion_seq, "disk_bytes": disk, "ram_bytes": ram,
            "unsaved_ivf_faces": self.m.count - self.m.ivf_count if self._ivf else 0,
        }  # fmt: skip


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best k of several (scores, ids) results of the same queries."""
    if len(parts) == 1:
        return parts[0]
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)


def _encoded(m: Manifest) -> bytes:
    return json.dumps(asdict(m), indent=1).encode()


def _derive(key: bytes, label: bytes) -> bytes:
    """A separate key per use (CTR rows, GCM files) from the index's data key."""
    return hashlib.sha256(label + b":" + key).digest()


def open_index(request: IndexRequest) -> PersistentIndex:
    """The `embedded` back end (registry.py): files under the data folder, encrypted
    with a data key of their own, wrapped by the master key like every collection's."""
    return PersistentIndex(
        request.folder, request.model, request.model_version, request.dim,
        request.settings.index, request.data_key(),
    )  # fmt: skip
