"""The persistent index with a key: same answers as without, no plain vector on disk."""

from __future__ import annotations

import os

import numpy as np

from facesearch.config import IndexSettings
from facesearch.index.persistent import PersistentIndex

# IVF with Flat codes: quick to train, and its file would hold every vector in clear.
SETTINGS = {"approx_min_faces": 1, "factory": "IVF16,Flat", "nprobe": 16}


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((count, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_sealed_index_answers_like_a_plain_one_and_hides_its_vectors(tmp_path):
    vectors, probes = _vectors(3000), _vectors(20, seed=1)
    ids = np.arange(1, len(vectors) + 1)
    key = os.urandom(32)
    answers = {}
    for name, k in (("plain", None), ("sealed", key)):
        index = PersistentIndex(tmp_path / name, "m", "1", 128, IndexSettings(**SETTINGS), k)
        index.add(ids[:2000], vectors[:2000])
        index.train()
        index.add(ids[2000:], vectors[2000:])
        index.remove(np.array([5, 6, 7]))
        answers[name] = index.search(probes, 10)
        index.close()
        assert index.approximate
    np.testing.assert_array_equal(answers["plain"][1], answers["sealed"][1])
    np.testing.assert_allclose(answers["plain"][0], answers["sealed"][0], atol=1e-6)
    exact = vectors @ probes.T
    assert np.allclose(answers["sealed"][0][:, 0], exact[answers["sealed"][1][:, 0] - 1,
                       np.arange(20)], atol=1e-5)  # fmt: skip

    # Reopened (IVF read back and decrypted), compacted and rebuilt, it still agrees.
    index = PersistentIndex(tmp_path / "sealed", "m", "1", 128, IndexSettings(**SETTINGS), key)
    np.testing.assert_array_equal(index.search(probes, 10)[1], answers["plain"][1])
    index.compact()
    np.testing.assert_array_equal(index.search(probes, 10)[1], answers["plain"][1])
    index.close()

    needles = [vectors[n].astype("<f4").tobytes()[:32] for n in (0, 1999, 2999)]
    plain_files = b"".join(p.read_bytes() for p in (tmp_path / "plain").iterdir() if p.is_file())
    assert all(n in plain_files for n in needles)  # the scan would see them
    for path in (tmp_path / "sealed").iterdir():
        data = path.read_bytes()
        assert not any(n in data for n in needles), path.name


def test_a_plain_index_opened_with_a_key_starts_again_and_leaves_no_plain_file(tmp_path):
    vectors = _vectors(300)
    ids = np.arange(1, 301)
    plain = PersistentIndex(tmp_path, "m", "1", 128, IndexSettings())
    plain.add(ids, vectors)
    plain.close()
    sealed = PersistentIndex(tmp_path, "m", "1", 128, IndexSettings(), os.urandom(32))
    assert len(sealed) == 0 and sealed.m.sealed  # refilled by the next sync from the catalog
    sealed.add(ids, vectors)
    assert sealed.search(vectors[:3], 1)[1][:, 0].tolist() == [1, 2, 3]
    needle = vectors[0].astype("<f4").tobytes()[:32]
    assert all(needle not in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
