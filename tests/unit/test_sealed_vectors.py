"""The sealed vectors file (AES-256-GCM blocks): every flipped byte is caught, no
(key, nonce) pair is ever used twice, a torn append keeps what was committed, and an
index written with the older AES-CTR rows is migrated without losing a face."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from facesearch.config import IndexSettings
from facesearch.index.files import RowCipher, append, vector_bytes
from facesearch.index.persistent import PersistentIndex, _derive
from facesearch.index.sealed import (
    HEADER,
    NONCE,
    TAG,
    GcmBlocks,
    IndexDamaged,
    rows_per_block,
)

DIM = 128
EXACT = {"approx_min_faces": 10**9}
IVF = {"approx_min_faces": 1, "factory": "IVF16,Flat", "nprobe": 16}


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class Source:
    """The catalog calls `rebuild` makes, over arrays (the real catalog is in
    tests/cli/test_sealed_index_cli.py)."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.vectors = ids, vectors

    def index_marks(self) -> tuple[int, int]:
        return int(self.ids[-1]), 0

    def embeddings_between(self, model, version, after, upto, limit):
        chosen = (self.ids > after) & (self.ids <= upto)
        return self.ids[chosen][:limit], self.vectors[chosen][:limit]

    def collection_ids_of(self, ids: np.ndarray) -> np.ndarray:
        return np.ones(len(ids), dtype=np.int64)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _positions(rows: int) -> list[tuple[str, int]]:
    """Every header byte; a nonce, a body and a tag byte of each block and of the
    committed tail (which is in slot 0 after a single append)."""
    layout = GcmBlocks(os.urandom(32), DIM)
    r = rows_per_block(DIM)
    slot, block = layout._tail_slot(r), layout._block_size(r)
    found = [(f"header byte {n}", n) for n in range(HEADER)]
    tail = HEADER
    found += [("tail row count", tail), ("tail nonce", tail + 4),
              ("tail body", tail + 4 + NONCE + 100),
              ("tail tag", tail + 4 + NONCE + (rows % r) * DIM * 4 + TAG - 1)]  # fmt: skip
    start = layout._data_start(r)
    for i in range(rows // r):
        at = start + i * block
        found += [(f"block {i} nonce", at), (f"block {i} body", at + NONCE + 7 + i % 300),
                  (f"block {i} tag", at + block - 1)]  # fmt: skip
    assert slot > 0
    return found


def test_every_flipped_byte_of_a_sealed_vectors_file_is_caught(tmp_path):
    rows = 203  # 25 full blocks of 8 rows and a tail of 3
    assert rows_per_block(DIM) == 8
    vectors = _vectors(rows)
    key = os.urandom(32)
    clean = tmp_path / "clean"
    index = PersistentIndex(clean, "m", "1", DIM, IndexSettings(**EXACT), key)
    index.add(np.arange(1, rows + 1), vectors)
    index.close()
    name = index.m.vectors_file
    layout = GcmBlocks(_derive(key, b"rows"), DIM)
    assert layout.check(clean / name, rows) == []
    positions = _positions(rows)
    for what, offset in positions:
        folder = tmp_path / "tampered"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(clean, folder)
        _flip(folder / name, offset)
        problems = layout.check(folder / name, rows)
        # Opening reads the header and the tail; a block is caught when it is read.
        try:
            tampered = PersistentIndex(folder, "m", "1", DIM, IndexSettings(**EXACT), key)
            with pytest.raises(IndexDamaged):
                tampered.search(vectors[:2], 5)
        except IndexDamaged as exc:
            problems = problems or [str(exc)]
        assert problems and "index rebuild" in problems[0], what
    # A cut file (a lost tail block) is caught too.
    shutil.rmtree(folder)
    shutil.copytree(clean, folder)
    size = (folder / name).stat().st_size
    with (folder / name).open("r+b") as f:
        f.truncate(size - 1000)
    assert layout.check(folder / name, rows)
    print(f"tamper positions tried: {len(positions) + 1}")


def test_a_flipped_byte_of_the_ivf_file_is_caught_and_rebuild_repairs(tmp_path):
    vectors = _vectors(600)
    ids = np.arange(1, 601)
    key = os.urandom(32)
    index = PersistentIndex(tmp_path, "m", "1", DIM, IndexSettings(**IVF), key)
    index.add(ids, vectors)
    index.train()
    expected = index.search(vectors[:5], 3)[1]
    ivf = tmp_path / index.m.ivf_file
    for offset in (0, 11, 12, ivf.stat().st_size // 2, ivf.stat().st_size - 1):
        original = ivf.read_bytes()
        _flip(ivf, offset)
        damaged = PersistentIndex(tmp_path, "m", "1", DIM, IndexSettings(**IVF), key)
        with pytest.raises(IndexDamaged, match="fails authentication"):
            damaged.search(vectors[:1], 1)
        ivf.write_bytes(original)
    _flip(ivf, 40)
    damaged = PersistentIndex(tmp_path, "m", "1", DIM, IndexSettings(**IVF), key)
    damaged.rebuild(Source(ids, vectors))
    np.testing.assert_array_equal(damaged.search(vectors[:5], 3)[1], expected)


def _records(folder: Path, key: bytes, seen: dict[tuple[bytes, bytes], bytes]) -> None:
    """Add every (key, nonce) -> sealed bytes of the folder's files; fail on a reuse."""
    layout = GcmBlocks(_derive(key, b"rows"), DIM)
    found = []
    for path in folder.glob("vectors-*.f32"):
        found += list(layout.records(path))
    for path in folder.glob("ivf-*.faiss"):
        data = path.read_bytes()
        found.append((b"ivf", data[:NONCE], data[NONCE:]))
    for file_key, nonce, sealed in found:
        earlier = seen.setdefault((file_key, nonce), sealed)
        assert earlier == sealed, f"(key, nonce) {nonce.hex()} sealed two different texts"


def test_no_two_generations_or_appends_share_a_key_and_nonce(tmp_path):
    vectors = _vectors(2500)
    ids = np.arange(1, 2501)
    key = os.urandom(32)
    folder = tmp_path / "index"
    seen: dict[tuple[bytes, bytes], bytes] = {}
    salts = set()
    rng = np.random.default_rng(3)
    index = PersistentIndex(folder, "m", "1", DIM, IndexSettings(**EXACT), key)
    at = 0
    for round_ in range(12):
        # Appends of odd sizes rewrite the tail each time, always with a fresh nonce.
        for _ in range(6):
            step = int(rng.integers(1, 30))
            index.add(ids[at : at + step], vectors[at : at + step])
            at += step
            _records(folder, key, seen)
        index.remove(rng.choice(ids[:at], 3, replace=False))
        if round_ % 3 == 2:
            index.rebuild(Source(ids[:at], vectors[:at]))
        else:
            index.compact()
        salts.add((folder / index.m.vectors_file).read_bytes()[16:48])
        _records(folder, key, seen)
        if round_ == 5:
            # The same file names written again: the folder deleted and the index rebuilt
            # from generation 0, the case where a name-derived nonce would repeat.
            index.close()
            shutil.rmtree(folder)
            index = PersistentIndex(folder, "m", "1", DIM, IndexSettings(**EXACT), key)
            index.rebuild(Source(ids[:at], vectors[:at]))
            salts.add((folder / index.m.vectors_file).read_bytes()[16:48])
            _records(folder, key, seen)
    # With the IVF, whose file is written again at each checkpoint and compaction.
    index.settings = IndexSettings(**IVF)
    for _ in range(3):
        index.train()
        index.compact()
        _records(folder, key, seen)
    keys = {k for k, _ in seen}
    assert len(salts) == 13 and len(keys) >= 13
    assert len(seen) > 500
    print(f"(key, nonce) pairs, all distinct: {len(seen)} over {len(keys)} keys")


def test_a_torn_append_keeps_the_committed_tail(tmp_path):
    vectors = _vectors(40)
    key = os.urandom(32)
    layout = GcmBlocks(_derive(key, b"rows"), DIM)
    path = tmp_path / "vectors-0.f32"
    layout.append(path, 0, vectors[:13])  # a block of 8 and a tail of 5 in slot 0
    committed = path.read_bytes()
    # The next append writes slot 1 and new blocks; cut it short at every length.
    layout.append(path, 13, vectors[13:30])
    whole = path.read_bytes()
    for cut in range(len(committed), len(whole), 97):
        torn = bytearray(whole[:cut])
        torn[HEADER : len(committed)] = committed[HEADER:]  # slot 0 untouched by design
        path.write_bytes(bytes(torn))
        reader = layout.open(path, 13)
        np.testing.assert_array_equal(reader[0:13], vectors[:13])
    path.write_bytes(whole)
    np.testing.assert_array_equal(layout.open(path, 30)[np.array([29, 0, 17, 8])],
                                  vectors[[29, 0, 17, 8]])  # fmt: skip


def test_an_index_with_aes_ctr_rows_is_migrated_on_open(tmp_path):
    """What an earlier version wrote (format 1, sealed): read once, rewritten in blocks."""
    vectors = _vectors(500)
    ids = np.arange(1, 501, dtype="<i8")
    key = os.urandom(32)
    cipher = RowCipher(_derive(key, b"rows"))
    append(tmp_path / "vectors-3.f32", vector_bytes(cipher, "vectors-3.f32", 0, vectors), 0)
    append(tmp_path / "ids-3.i64", ids.tobytes(), 0)
    append(tmp_path / "tombstones-3.i64", np.array([7], "<i8").tobytes(), 0)
    manifest = {"model": "m", "model_version": "1", "dim": DIM, "generation": 3, "count": 500,
                "tombstones": 1, "face_watermark": 500, "deletion_seq": 0, "ivf_file": None,
                "ivf_factory": None, "ivf_count": 0, "format": 1, "sealed": True}  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    index = PersistentIndex(tmp_path, "m", "1", DIM, IndexSettings(**EXACT), key)
    assert index.m.vectors_format == 2 and index.m.generation == 4 and len(index) == 499
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ids-4.i64", "lock", "manifest.json", "tombstones-4.i64", "vectors-4.f32"]  # fmt: skip
    found = index.search(vectors[[0, 6, 499]], 1)[1][:, 0]
    assert found[0] == 1 and found[1] != 7 and found[2] == 500
    layout = GcmBlocks(_derive(key, b"rows"), DIM)
    assert layout.check(tmp_path / "vectors-4.f32", 499) == []
