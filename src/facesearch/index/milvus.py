"""The Milvus back end: the vector index of an archive that outgrows one machine.

Chosen by `FACESEARCH_INDEX__URI`; the same calls as the embedded index
(persistent.py), so the engine, the CLI and the API do not change. Milvus holds:

- one collection of faces per installation and embedding model,
  `{prefix}_{model}_{version}_g{generation}`: primary key = the catalog's face id,
  `collection_id` = the facesearch collection, and the vector; a collection filter is
  a filter on `collection_id`. Not a named partition per facesearch collection: Milvus
  caps named partitions at a few thousand per collection and organisations declare
  collections without limit. With `milvus_partitions` > 1 `collection_id` is Milvus's
  partition key (a filter then scans only the partitions that can hold it); off by
  default, since Milvus 2.3.5 returned wrong neighbours for filters with it.
- one small `{prefix}_marks` collection: per model, the generation in use, the
  highest catalog face id copied and the catalog deletion-log sequence applied.

The catalog stays the source of truth: `sync` copies faces above the watermark and
applies deletions past the sequence number, so a process that died between the
catalog commit and Milvus catches up at the next sync. Writes are upserts and
deletes by primary key, both idempotent, so a repeated sync does no harm.

An erased face is never returned. Every write (the deletes above all) is followed by
a barrier: one query with Strong consistency, which Milvus answers only once its
query node has applied every write acknowledged before it; the node's applied
timestamp never goes back, so every later search, asked with Bounded consistency,
sees those writes. Each process issues the deletes of every catalog deletion it has
not seen itself (at each sync, the engine's step before a search) and passes a
barrier when it opens. Strong consistency on every search would also do, at a price:
each call waits for Milvus's next time tick, about 200 ms (bench/milvus_search.py).
Session consistency, meant for exactly this, did not order a search after the
client's own delete with pymilvus 3.0 and Milvus 2.3.5 (39 of 39 deleted faces came
back at once), so it is not relied on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pymilvus import DataType, MilvusClient

from ..config import IndexSettings
from ..errors import FacesearchError
from .agreement import membership_problems
from .base import CatalogFed, CatalogSource, Marks, SyncReport, Writer

if TYPE_CHECKING:
    from .registry import IndexRequest

STRONG = "Strong"
BOUNDED = "Bounded"
# Milvus answers at most this many rows per search or query.
MAX_ROWS = 16_384
CHUNK = 8_192  # faces per insert: well under gRPC's 64 MiB message limit
FILTER_IDS = 4_096  # face ids per `id in [...]` filter expression

BUILD_DEFAULTS: dict[str, dict[str, int]] = {
    "FLAT": {},
    "IVF_FLAT": {"nlist": 1024},
    "IVF_SQ8": {"nlist": 1024},
    "IVF_PQ": {"nlist": 1024, "m": 32, "nbits": 8},
    "HNSW": {"M": 16, "efConstruction": 200},
}
SEARCH_DEFAULTS: dict[str, dict[str, int]] = {
    "FLAT": {},
    "IVF_FLAT": {"nprobe": 128},
    "IVF_SQ8": {"nprobe": 128},
    "IVF_PQ": {"nprobe": 128},
    "HNSW": {"ef": 128},
}
LOSSY = {"IVF_SQ8", "IVF_PQ"}  # their distances are computed on compressed codes


CollectionCatalog = CatalogSource  # the name this module used before base.py had it


@dataclass(frozen=True)
class MilvusMarks:
    generation: int = 0
    face_watermark: int = 0
    deletion_seq: int = 0


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


class MilvusIndex(CatalogFed):
    """Faces of one embedding model in Milvus, kept in step with the catalog."""

    chunk = CHUNK

    def __init__(
        self, settings: IndexSettings, model: str, model_version: str, dim: int,
        client: MilvusClient | None = None,
    ) -> None:  # fmt: skip
        if not settings.uri:
            raise FacesearchError("the Milvus index needs FACESEARCH_INDEX__URI")
        self.settings = settings
        self.dim = dim
        self.model, self.model_version = model, model_version
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        try:
            self.client = client or MilvusClient(
                uri=settings.uri, token=token, db_name=settings.milvus_database,
                timeout=settings.milvus_timeout_s,
            )  # fmt: skip
        except Exception as exc:  # pymilvus raises its own MilvusException, or grpc errors
            raise FacesearchError(f"cannot reach Milvus at {settings.uri}: {exc}") from exc
        self.kind = settings.milvus_index
        self._key = _name(f"{model}_{model_version}")
        self._marks_name = f"{settings.milvus_prefix}_marks"
        self._ensure_marks()
        self.m = self._read_marks(STRONG)
        self._ensure_faces(self._faces_name(self.m.generation))
        # Every deletion up to here was applied by some process; the barrier orders
        # this client's later searches after all of them.
        self._seen_seq = self.m.deletion_seq
        self._barrier()

    # names and marks

    def _faces_name(self, generation: int) -> str:
        return f"{self.settings.milvus_prefix}_{self._key}_g{generation}"

    @property
    def collection_name(self) -> str:
        return self._faces_name(self.m.generation)

    def _ensure_marks(self) -> None:
        if self.client.has_collection(self._marks_name):
            self.client.load_collection(self._marks_name)
            return
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("generation", DataType.INT64)
        schema.add_field("face_watermark", DataType.INT64)
        schema.add_field("deletion_seq", DataType.INT64)
        # Milvus 2.3 wants a vector field in every collection; this one holds nothing.
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
        index = self.client.prepare_index_params()
        index.add_index("unused", index_type="FLAT", metric_type="L2")
        self.client.create_collection(
            self._marks_name, schema=schema, index_params=index, consistency_level=STRONG
        )

    def _read_marks(self, consistency: str = BOUNDED) -> MilvusMarks:
        """The marks; a Bounded read may lag another process's last write, which costs
        only repeated, idempotent writes at the next sync."""
        rows = self.client.get(
            self._marks_name, ids=[self._key], output_fields=["generation", "face_watermark",
            "deletion_seq"], consistency_level=consistency,
        )  # fmt: skip
        if not rows:
            return MilvusMarks()
        row = rows[0]
        return MilvusMarks(
            int(row["generation"]), int(row["face_watermark"]), int(row["deletion_seq"])
        )

    def _write_marks(self, marks: MilvusMarks) -> None:
        self.client.upsert(
            self._marks_name,
            [{"key": self._key, "generation": marks.generation, "unused": [0.0, 0.0],
              "face_watermark": marks.face_watermark, "deletion_seq": marks.deletion_seq}],
        )  # fmt: skip
        self.m = marks

    def _index_params(self):
        index = self.client.prepare_index_params()
        params = {**BUILD_DEFAULTS[self.kind], **self.settings.milvus_build_params}
        index.add_index("embedding", index_type=self.kind, metric_type="IP", params=params)
        return index

    def _ensure_faces(self, name: str) -> None:
        if self.client.has_collection(name):
            self.client.load_collection(name)
            return
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(
            "collection_id", DataType.INT64, is_partition_key=self.settings.milvus_partitions > 1
        )
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        self.client.create_collection(
            name, schema=schema, index_params=self._index_params(), consistency_level=BOUNDED,
            **({"num_partitions": self.settings.milvus_partitions}
               if self.settings.milvus_partitions > 1 else {}),
        )  # fmt: skip
        self.client.load_collection(name)

    # reading

    def __len__(self) -> int:
        rows = self.client.query(
            self.collection_name, filter="", output_fields=["count(*)"], consistency_level=BOUNDED
        )
        return int(rows[0]["count(*)"])

    def count(self, collection_ids: list[int] | None = None) -> int:
        """Faces in Milvus, or in these facesearch collections."""
        if collection_ids is None:
            return len(self)
        if not collection_ids:
            return 0
        rows = self.client.query(
            self.collection_name, filter=_in_collections(collection_ids),
            output_fields=["count(*)"], consistency_level=BOUNDED,
        )  # fmt: skip
        return int(rows[0]["count(*)"])

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product top-k: (scores, face ids), best first; id -1 pads missing results.

        With `allowed`, the allowed faces' vectors are fetched and scored exactly here:
        a filtered search with `id in [...]` returned allowed but not the nearest faces
        on Milvus 2.3.5. The engine filters by collection with `search_collections`.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if allowed is None:
            return self._search(queries, k, "")
        allowed = np.unique(np.asarray(allowed, dtype=np.int64))
        parts = []
        for start in range(0, len(allowed), FILTER_IDS):
            rows = self.client.get(
                self.collection_name, ids=allowed[start : start + FILTER_IDS].tolist(),
                output_fields=["embedding"], consistency_level=BOUNDED,
            )  # fmt: skip
            if not rows:
                continue
            found = np.array([r["id"] for r in rows], dtype=np.int64)
            scores = queries @ np.array([r["embedding"] for r in rows], dtype=np.float32).T
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            part_scores, part_ids = _empty(len(queries), k)
            part_scores[:, : top.shape[1]] = np.take_along_axis(scores, top, 1)
            part_ids[:, : top.shape[1]] = found[top]
            parts.append((part_scores, part_ids))
        if not parts:
            return _empty(len(queries), k)
        return _merge(parts, k)

    def search_collections(
        self, queries: np.ndarray, k: int, collection_ids: list[int], refine: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among the faces of these facesearch collections only (Milvus's own search
        parameters set its effort; `refine` does not apply)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if not collection_ids:
            return _empty(len(queries), k)
        return self._search(queries, k, _in_collections(collection_ids))

    def _search(self, queries: np.ndarray, k: int, expr: str) -> tuple[np.ndarray, np.ndarray]:
        if not 1 <= k <= MAX_ROWS:
            raise FacesearchError(f"k must be between 1 and {MAX_ROWS} for Milvus")
        lossy = self.kind in LOSSY
        pool = min(k * self.settings.milvus_refine, MAX_ROWS) if lossy else k
        params = {**SEARCH_DEFAULTS[self.kind], **self.settings.milvus_search_params}
        if "ef" in params:
            params["ef"] = max(params["ef"], pool)  # HNSW cannot return more than ef
        results = self.client.search(
            self.collection_name, data=queries.tolist(), filter=expr, limit=pool,
            output_fields=["embedding"] if lossy else [], anns_field="embedding",
            search_params={"metric_type": "IP", "params": params},
            consistency_level=STRONG if self.settings.milvus_strong_search else BOUNDED,
        )  # fmt: skip
        scores, ids = _empty(len(queries), k)
        for row, (query, hits) in enumerate(zip(queries, results, strict=True)):
            if not hits:
                continue
            found = np.fromiter((h["id"] for h in hits), dtype=np.int64, count=len(hits))
            if lossy:
                vectors = np.array([h["entity"]["embedding"] for h in hits], dtype=np.float32)
                exact = vectors @ query
            else:
                exact = np.fromiter((h["distance"] for h in hits), np.float32, len(hits))
            top = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(top)] = exact[top]
            ids[row, : len(top)] = found[top]
        return scores, ids

    def _live(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        """(face ids, collection ids) of every face in Milvus, by id ranges Milvus can answer."""
        ids, collections = [], []
        start, step = 0, MAX_ROWS
        while True:
            rows = self.client.query(
                self.collection_name, filter=f"id > {start} and id <= {start + step}",
                output_fields=["collection_id"], limit=MAX_ROWS, consistency_level=STRONG,
            )  # fmt: skip
            ids += [r["id"] for r in rows]
            collections += [r["collection_id"] for r in rows]
            start += step
            if start >= upto:
                rows = self.client.query(
                    self.collection_name, filter=f"id > {start}", output_fields=["collection_id"],
                    limit=MAX_ROWS, consistency_level=STRONG,
                )  # fmt: skip
                ids += [r["id"] for r in rows]  # faces the catalog never had: reported
                collections += [r["collection_id"] for r in rows]
                break
        order = np.argsort(np.array(ids, dtype=np.int64))
        return np.array(ids, np.int64)[order], np.array(collections, np.int64)[order]

    # writing

    def add(
        self, ids: np.ndarray, vectors: np.ndarray, collection_ids: np.ndarray | None = None
    ) -> None:
        """Add (or replace) faces. Without `collection_ids` they belong to collection 0,
        which unfiltered and id-filtered searches find but no collection filter does."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if collection_ids is None:
            collection_ids = np.zeros(len(ids), dtype=np.int64)
        self._upsert(self.collection_name, ids, vectors, np.asarray(collection_ids, np.int64))
        self._barrier()

    def _upsert(
        self, name: str, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray,
        fresh: bool = False,
    ) -> None:  # fmt: skip
        write = self.client.insert if fresh else self.client.upsert
        for start in range(0, len(ids), CHUNK):
            end = start + CHUNK
            write(name, [
                {"id": int(i), "collection_id": int(c), "embedding": v}
                for i, c, v in zip(ids[start:end].tolist(), collections[start:end].tolist(),
                                   vectors[start:end].tolist(), strict=True)
            ])  # fmt: skip

    def remove(self, ids: np.ndarray) -> None:
        """Delete faces; no search this process starts afterwards returns them."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        for start in range(0, len(ids), FILTER_IDS):
            self.client.delete(self.collection_name, ids=ids[start : start + FILTER_IDS].tolist())
        if len(ids):
            self._barrier(ids[:FILTER_IDS])

    def _barrier(self, deleted: np.ndarray | None = None) -> None:
        """Wait (one Strong query) until Milvus has applied every write acknowledged so
        far, so later searches see them; and check that `deleted` faces are gone."""
        expr = f"id in [{','.join(map(str, deleted.tolist()))}]" if deleted is not None else ""
        rows = self.client.query(
            self.collection_name, filter=expr, consistency_level=STRONG,
            output_fields=["id"] if expr else ["count(*)"],
        )  # fmt: skip
        if expr and rows:
            # Upserted again by a process that read the face just before its erasure
            # (that process deletes it again at its next sync); delete it now anyway.
            again = [r["id"] for r in rows]
            self.client.delete(self.collection_name, ids=again)
            if self.client.query(self.collection_name, filter=f"id in {again}",
                                 output_fields=["id"], consistency_level=STRONG):  # fmt: skip
                raise FacesearchError(f"Milvus still holds deleted faces {again}")

    # the hooks of CatalogFed's sync and rebuild

    def _behind(self, top: Marks) -> bool:
        marks = self._read_marks()  # another process may have moved on, or rebuilt
        if marks.generation < self.m.generation:  # a Bounded read older than our own write
            marks = self.m
        elif marks.generation > self.m.generation:
            self._ensure_faces(self._faces_name(marks.generation))
        else:  # a Bounded read may not show this process's own last write yet
            marks = MilvusMarks(marks.generation,
                                max(marks.face_watermark, self.m.face_watermark),
                                max(marks.deletion_seq, self.m.deletion_seq))  # fmt: skip
        self.m = marks
        return top.face_watermark > marks.face_watermark or top.deletion_seq > min(
            marks.deletion_seq, self._seen_seq
        )

    @contextmanager
    def _syncing(self, catalog: CatalogSource) -> Iterator[Marks]:
        # Nothing to lock: upserts and deletes by primary key are idempotent.
        yield Marks(self.m.face_watermark, self.m.deletion_seq)

    def _write_faces(self, ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray) -> None:
        self._upsert(self.collection_name, ids, vectors, collections)

    def _deletions_after(self, marks: Marks) -> int:
        # Deletions another process applied are issued again from here, so that the
        # barrier orders this client's searches after them.
        return min(marks.deletion_seq, self._seen_seq)

    def _write_deletions(self, ids: np.ndarray) -> int:
        self.remove(ids)  # with a barrier after it
        return len(ids)

    def _commit_marks(self, marks: Marks) -> None:
        self._seen_seq = max(self._seen_seq, marks.deletion_seq)
        generation = self.m.generation
        if self._read_marks().generation <= generation:  # not rebuilt meanwhile
            self._write_marks(MilvusMarks(generation, marks.face_watermark, marks.deletion_seq))

    def _after_sync(self, report: SyncReport) -> None:
        if report.added and not report.deleted:
            self._barrier()  # so a search straight after an ingest finds its faces

    @contextmanager
    def _new_generation(self, marks: Marks) -> Iterator[Writer]:
        """A new Milvus collection, filled, then switched to; the old one is dropped."""
        old = self._read_marks(STRONG)
        new_name = self._faces_name(old.generation + 1)
        if self.client.has_collection(new_name):  # left by a rebuild that died
            self.client.drop_collection(new_name)
        self._ensure_faces(new_name)

        def write(ids: np.ndarray, vectors: np.ndarray, collections: np.ndarray) -> None:
            self._upsert(new_name, ids, vectors, collections, fresh=True)

        yield write
        self.client.flush(new_name)  # seals the segments so the index is built on them
        self._write_marks(MilvusMarks(old.generation + 1, marks.face_watermark,
                                      marks.deletion_seq))  # fmt: skip
        self.client.drop_collection(self._faces_name(old.generation))

    def _after_rebuild(self, catalog: CatalogSource) -> int:
        caught_up = self.sync(catalog)  # what changed in the catalog while copying
        self._barrier()
        return caught_up.added - caught_up.deleted

    def close(self) -> None:
        self.client.close()

    # maintenance

    def compact(self, retrain: bool = False) -> dict[str, int | float | str]:
        """Have Milvus rewrite segments without deleted faces; `retrain` also builds the
        vector index again with the present settings (a changed `milvus_index`, say)."""
        started = time.perf_counter()
        name = self.collection_name
        self.client.flush(name)
        job = self.client.compact(name)
        # Compaction is Milvus's own housekeeping: deleted faces are never searchable
        # either way, and the server carries on after we stop waiting. Milvus 2.3.5 was
        # seen leaving a job "Executing" for over ten minutes, so waiting is bounded.
        deadline = time.monotonic() + self.settings.milvus_timeout_s
        state = self.client.get_compaction_state(job)
        while state != "Completed" and time.monotonic() < deadline:
            time.sleep(0.5)
            state = self.client.get_compaction_state(job)
        if retrain:
            self.client.release_collection(name)
            for index in self.client.list_indexes(name):
                self.client.drop_index(name, index)
            self.client.create_index(name, self._index_params())
            self.client.load_collection(name)
        return {"faces": len(self), "index": self._built_kind() or "none",
                "compaction": "done" if state == "Completed" else "still running on the server",
                "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip

    def _built_kind(self) -> str | None:
        for index in self.client.list_indexes(self.collection_name):
            described = self.client.describe_index(self.collection_name, index)
            if described.get("field_name") == "embedding":
                return described.get("index_type")
        return None

    def verify(self, catalog: CollectionCatalog, sample: int = 1000) -> dict:
        """Prove that Milvus and the catalog agree: every face id and its collection,
        no deleted face, a sample of vectors bit for bit, the configured index type."""
        self.m = self._read_marks(STRONG)
        problems: list[str] = []
        top_id, _ = catalog.index_marks()
        live, collections = self._live(max(top_id, self.m.face_watermark))
        if len(live) > 1 and np.any(np.diff(live) == 0):
            problems.append("a face id is stored twice in Milvus")
        found, expected = membership_problems(catalog, live, self.model, self.model_version)
        problems += found
        both = np.isin(live, expected)
        wrong = np.count_nonzero(catalog.collection_ids_of(live[both]) != collections[both])
        if wrong:
            problems.append(f"{wrong} faces are filed under the wrong collection")
        built = self._built_kind()
        if built != self.kind:
            problems.append(f"the Milvus index is {built}, the setting says {self.kind}: "
                            "run `facesearch index compact --retrain`")  # fmt: skip
        rng = np.random.default_rng()
        checked = rng.choice(live, min(sample, len(live)), replace=False) if len(live) else live
        stored = catalog.embeddings_of(checked)
        differ = 0
        for start in range(0, len(checked), FILTER_IDS):
            part = checked[start : start + FILTER_IDS].tolist()
            rows = self.client.get(
                self.collection_name, ids=part, output_fields=["embedding"],
                consistency_level=STRONG,
            )  # fmt: skip
            for row in rows:
                vector = np.asarray(row["embedding"], dtype=np.float32)
                differ += not np.array_equal(vector, stored.get(int(row["id"])))
        if differ:
            problems.append(f"{differ} of {len(checked)} sampled vectors differ from the catalog")
        return {
            "ok": not problems, "problems": problems, "faces_in_catalog": len(expected),
            "faces_in_index": len(live), "tombstones": 0, "vectors_checked": len(checked),
        }  # fmt: skip

    def info(self) -> dict:
        self.m = self._read_marks()
        params = {**SEARCH_DEFAULTS[self.kind], **self.settings.milvus_search_params}
        return {
            "backend": "milvus", "uri": _without_password(self.settings.uri or ""),
            "collection": self.collection_name, "model": self.model,
            "model_version": self.model_version, "faces": len(self),
            "kind": self._built_kind() or "none", "search_params": params,
            "consistency": f"{BOUNDED} searches after {STRONG} barriers",
            "partitions": self.settings.milvus_partitions,
            "generation": self.m.generation, "face_watermark": self.m.face_watermark,
            "deletion_seq": self.m.deletion_seq,
        }  # fmt: skip


def _in_collections(collection_ids: list[int]) -> str:
    return f"collection_id in [{','.join(str(int(c)) for c in collection_ids)}]"


def _without_password(uri: str) -> str:
    return re.sub(r"//[^/@]*@", "//", uri)


def _empty(rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.full((rows, k), -np.inf, dtype=np.float32), np.full((rows, k), -1, dtype=np.int64))


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)


def open_index(request: IndexRequest) -> MilvusIndex:
    """The `milvus` back end (registry.py)."""
    return MilvusIndex(request.settings.index, request.model, request.model_version, request.dim)
