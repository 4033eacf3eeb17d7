"""Engine behaviour that spans the catalog and the index."""

import shutil

import pytest

from facesearch.engine import Engine
from facesearch.errors import ModelMismatch


def test_search_never_compares_embeddings_of_different_models(engine, wild, analyzer):
    engine.create_collection("c", "test", "test")
    engine.ingest([wild / "img2.jpg", wild / "couple.jpg"], "c")
    probe = (wild / "img2.jpg").read_bytes()
    assert engine.search(probe, top_k=1).hits[0].score > 0.99
    # The same faces, as if embedded by an earlier version of the model; the
    # index, derived from the catalog, is dropped and rebuilt from it on open.
    with engine.catalog.transaction() as conn:
        conn.execute("UPDATE faces SET model_version = 'older'")
    engine.reload_index()
    shutil.rmtree(engine.settings.index_dir)
    with (
        Engine(engine.settings, analyzer=analyzer) as reopened,
        pytest.raises(ModelMismatch, match="cannot be compared"),
    ):
        reopened.search(probe)


def test_an_empty_catalog_returns_no_matches(engine, wild):
    result = engine.search((wild / "img2.jpg").read_bytes())
    assert result.hits == [] and len(result.probe_faces) == 1
