"""Re-embedding a collection with another recogniser: resumable, whole or not at all."""

from __future__ import annotations

import shutil

import pytest

from facesearch import reembed as reembed_module
from facesearch.engine import Engine
from facesearch.errors import ModelMismatch
from facesearch.reembed import reembed

pytest.importorskip("dlib", reason="the second recogniser here is dlib's (pip install .[dlib])")

PEOPLE = ("Colin_Powell", "George_W_Bush", "Tony_Blair")


@pytest.fixture
def stored(settings, analyzer, lfw, tmp_path):
    """Three photos each of three people, copied so a test may remove one."""
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for name in PEOPLE:
        for image in sorted((lfw / name).glob("*.jpg"))[:3]:
            paths.append(shutil.copy(image, folder / image.name))
    with Engine(settings, analyzer=analyzer) as engine:
        engine.create_collection("press", "test", "test")
        engine.ingest(paths, "press")
        sface_faces = engine.catalog.stats()["faces"]
    return settings, paths, sface_faces


def test_interrupted_reembed_resumes_and_search_switches_only_when_complete(
    stored, lfw, monkeypatch
):
    settings, _, sface_faces = stored
    monkeypatch.setattr(reembed_module, "BATCH_IMAGES", 2)
    dlib_settings = settings.model_copy(update={"embedder": "dlib-resnet-v1"})
    probe = (lfw / "Colin_Powell" / "Colin_Powell_0010.jpg").read_bytes()

    def interrupt(report):
        raise KeyboardInterrupt

    with Engine(settings) as engine:
        collection = engine.catalog.collection("press")
        with pytest.raises(KeyboardInterrupt):
            reembed(settings, engine.catalog, collection, "dlib-resnet-v1", progress=interrupt)
    # Half done: a search with the new model does not see the collection at all.
    with Engine(dlib_settings) as engine, pytest.raises(ModelMismatch):
        engine.search(probe)
    with Engine(settings) as engine:
        collection = engine.catalog.collection("press")
        report = reembed(settings, engine.catalog, collection, "dlib-resnet-v1")
        assert report.completed and report.faces_added == sface_faces
        assert report.images_total == len(PEOPLE) * 3 - 2  # the first batch was kept
        again = reembed(settings, engine.catalog, collection, "dlib-resnet-v1")
        assert again.completed and again.faces_added == 0 and again.images_total == 0
        assert engine.catalog.stats()["faces"] == 2 * sface_faces
    with Engine(dlib_settings) as engine:
        result = engine.search(probe, top_k=3)
        assert result.hits[0].path.endswith(tuple(f"Colin_Powell_000{i}.jpg" for i in (1, 2, 3)))
        assert result.searched_faces == sface_faces
    # The SFace faces are untouched and still searched by an SFace engine.
    with Engine(settings) as engine:
        assert engine.search(probe, top_k=3).searched_faces == sface_faces


def test_a_missing_file_keeps_the_collection_incomplete_unless_skipped(stored):
    settings, paths, sface_faces = stored
    paths[0].unlink()
    with Engine(settings) as engine:
        collection = engine.catalog.collection("press")
        report = reembed(settings, engine.catalog, collection, "dlib-resnet-v1")
        assert not report.completed and report.missing == [str(paths[0])]
        report = reembed(settings, engine.catalog, collection, "dlib-resnet-v1",
                         skip_missing=True)  # fmt: skip
        assert report.completed and 0 < report.faces_added < sface_faces
