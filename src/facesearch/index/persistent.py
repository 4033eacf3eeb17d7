"""The persistent vector index: one folder per embedding model, kept in step with the catalog.

Files (every name but `manifest.json` and `lock` carries a generation number):

- `vectors-G.f32`  full float32 vectors, row = slot, append-only, memory-mapped
- `ids-G.i64`      face id of each slot, append-only; ids only grow, so a face id
                   finds its slot by binary search
- `tombstones-G.i64` face ids deleted since the generation began, append-only
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
deletion log past its sequence number). Every change is made under an exclusive
lock, so several processes can share one index folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from cryptography.exceptions import InvalidTag

from .. import faults
from ..config import IndexSettings
from ..diskfull import writing
from ..errors import FacesearchError
from .agreement import membership_problems
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

# Faces added since the approximate index was last written: above this many,
# closing the index writes it again so the next open has less to re-encode.
CHECKPOINT_FACES = 50_000
CHUNK = 65_536
FORMAT = 1


class CatalogSource(Protocol):
    """What the index reads from the catalog (store/catalog.py implements it)."""

    def index_marks(self) -> tuple[int, int]: ...

    def embeddings_between(
        self, model: str, model_version: str, after_id: int, upto_id: int, limit: int
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def deletions_between(self, after_seq: int, upto_seq: int) -> np.ndarray: ...

    def model_face_ids(self, model: str, model_version: str) -> np.ndarray: ...

    def deleted_face_ids(self) -> np.ndarray: ...

    def embeddings_of(self, ids: np.ndarray) -> dict[int, np.ndarray]: ...


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

    @property
    def vectors_file(self) -> str:
        return f"vectors-{self.generation}.f32"

    @property
    def ids_file(self) -> str:
        return f"ids-{self.generation}.i64"

    @property
    def tombstones_file(self) -> str:
        return f"tombstones-{self.generation}.i64"

    def files(self) -> set[str]:
        names = {self.vectors_file, self.ids_file, self.tombstones_file}
        return names | ({self.ivf_file} if self.ivf_file else set())


@dataclass
class SyncReport:
    added: int = 0
    deleted: int = 0
    trained: bool = False


class PersistentIndex:
    """Exact search over the memory-mapped vectors while small; IVF candidates
    re-ranked exactly against them once the index holds `approx_min_faces`."""

    def __init__(
        self, folder: Path, model: str, model_version: str, dim: int, settings: IndexSettings,
        key: bytes | None = None,
    ) -> None:  # fmt: skip
        """`key` (32 bytes) encrypts the vectors and IVF files at rest; None keeps them plain."""
        self.folder = folder
        self._row_key = _derive(key, b"rows") if key else None
        self._ivf_key = _derive(key, b"ivf") if key else None
        self.dim = dim
        self.settings = settings
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = folder / "lock"
        layout = GcmBlocks.format if key else PlainRows.format
        self._empty = Manifest(model, model_version, dim, sealed=key is not None,
                               vectors_format=layout)  # fmt: skip
        self.m = self._empty
        self._stamp: bytes | None = None
        self._loaded = False
        self._ivf: IVFCandidates | None = None
        self._dead: np.ndarray = np.zeros(0, dtype=np.int64)  # sorted dead slots
        self._bits: np.ndarray | None = None
        with locked(self._lock, exclusive=True):
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
        atomic_write(self._manifest_path(), json.dumps(asdict(m), indent=1).encode())
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
            for name in (m.vectors_file, m.ids_file, m.tombstones_file):
                self._path(name).touch()
            truncate(self._path(m.vectors_file), self._layout(m).size(m.count))
            truncate(self._path(m.ids_file), m.count * 8)
            truncate(self._path(m.tombstones_file), m.tombstones * 8)
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
        self._vectors = self._layout(new).open(self._path(new.vectors_file), new.count)
        self._ids = mapped(self._path(new.ids_file), "<i8", new.count)
        if self._ivf is not None:
            for start in range(old.count, new.count, CHUNK):
                self._ivf.add(start, self._vectors[start : min(start + CHUNK, new.count)])
        if new.tombstones > old.tombstones:
            tomb = mapped(self._path(new.tombstones_file), "<i8", new.tombstones)
            self._mark_dead(np.array(tomb[old.tombstones :]))
        self._bits = None

    def _refresh(self) -> None:
        """Pick up what another process committed since we last looked."""
        if self._manifest_stamp() != self._stamp:
            with locked(self._lock, exclusive=True):
                self._load(repair=False)

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
        self._refresh()
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if allowed is not None:
            slots = np.setdiff1d(self._slots_of(np.sort(allowed)), self._dead, assume_unique=True)
            if self._ivf is None or len(slots) <= self.settings.filter_exact_max:
                return self._exact(queries, k, slots)
            mask = np.zeros(self.m.count, dtype=bool)
            mask[slots] = True
            bits = np.packbits(mask, bitorder="little")
            # A filter keeps a fraction of each probed list: probe more lists so
            # about as many allowed candidates are seen as without a filter.
            fraction = len(slots) / max(len(self), 1)
            nprobe = math.ceil(self._nprobe() / fraction)
        elif self._ivf is None:
            return self._exact(queries, k, None)
        else:
            bits, nprobe = self._alive_bits(), self._nprobe()
        pool = max(k * self.settings.refine, k)
        candidates = self._ivf.search(queries, pool, nprobe, bits)
        return self._rerank(queries, k, candidates)

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
        with locked(self._lock, exclusive=True):
            try:
                self._load(repair=False)
                yield
            except BaseException:
                self._loaded = False
                raise

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append faces whose ids are all above every id already in the index."""
        with self._changing():
            self._commit(self._append(self.m, ids, vectors))

    def _append(self, m: Manifest, ids: np.ndarray, vectors: np.ndarray) -> Manifest:
        ids = np.ascontiguousarray(ids, dtype="<i8")
        if not len(ids):
            return m
        vectors = np.ascontiguousarray(vectors, dtype="<f4").reshape(len(ids), self.dim)
        last = int(self._ids[-1]) if m.count else 0
        if ids[0] <= max(last, 0) or np.any(np.diff(ids) <= 0):
            raise FacesearchError("face ids must be added in increasing order, each only once")
        self._layout(m).append(self._path(m.vectors_file), m.count, vectors)
        faults.point("index_write", f"{len(ids)} vectors appended, not their ids")
        append(self._path(m.ids_file), ids.tobytes(), m.count * 8)
        new = replace(
            m, count=m.count + len(ids), face_watermark=max(m.face_watermark, int(ids[-1]))
        )
        self._vectors = self._layout(new).open(self._path(new.vectors_file), new.count)
        self._ids = mapped(self._path(new.ids_file), "<i8", new.count)
        if self._ivf is not None:
            self._ivf.add(m.count, vectors)
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

    def sync(self, catalog: CatalogSource) -> SyncReport:
        """Catch up with the catalog: faces added above the watermark, deletions past the
        sequence number; train the approximate index once there are enough faces."""
        self._refresh()
        report = SyncReport()
        top_id, top_seq = catalog.index_marks()
        if (
            top_id <= self.m.face_watermark
            and top_seq <= self.m.deletion_seq
            and not (self._wants_ivf())
        ):
            return report
        with self._changing():
            top_id, top_seq = catalog.index_marks()
            m = self.m
            while m.face_watermark < top_id:
                ids, vectors = catalog.embeddings_between(
                    m.model, m.model_version, m.face_watermark, top_id, CHUNK
                )
                m = self._append(m, ids, vectors)
                m = replace(m, face_watermark=int(ids[-1]) if len(ids) else top_id)
                self._commit(m)
                report.added += len(ids)
            if m.deletion_seq < top_seq:
                before = len(self._dead)
                m = self._tombstone(m, catalog.deletions_between(m.deletion_seq, top_seq))
                self._commit(replace(m, deletion_seq=top_seq))
                report.deleted = len(self._dead) - before
            if self._wants_ivf():
                self._train()
                report.trained = True
        return report

    def train(self) -> None:
        """Train the approximate index over the live faces now, whatever their number."""
        with locked(self._lock, exclusive=True):
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
        self._ivf = ivf
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
            with locked(self._lock, exclusive=True):
                self._load(repair=False)
                if self.m.count - self.m.ivf_count >= CHECKPOINT_FACES:
                    self._checkpoint()

    # maintenance

    def compact(self, retrain: bool = False) -> dict[str, int | float | str]:
        """Rewrite the live faces as a new generation; tombstoned faces leave the disk."""
        started = time.perf_counter()
        with locked(self._lock, exclusive=True):
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
        for name in (new.vectors_file, new.ids_file, new.tombstones_file):
            self._path(name).write_bytes(b"")
        layout = self._layout(new)
        ivf = self._ivf.empty_copy() if self._ivf is not None and not retrain else None
        for start in range(0, len(live), CHUNK):
            part = live[start : start + CHUNK]
            vectors = np.asarray(self._vectors[part])
            layout.append(self._path(new.vectors_file), start, vectors)
            append(self._path(new.ids_file), np.asarray(self._ids[part]).tobytes(),
                   start * 8)  # fmt: skip
            if ivf is not None:
                ivf.add(start, vectors)
        self._switch(old, replace(new, count=len(live)), ivf)
        return len(live), old.count - len(live)

    def rebuild(self, catalog: CatalogSource) -> dict[str, int | float | str]:
        """Discard the index and build it again from the catalog alone."""
        started = time.perf_counter()
        with locked(self._lock, exclusive=True):
            try:
                self._load(repair=True)
            except IndexDamaged:
                self.m = self._read_manifest()  # what is damaged is what gets replaced
            old = self.m
            top_id, top_seq = catalog.index_marks()
            new = replace(self._empty, generation=old.generation + 1, face_watermark=top_id,
                          deletion_seq=top_seq)  # fmt: skip
            for name in (new.vectors_file, new.ids_file, new.tombstones_file):
                self._path(name).write_bytes(b"")
            layout = self._layout(new)
            after = count = 0
            while True:
                ids, vectors = catalog.embeddings_between(
                    new.model, new.model_version, after, top_id, CHUNK
                )
                if not len(ids):
                    break
                layout.append(self._path(new.vectors_file), count, vectors)
                append(self._path(new.ids_file), np.asarray(ids, "<i8").tobytes(),
                       count * 8)  # fmt: skip
                after, count = int(ids[-1]), count + len(ids)
            self._switch(old, replace(new, count=count), None)
        return {"faces": count, "seconds": round(time.perf_counter() - started, 2)}

    def _switch(self, old: Manifest, new: Manifest, ivf: IVFCandidates | None) -> None:
        """Make `new` the committed generation (under lock), then drop the old files."""
        self._ivf = ivf
        self._dead = np.zeros(0, dtype=np.int64)
        self._vectors = self._layout(new).open(self._path(new.vectors_file), new.count)
        self._ids = mapped(self._path(new.ids_file), "<i8", new.count)
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
        with locked(self._lock, exclusive=True):
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


def _derive(key: bytes, label: bytes) -> bytes:
    """A separate key per use (CTR rows, GCM files) from the index's data key."""
    return hashlib.sha256(label + b":" + key).digest()
