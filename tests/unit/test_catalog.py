import numpy as np
import pytest
from postgres import open_catalog

from facesearch.errors import FacesearchError, NotFound
from facesearch.store.migrations import MIGRATIONS
from facesearch.types import Detection, FaceRecord, ImageResult, SourceItem


@pytest.fixture
def catalog(catalog_location, tmp_path):
    """A fresh catalog, once on SQLite and once on PostgreSQL."""
    with open_catalog(catalog_location, tmp_path) as catalog:
        yield catalog


def _result(name: str, sha: str, faces: int = 1, error: str | None = None) -> ImageResult:
    rng = np.random.default_rng(abs(hash(sha)) % 2**32)
    records = []
    for n in range(faces):
        vector = rng.normal(size=128).astype(np.float32)
        detection = Detection((10.0 * n, 5.0, 40.0, 50.0), np.zeros((5, 2), np.float32), 0.9)
        records.append(FaceRecord(detection, vector / np.linalg.norm(vector), 0.8, b"jpeg"))
    return ImageResult(SourceItem(__import__("pathlib").Path(f"/x/{name}")), sha, 100,
                       width=200, height=100, faces=records, error=error)  # fmt: skip


def test_migrations_are_recorded_and_run_once(catalog_location, tmp_path):
    open_catalog(catalog_location, tmp_path).close()
    with open_catalog(catalog_location, tmp_path) as catalog:
        names = [r[0] for r in catalog.conn.execute("SELECT name FROM migrations ORDER BY name")]
    assert names == sorted(name for name, _ in MIGRATIONS)


def test_collection_needs_its_declaration_and_a_unique_name(catalog):
    catalog.create_collection("press", "Agency archive", "contract 12/2024", 365)
    with pytest.raises(FacesearchError, match="already exists"):
        catalog.create_collection("press", "x", "y")
    with pytest.raises(FacesearchError, match="legal basis"):
        catalog.create_collection("other", "Agency", "  ")
    with pytest.raises(NotFound, match="collections create"):
        catalog.collection("missing")
    assert catalog.collection("press").retention_days == 365


def test_storing_the_same_content_twice_stores_it_once(catalog):
    press = catalog.create_collection("press", "s", "b")
    run = catalog.start_run(press, ["/x"])
    batch = [_result("a.jpg", "aa", faces=2), _result("b.jpg", "bb", faces=1)]
    assert catalog.store_results(press, run, batch, "m", "1") == (2, 3, 0)
    # A batch replayed after a crash adds nothing.
    assert catalog.store_results(press, run, batch, "m", "1") == (0, 0, 0)
    assert catalog.stats()["images"] == 2 and catalog.stats()["faces"] == 3
    # The same content in another collection is that collection's own image.
    other = catalog.create_collection("other", "s", "b")
    assert catalog.store_results(other, run, batch[:1], "m", "1") == (1, 2, 0)


def test_a_failing_batch_leaves_nothing_behind(catalog):
    press = catalog.create_collection("press", "s", "b")
    run = catalog.start_run(press, ["/x"])
    broken = _result("c.jpg", "cc")
    broken.faces[0].embedding = "not a vector"  # fails inside the transaction
    with pytest.raises(ValueError, match="could not convert"):
        catalog.store_results(press, run, [_result("a.jpg", "aa"), broken], "m", "1")
    assert catalog.stats()["images"] == 0 and catalog.stats()["faces"] == 0


def test_errors_are_kept_once_per_file_and_cleared_by_success(catalog):
    press = catalog.create_collection("press", "s", "b")
    run = catalog.start_run(press, ["/x"])
    catalog.store_results(press, run, [_result("a.jpg", "aa", 0, error="truncated")], "m", "1")
    catalog.store_results(
        press, run, [_result("a.jpg", "aa", 0, error="still truncated")], "m", "1"
    )
    assert [e["reason"] for e in catalog.errors()] == ["still truncated"]
    catalog.store_results(press, run, [_result("a.jpg", "aa")], "m", "1")
    assert catalog.errors() == []


def test_embeddings_round_trip_and_filter_by_model_and_collection(catalog):
    press = catalog.create_collection("press", "s", "b")
    other = catalog.create_collection("other", "s", "b")
    run = catalog.start_run(press, ["/x"])
    first = _result("a.jpg", "aa", faces=2)
    catalog.store_results(press, run, [first], "m", "1")
    catalog.store_results(other, run, [_result("b.jpg", "bb")], "m", "1")
    catalog.store_results(other, run, [_result("c.jpg", "cc")], "m", "2")
    ids, vectors = catalog.embeddings("m", "1", [press])
    assert len(ids) == 2
    np.testing.assert_array_equal(vectors[0], first.faces[0].embedding)
    assert len(catalog.embeddings("m", "1")[0]) == 3
    assert sorted(catalog.face_models()) == [("m", "1", 3), ("m", "2", 1)]
    rows = catalog.faces(ids)
    assert {r.collection for r in rows.values()} == {"press"}
