"""The index back ends behind one protocol (issue 17.3), opened from the settings by the
registry, fed by the shared sync loop from a real catalog; searches in several threads
while a sync runs (issue 16). Real embeddings of LFW faces, stored in a real catalog."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

from facesearch.config import Settings
from facesearch.errors import FacesearchError
from facesearch.index.base import CatalogBackedIndex
from facesearch.index.registry import IndexRequest, backend_name, open_index
from facesearch.storage import open_catalog
from facesearch.types import Detection, FaceRecord, ImageResult, SourceItem

MODEL, VERSION = "sface-2021dec", "test"


def _store(catalog, collection, vectors: np.ndarray, tag: str) -> None:
    run = catalog.start_run(collection, [tag])
    results = []
    for n, vector in enumerate(vectors):
        face = FaceRecord(
            Detection((0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32), 0.9), vector, 0.5,
            b"\xff\xd8",
        )  # fmt: skip
        name = f"{tag}-{n}"
        results.append(ImageResult(SourceItem(Path(name)), hashlib.sha256(name.encode())
                                   .hexdigest(), 1, 10, 10, [face]))  # fmt: skip
    catalog.store_results(collection, run, results, MODEL, VERSION)


def _open(settings: Settings, catalog) -> CatalogBackedIndex:
    return open_index(IndexRequest(settings, MODEL, VERSION, 128,
                                   lambda: catalog.data_key(None, "index:test")))  # fmt: skip


@pytest.fixture
def world(tmp_path, lfw_embeddings):
    vectors = np.ascontiguousarray(lfw_embeddings[0][:600], dtype=np.float32)
    settings = Settings(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    catalog = open_catalog(settings)
    a = catalog.create_collection("a", "LFW", "test")
    b = catalog.create_collection("b", "LFW", "test")
    _store(catalog, a, vectors[:300], "a")
    _store(catalog, b, vectors[300:500], "b")
    yield settings, catalog, vectors, (a, b)
    catalog.close()


@pytest.mark.parametrize("backend", ["embedded", "flat"])
def test_every_back_end_agrees_with_exact_search_and_filters_by_collection(world, backend):
    settings, catalog, vectors, (a, b) = world
    settings = settings.model_copy(update={"index": settings.index.model_copy(
        update={"backend": backend})})  # fmt: skip
    assert backend_name(settings) == backend
    index = _open(settings, catalog)
    assert isinstance(index, CatalogBackedIndex)
    report = index.sync(catalog)
    assert (report.added, len(index)) == (500, 500)
    ids = catalog.model_face_ids(MODEL, VERSION)
    queries = vectors[500:520]
    exact = np.argsort(-(queries @ vectors[:500].T), axis=1)[:, :10]
    _, found = index.search(queries, 10)
    assert np.array_equal(found, ids[exact])
    _, only_b = index.search_collections(queries, 10, [b.id])
    assert set(np.unique(only_b)) <= set(ids[300:500].tolist())
    assert index.count([b.id]) == 200 and index.count([a.id, b.id]) == 500
    # Deleted in the catalog: gone from the index at its next sync, and from every filter.
    gone = [int(i) for i in found[:, 0]]
    catalog.delete_faces(gone)
    assert index.sync(catalog).deleted == len(set(gone))
    _, after = index.search(queries, 10)
    _, after_a = index.search_collections(queries, 10, [a.id])
    assert not set(gone) & (set(after.ravel().tolist()) | set(after_a.ravel().tolist()))
    assert index.verify(catalog)["ok"]
    assert index.rebuild(catalog)["faces"] == 500 - len(set(gone))
    index.close()


def test_an_unknown_back_end_is_named_with_the_known_ones(world):
    settings, catalog, _, _ = world
    settings = settings.model_copy(update={"index": settings.index.model_copy(
        update={"backend": "nosuch"})})  # fmt: skip
    with pytest.raises(FacesearchError, match="embedded, flat, milvus"):
        _open(settings, catalog)


def test_searches_in_many_threads_while_a_sync_adds_faces(world, tmp_path):
    settings, catalog, vectors, (a, _) = world
    index = _open(settings, catalog)
    index.sync(catalog)
    errors: list[BaseException] = []
    stop = threading.Event()
    queries = vectors[500:510]

    def search() -> None:
        while not stop.is_set():
            try:
                _, found = index.search_collections(queries, 5, [a.id])
                assert (found >= 0).all()
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    writer = open_catalog(settings)
    for step in range(5):
        _store(writer, a, vectors[500 + step * 20 : 520 + step * 20], f"more{step}")
        index.sync(writer)
    stop.set()
    for thread in threads:
        thread.join()
    writer.close()
    assert not errors, errors[0]
    assert index.count([a.id]) == 400
    index.close()


def test_a_large_collection_is_searched_in_its_own_lists_and_stays_exact(world, tmp_path):
    """Above FILTER_EXACT_MAX faces a collection gets inverted lists of its own; with every
    list probed and flat codes they must give exactly the exact search's answer, also
    after more faces arrive and some are deleted."""
    settings, catalog, vectors, (a, b) = world
    index_settings = settings.index.model_copy(update={
        "approx_min_faces": 300, "factory": "IVF8,Flat", "nprobe": 8, "filter_exact_max": 100,
    })  # fmt: skip
    settings = settings.model_copy(update={"index": index_settings})
    index = _open(settings, catalog)
    index.sync(catalog)
    assert index.approximate
    ids = catalog.model_face_ids(MODEL, VERSION)
    queries = vectors[500:520]

    def exact(collection_ids):
        rows = catalog.faces(ids)
        members = [i for i in ids if rows[int(i)].collection in collection_ids]
        stored = catalog.embeddings_of(np.array(members))
        matrix = np.vstack([stored[int(i)] for i in members])
        return np.array(members)[np.argsort(-(queries @ matrix.T), axis=1)[:, :10]]

    for names in (["a"], ["b"], ["a", "b"]):
        chosen = [c.id for c in (a, b) if c.name in names]
        _, found = index.search_collections(queries, 10, chosen)
        assert np.array_equal(found, exact(names)), names
    _store(catalog, a, vectors[500:600], "more")
    catalog.delete_faces([int(i) for i in exact(["a"])[:, 0]])
    index.sync(catalog)
    ids = catalog.model_face_ids(MODEL, VERSION)
    _, found = index.search_collections(queries, 10, [a.id])
    assert np.array_equal(found, exact(["a"]))
    index.close()


def test_collection_filters_probe_lists_by_their_share_of_the_index(world):
    """A small share's own lists are probed in proportion (all of them below nprobe/nlist),
    so with flat codes its answer is exact although an unfiltered search probes a quarter
    of the lists; most of the index goes through the shared lists, all of it unfiltered."""
    settings, catalog, vectors, (a, b) = world
    c = catalog.create_collection("c", "LFW", "test")
    _store(catalog, c, vectors[520:600], "c")
    index_settings = settings.index.model_copy(update={
        "approx_min_faces": 300, "factory": "IVF8,Flat", "nprobe": 2, "filter_exact_max": 50,
    })  # fmt: skip
    index = _open(settings.model_copy(update={"index": index_settings}), catalog)
    index.sync(catalog)
    assert index.approximate
    # b and c (each below half of the index, above filter_exact_max) get own lists; a
    # (300 of 580) is searched in the shared ones.
    assert index.warm() == 2
    ids = catalog.model_face_ids(MODEL, VERSION)
    rows = catalog.faces(ids)
    queries = vectors[500:520]

    def exact(collections):
        members = np.array([i for i in ids if rows[int(i)].collection in collections])
        stored = catalog.embeddings_of(members)
        matrix = np.vstack([stored[int(i)] for i in members])
        return members[np.argsort(-(queries @ matrix.T), axis=1)[:, :10]]

    _, found = index.search_collections(queries, 10, [c.id])  # 80 of 580 faces
    assert np.array_equal(found, exact(["c"]))
    _, found = index.search_collections(queries, 10, [a.id, b.id])  # 500 of 580
    assert {rows[int(i)].collection for i in found.ravel()} <= {"a", "b"}
    overlap = [len(set(f) & set(t)) for f, t in zip(found, exact(["a", "b"]), strict=True)]
    assert np.mean(overlap) > 5
    assert np.array_equal(index.search_collections(queries, 10, [a.id, b.id, c.id])[1],
                          index.search(queries, 10)[1])  # fmt: skip
    index.close()
    every_list = index_settings.model_copy(update={"nprobe": 8})
    index = _open(settings.model_copy(update={"index": every_list}), catalog)
    _, found = index.search_collections(queries, 10, [a.id, b.id])
    assert np.array_equal(found, exact(["a", "b"]))
    catalog.delete_faces([int(i) for i in found[:, 0]])
    index.sync(catalog)
    ids = catalog.model_face_ids(MODEL, VERSION)
    _, found = index.search_collections(queries, 10, [a.id, b.id])
    assert np.array_equal(found, exact(["a", "b"]))
    index.close()
