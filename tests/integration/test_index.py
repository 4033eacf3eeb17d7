"""The persistent vector index on real SFace embeddings of LFW faces.

Recall of the approximate index against exact search, deletes that hold across
reopening and compaction, torn writes cut off on open, and collection filters.
"""

from pathlib import Path

import numpy as np
import pytest

from facesearch.config import IndexSettings
from facesearch.index.flat import FlatIndex
from facesearch.index.persistent import PersistentIndex

K = 10


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def _split(vectors: np.ndarray, labels: np.ndarray, probes: int = 100):
    """Hold out one face each of `probes` people with several images; ids start at 1."""
    _, first, counts = np.unique(labels, return_index=True, return_counts=True)
    held = np.sort(first[counts >= 2][:probes])
    keep = np.setdiff1d(np.arange(len(vectors)), held)
    return np.arange(1, len(keep) + 1), vectors[keep], vectors[held]


def _open(folder: Path, **settings) -> PersistentIndex:
    return PersistentIndex(folder, "sface-2021dec", "test", 128, IndexSettings(**settings))


def test_approximate_recall_against_exact_on_real_faces(lfw_embeddings, tmp_path):
    ids, vectors, probes = _split(*lfw_embeddings)
    assert len(ids) > 1000
    flat = FlatIndex(128)
    flat.add(ids, vectors)
    _, truth = flat.search(probes, K)

    index = _open(tmp_path, approx_min_faces=1, factory="IVF64,PQ16", nprobe=4)
    index.add(ids, vectors)
    index.train()
    assert index.approximate
    recalls = {}
    for nprobe in (1, 4, 16, 64):
        index.settings = index.settings.model_copy(update={"nprobe": nprobe})
        recalls[nprobe] = _recall(index.search(probes, K)[1], truth)
    # Probing more lists finds more true neighbours (on these few faces the ten
    # nearest are mostly other people, spread over many lists); all lists with
    # exact re-ranking of 20 k candidates is as good as exact.
    assert recalls[1] < recalls[4] < recalls[16] <= recalls[64]
    assert recalls[16] >= 0.8
    assert recalls[64] >= 0.98
    # Scores of the re-ranked results are exact inner products, not PQ estimates.
    scores, found = index.search(probes, K)
    assert np.allclose(scores[:, 0], np.sum(vectors[found[:, 0] - 1] * probes, 1), atol=1e-5)

    # A reopened index (read back from disk) answers the same.
    again = _open(tmp_path, approx_min_faces=1, factory="IVF64,PQ16", nprobe=64)
    assert again.approximate and len(again) == len(ids)
    assert np.array_equal(again.search(probes, K)[1], found)


@pytest.mark.parametrize("approx_min_faces", [10**9, 1], ids=["exact", "ivf"])
def test_a_deleted_face_is_never_returned(lfw_embeddings, tmp_path, approx_min_faces):
    ids, vectors, _ = _split(*lfw_embeddings)
    index = _open(tmp_path, approx_min_faces=approx_min_faces)
    index.add(ids, vectors)
    if approx_min_faces == 1:
        index.train()
    victims = ids[::7]
    # Each victim is its own nearest neighbour before the delete.
    assert np.array_equal(index.search(vectors[victims - 1], 1)[1][:, 0], victims)
    index.remove(victims)
    for reopened in (index, _open(tmp_path, approx_min_faces=approx_min_faces)):
        found = reopened.search(vectors[victims - 1], K)[1]
        assert not np.isin(found, victims).any()
        assert (found >= 0).all()  # the rest of the index still answers
        assert len(reopened) == len(ids) - len(victims)
    compacted = _open(tmp_path, approx_min_faces=approx_min_faces)
    report = compacted.compact()
    assert report["removed"] == len(victims)
    assert not np.isin(compacted.search(vectors[victims - 1], K)[1], victims).any()
    assert not np.isin(_open(tmp_path).live_ids(), victims).any()


def test_torn_writes_are_cut_off_on_open(lfw_embeddings, tmp_path):
    ids, vectors, _ = _split(*lfw_embeddings)
    index = _open(tmp_path)
    index.add(ids[:500], vectors[:500])
    # What a process killed in the middle of an append or a compaction leaves behind.
    with (tmp_path / "vectors-0.f32").open("ab") as f:
        f.write(vectors[600].tobytes()[:100])
    with (tmp_path / "ids-0.i64").open("ab") as f:
        f.write(np.int64(10**6).tobytes())
    (tmp_path / "vectors-1.f32").write_bytes(b"half a generation")
    (tmp_path / "manifest.json.tmp").write_text("{")
    reopened = _open(tmp_path)
    assert len(reopened) == 500
    assert (tmp_path / "vectors-0.f32").stat().st_size == 500 * 128 * 4
    assert not (tmp_path / "vectors-1.f32").exists()
    assert not (tmp_path / "manifest.json.tmp").exists()
    reopened.add(ids[500:], vectors[500:])
    assert np.array_equal(_open(tmp_path).live_ids(), ids)


def test_filters_return_only_allowed_faces_without_losing_recall(lfw_embeddings, tmp_path):
    ids, vectors, probes = _split(*lfw_embeddings)
    collection = np.random.default_rng(0).integers(0, 3, len(ids))
    allowed = ids[collection == 1]
    flat = FlatIndex(128)
    flat.add(allowed, vectors[allowed - 1])
    _, truth = flat.search(probes, K)
    index = _open(tmp_path, approx_min_faces=1, factory="IVF64,PQ16", nprobe=16)
    index.add(ids, vectors)
    index.train()
    # filter_exact_max 0: the filtered IVF path; the default: exact over the allowed faces.
    for exact_max, least in ((0, 0.9), (50_000, 1.0)):
        index.settings = index.settings.model_copy(update={"filter_exact_max": exact_max})
        found = index.search(probes, K, allowed=allowed)[1]
        assert np.isin(found[found >= 0], allowed).all()
        assert _recall(found, truth) >= least
