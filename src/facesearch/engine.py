"""The engine wires the pipeline, the catalog and the vector index together.

Front doors (the CLI today; the API and web later) build `Settings`, open an
`Engine` and call its methods; they hold no logic of their own.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from . import ingest as ingest_module
from .config import DecodeSettings, Settings
from .errors import FacesearchError, ModelMismatch
from .evaluation import calibration
from .index.base import CatalogBackedIndex
from .index.registry import IndexRequest, open_index
from .index.sealed import IndexDamaged
from .models import declared
from .models.cache import ModelCache
from .models.registry import MODELS, ModelSpec
from .models.registry import get as get_model
from .people.search import person_scores
from .people.service import People
from .pipeline.analyze import Analyzer
from .pipeline.decode import decode
from .reembed import Progress as ReembedProgress
from .reembed import ReembedReport
from .reembed import reembed as reembed_collection
from .storage import open_catalog
from .store import videos
from .store.catalog import Catalog, Collection
from .store.people import PeopleStore
from .types import FaceRecord, Hit


@dataclass
class SearchResult:
    probe_faces: list[FaceRecord]
    face_index: int
    hits: list[Hit]
    searched_faces: int
    model: str
    probe_size: tuple[int, int] = (0, 0)  # width, height after EXIF orientation


class Engine:
    """Searches may run in many threads at once: each borrows one of `search_models`
    analyzers (OpenCV's nets are not safe for concurrent use) and reads the catalog on
    its own thread's connection (the database's reader, or `reader` where given); the
    index takes care of its own readers and writers."""

    def __init__(
        self, settings: Settings, catalog: Catalog | None = None, analyzer: Analyzer | None = None,
        reader: Callable[[], Catalog] | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        # A declared model that fails its checks stops start before the catalog opens.
        declared.install(settings)
        self.catalog = catalog or open_catalog(settings)
        self.reader = reader
        # Loaded on first use, so commands that never touch a model start fast.
        self._analyzer = analyzer
        self._idle: queue.SimpleQueue[Analyzer] = queue.SimpleQueue()
        self._loaded = 0  # analyzers made for searches, at most `search_models`
        self._lock = threading.Lock()
        self._index: CatalogBackedIndex | None = None
        self._calibration: calibration.Calibration | Literal[False] | None = None
        self._people: People | None = None

    @property
    def reads(self) -> Catalog:
        """The catalog for this thread's reads on the search path."""
        return self.reader() if self.reader is not None else self.catalog

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self.catalog.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedder_spec(self) -> ModelSpec:
        return get_model(self.settings.embedder)

    # models

    def model_cache(self) -> ModelCache:
        return ModelCache(self.settings.models_dir)

    def fetch_models(self, names: list[str] | None = None) -> list[Path]:
        cache = self.model_cache()
        specs = [get_model(n) for n in names] if names else list(MODELS.values())
        return [cache.ensure(spec) for spec in specs]

    @property
    def analyzer(self) -> Analyzer:
        with self._lock:
            if self._analyzer is None:
                self._analyzer = Analyzer.load(self.settings)
            return self._analyzer

    @contextmanager
    def borrowed_analyzer(self) -> Iterator[Analyzer]:
        """An analyzer no other thread uses meanwhile: one of up to `search_models`,
        made when all are busy, waited for once that many exist."""
        try:
            analyzer = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                make = self._loaded < max(self.settings.api.search_models, 1)
                self._loaded += make
            if not make:
                analyzer = self._idle.get()
            elif self._loaded == 1:
                analyzer = self.analyzer  # the first is the one ingest and tests share
            else:
                analyzer = Analyzer.load(self.settings)
        try:
            yield analyzer
        finally:
            self._idle.put(analyzer)

    # collections

    def create_collection(
        self, name: str, source: str, legal_basis: str, retention_days: int | None = None
    ) -> Collection:
        return self.catalog.create_collection(name, source, legal_basis, retention_days)

    # ingest

    def ingest(
        self,
        paths: list[Path],
        collection: str | Collection,
        progress: ingest_module.Progress | None = None,
        screen: ingest_module.Screen | None = None,
        allowed_roots: list[Path] | None = None,
    ) -> ingest_module.IngestReport:
        target = self._collection(collection)
        # Fetch once here, not in every worker process at the same moment.
        self.fetch_models([self.settings.detector, self.settings.embedder])
        local = self.settings.workers <= 1 and not self.settings.ray.address
        analyzer = self.analyzer if local else None
        # Each committed batch goes into the vector index at once, so a search in any
        # process finds it without re-reading the catalog; a batch committed just
        # before a crash is caught up from the catalog when the index is next opened.
        # New faces join persons (or found new ones) batch by batch too.
        organisation = target.organisation_id

        def committed() -> None:
            self.vector_index().sync(self.catalog)
            if organisation is not None:
                self.people().update(organisation)

        report = ingest_module.ingest(
            self.settings, self.catalog, target, paths, progress, analyzer,
            on_commit=committed, screen=screen, allowed_roots=allowed_roots,
        )  # fmt: skip
        return report

    # people

    def people(self) -> People:
        """Clustering of faces into persons, with this engine's recogniser."""
        if self._people is None:
            self._people = People(
                self.catalog, self.embedder_spec, self.settings.people,
                lambda vectors, k, collections, refine: self.vector_index().search_collections(
                    vectors, k, collections, refine),
                self.settings.data_dir / "people",
            )  # fmt: skip
        return self._people

    def search_person(
        self, organisation_id: int, person_id: int, top_k: int = 20, how: str = "max"
    ) -> tuple[list[Hit], int, list[str]]:
        """Stored faces of the organisation ranked against all of a person's faces
        (people/search.py), the person's own faces left out; with how many faces were
        searched and the collections."""
        if top_k < 1:
            raise FacesearchError("top_k must be at least 1")
        store = PeopleStore(self.catalog)
        person = store.person(organisation_id, person_id)
        spec = self.embedder_spec
        if (person.model, person.model_version) != (spec.name, spec.version):
            raise ModelMismatch(
                f"person {person_id} was grouped by {person.model} {person.model_version}; "
                f"this engine embeds with {spec.name} {spec.version}"
            )
        own = store.face_ids(person.id)
        vectors = self.catalog.embeddings_of(own)
        matrix = np.vstack([vectors[f] for f in own if f in vectors]).astype(np.float32)
        chosen = [
            Collection(*c)
            for c in self.catalog.conn.execute(
                "SELECT id, name, source, legal_basis, retention_days, created_at, organisation_id "
                "FROM collections WHERE organisation_id = ? ORDER BY id",
                (organisation_id,),
            )
        ]
        if not chosen:
            return [], 0, []
        # Candidates: each of the person's faces' nearest, then every candidate scored
        # against all of the person's faces exactly.
        wanted = top_k + len(own)
        candidates: dict[int, None] = {}
        for vector in matrix:
            hits, searched = self.rank(vector, wanted, chosen)
            candidates.update((h.face_id, None) for h in hits if h.face_id not in vectors)
        found = self.catalog.embeddings_of(list(candidates))
        ids = [f for f in candidates if f in found]
        if not ids:
            return [], searched, [c.name for c in chosen]
        scores = person_scores(np.vstack([found[f] for f in ids]) @ matrix.T, how)
        order = np.argsort(-scores, kind="stable")[:top_k]
        rows = self.catalog.faces(ids[i] for i in order)
        hits = [
            Hit(
                rank=rank,
                score=float(scores[i]),
                face_id=ids[i],
                image_id=rows[ids[i]].image_id,
                collection=rows[ids[i]].collection,
                path=rows[ids[i]].path,
                source_url=rows[ids[i]].source_url,
                captured_at=rows[ids[i]].captured_at,
                box=rows[ids[i]].box,
                thumbnail=rows[ids[i]].thumbnail,
                quality=rows[ids[i]].quality,
            )
            for rank, i in enumerate((i for i in order if ids[i] in rows), start=1)
        ]
        return self._calibrated(hits), max(searched - len(own), 0), [c.name for c in chosen]

    def remove_orphan_persons(self) -> int:
        """Persons left without faces go (erasure, retention, a deleted collection)."""
        return PeopleStore(self.catalog).remove_orphans()

    # deletion and the index

    def delete_faces(self, ids: list[int]) -> int:
        """Delete faces from the catalog and the index; no search returns them again.

        The catalog commits first and logs the ids, so an index that misses the
        tombstone here (a crash, another process) applies it when it next syncs.
        """
        deleted = self.catalog.delete_faces(ids)
        self.vector_index().sync(self.catalog)
        self.remove_orphan_persons()
        return deleted

    def erase_faces(self, face_ids: list[int]) -> tuple[list[int], list[str]]:
        """Erase faces through the deletion path (catalog, logged for every index,
        then this index at once); an image left without faces goes too. Returns
        the ids deleted and the paths of the images deleted."""
        deleted, paths = self.catalog.erase_faces(face_ids)
        videos.drop_empty_tracks(self.catalog)
        self.vector_index().sync(self.catalog)
        self.remove_orphan_persons()
        return deleted, paths

    def purge_expired(self) -> list[dict]:
        """Delete what has outlived its collection's retention, from catalog and index."""
        purged = self.catalog.purge_expired()
        if purged:
            self.vector_index().sync(self.catalog)
            self.remove_orphan_persons()
        return purged

    def vector_index(self) -> CatalogBackedIndex:
        """The index of this engine's model, opened by the back end the settings name."""
        index = self._index
        if index is not None:
            return index
        with self._lock:
            if self._index is None:
                spec = self.embedder_spec
                self._index = open_index(IndexRequest(
                    self.settings, spec.name, spec.version, spec.embedding_dim or 128,
                    lambda: self.catalog.data_key(None, f"index:{spec.name}-{spec.version}"),
                ))  # fmt: skip
            return self._index

    def index_info(self) -> dict:
        index = self.vector_index()
        index.sync(self.catalog)
        return index.info()

    def verify_index(self) -> dict:
        """Open (which repairs torn writes), catch up with the catalog, then prove they agree."""
        try:
            index = self.vector_index()
            caught_up = index.sync(self.catalog)
            report = index.verify(self.catalog)
        except IndexDamaged as exc:
            # A file that fails authentication: reported, not raised, like any disagreement.
            return {"ok": False, "problems": [str(exc)]}
        report["caught_up"] = {"added": caught_up.added, "deleted": caught_up.deleted}
        return report

    def rebuild_index(self) -> dict:
        return self.vector_index().rebuild(self.catalog)

    def compact_index(self, retrain: bool = False) -> dict:
        index = self.vector_index()
        index.sync(self.catalog)
        return index.compact(retrain)

    # search

    def search(
        self,
        photo: bytes,
        top_k: int = 10,
        face: int | None = None,
        collections: list[str | Collection] | None = None,
        limits: DecodeSettings | None = None,
    ) -> SearchResult:
        """Rank stored faces by similarity to one face of the probe photo.

        The probe's largest face is used unless `face` (0-based, in the order
        of `probe_faces`) picks another. `collections` None searches every
        collection, an empty list none. `limits` replaces the decode limits
        (the server's are tighter than an archive's).
        """
        if top_k < 1:
            raise FacesearchError("top_k must be at least 1")
        image = decode(photo, limits or self.settings.decode)
        with self.borrowed_analyzer() as analyzer:
            faces = analyzer.faces(image.pixels)
        if not faces:
            raise FacesearchError("no face was found in the probe photo")
        faces.sort(key=lambda f: f.detection.area, reverse=True)
        if face is None:
            face = 0
        elif not 0 <= face < len(faces):
            raise FacesearchError(
                f"the probe has {len(faces)} faces; --face must be 0..{len(faces) - 1}"
            )
        hits, searched = self.rank(faces[face].embedding, top_k, collections)
        return SearchResult(
            faces, face, hits, searched, self.embedder_spec.name, (image.width, image.height)
        )

    def search_face(
        self, face_id: int, top_k: int = 10, collections: list[str | Collection] | None = None
    ) -> tuple[list[Hit], int]:
        """Rank stored faces by similarity to a stored face, which is left out."""
        vector, model, version = self.reads.embedding(face_id)
        spec = self.embedder_spec
        if (model, version) != (spec.name, spec.version):
            raise ModelMismatch(
                f"face {face_id} was embedded by {model} {version}; this engine embeds with "
                f"{spec.name} {spec.version}, and embeddings of different models cannot be compared"
            )
        hits, searched = self.rank(vector, top_k + 1, collections)
        others = [h for h in hits if h.face_id != face_id][:top_k]
        return [replace(h, rank=n) for n, h in enumerate(others, start=1)], max(searched - 1, 0)

    def rank(
        self, embedding: np.ndarray, top_k: int, collections: list[str | Collection] | None = None
    ) -> tuple[list[Hit], int]:
        """The stored faces nearest to `embedding`, best first, and how many were searched.

        A collection filter is the index's own (each face's collection is in it), so its
        cost follows the collections' faces, not the whole archive's."""
        index = self._vector_index()
        query = np.asarray(embedding, dtype=np.float32)[None, :]
        if collections is None:
            scores, ids = index.search(query, top_k)
            searched = len(index)
        else:
            chosen = [c.id for c in map(self._collection, collections)]
            searched = index.count(chosen) if chosen else 0
            if not searched:
                return [], 0
            scores, ids = index.search_collections(query, top_k, chosen)
        pairs = [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
        rows = self.reads.faces(i for _, i in pairs)
        # A face deleted by another process after this search began is not shown.
        pairs = [(s, i) for s, i in pairs if i in rows]
        hits = [
            Hit(
                rank=rank, score=score, face_id=i, image_id=rows[i].image_id,
                collection=rows[i].collection, path=rows[i].path, source_url=rows[i].source_url,
                captured_at=rows[i].captured_at, box=rows[i].box, thumbnail=rows[i].thumbnail,
                quality=rows[i].quality,
            )
            for rank, (score, i) in enumerate(pairs, start=1)
        ]  # fmt: skip
        moments = videos.moments(self.reads, [h.face_id for h in hits])
        if moments:
            hits = [
                replace(h, video=moments[h.face_id].as_dict()) if h.face_id in moments else h
                for h in hits
            ]
        return self._calibrated(hits), searched

    def _collection(self, collection: str | Collection) -> Collection:
        """A collection given as itself, or by a name that only one organisation uses."""
        if isinstance(collection, Collection):
            return collection
        return self.reads.collection(collection)

    def reload_index(self) -> None:
        """Close the index; the next search reopens it and catches up with the catalog.
        A search already holding the old one finishes on it."""
        with self._lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()

    def _calibrated(self, hits: list[Hit]) -> list[Hit]:
        """Each hit with its estimated false match rate and band, where the model has
        a calibration (src/facesearch/models/calibration/)."""
        if self._calibration is None:
            # Loaded once per engine: it is fixed for the model, and search is a hot path.
            self._calibration = (
                calibration.for_model(self.embedder_spec, self.settings.flip_embeddings) or False
            )
        cal = self._calibration
        if not cal:
            return hits
        return [
            replace(
                h,
                estimated_fmr=cal.estimated_fmr(h.score),
                band=cal.band(h.score),
                band_gallery_size=cal.gallery_size,
            )
            for h in hits
        ]

    def warm_index(self) -> int:
        """Build what the index's first searches would wait for (a server's start)."""
        return self._vector_index().warm()

    def _vector_index(self) -> CatalogBackedIndex:
        index = self.vector_index()
        catalog = self.reads
        index.sync(catalog, wait=False)
        if not len(index):
            spec = self.embedder_spec
            others = [m for m in catalog.face_models() if (m[0], m[1]) != (spec.name, spec.version)]
            if others:
                held = ", ".join(f"{n} {v} ({c} faces)" for n, v, c in others)
                raise ModelMismatch(
                    f"the catalog holds faces of {held} only; this engine embeds with "
                    f"{spec.name} {spec.version}, and embeddings of different models "
                    "cannot be compared"
                )
        return index

    def stats(self) -> dict[str, int]:
        counts = self.catalog.stats()
        held = videos.stats(self.catalog)
        # Video counts only where there are videos: a photo archive's stats stay as they were.
        return counts | held if held["videos"] else counts

    # Listings of the catalog, for the front doors.

    def collections(self) -> list[dict]:
        """Every collection with its declaration and counts."""
        return self.catalog.collections()

    def images(self, collection: str | None = None, limit: int = 50) -> list[dict]:
        """Stored images, of one collection when it is named."""
        return self.catalog.images(self._collection(collection) if collection else None, limit)

    def face_list(self, image_id: int | None = None, limit: int = 50) -> list[dict]:
        """Stored faces, of one image when it is given."""
        return self.catalog.face_list(image_id, limit)

    def errors(self, collection: str | None = None, limit: int = 50) -> list[dict]:
        """Files that could not be ingested and why, of one collection when it is named."""
        return self.catalog.errors(self._collection(collection) if collection else None, limit)

    def runs(self, limit: int = 20) -> list[dict]:
        """Ingest runs, newest first."""
        return self.catalog.runs(limit)

    def reembed(
        self, collection: str, model: str, source_model: str | None = None,
        progress: ReembedProgress | None = None, skip_missing: bool = False,
    ) -> ReembedReport:  # fmt: skip
        """Re-embed a collection's stored faces with `model` (reembed.py)."""
        target = self._collection(collection)
        return reembed_collection(self.settings, self.catalog, target, model, source_model,
                                  progress, skip_missing)  # fmt: skip
