"""Approximate candidates from a FAISS inverted-file index (IVF with PQ or SQ codes).

The IVF index holds only compressed codes and the slot number of each vector,
about `code bytes + 8` per face in RAM. It proposes candidates; the caller
re-ranks them exactly against the full vectors, which stay on disk. Back ends
are named by FAISS factory strings ("IVF4096,PQ32", "IVF1024,SQ8").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import faiss
import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import FacesearchError


def auto_factory(count: int, codes: str) -> str:
    """IVF with about sqrt(n) lists (a power of two): lists of a few thousand
    codes keep a probe cheap, and k-means over that many centroids trains in
    seconds to minutes on two cores."""
    nlist = 2 ** round(math.log2(max(count, 1) ** 0.5))
    return f"IVF{min(max(nlist, 64), 65536)},{codes}"


class IVFCandidates:
    def __init__(self, index: faiss.Index, factory: str) -> None:
        self.index = index
        self.factory = factory
        self.nlist = int(faiss.extract_index_ivf(index).nlist)

    @classmethod
    def train(cls, factory: str, sample: np.ndarray) -> IVFCandidates:
        if not factory.startswith("IVF"):
            raise FacesearchError(f"index factory {factory!r} is not an IVF index")
        try:
            index = faiss.index_factory(sample.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise FacesearchError(f"bad index factory {factory!r}: {exc}") from None
        try:
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
        except RuntimeError as exc:
            raise FacesearchError(
                f"cannot train {factory} on {len(sample)} faces (PQ codes need at least 256, "
                f"k-means one per list): {str(exc).splitlines()[-1]}"
            ) from None
        return cls(index, factory)

    @classmethod
    def read(cls, path: Path, factory: str, key: bytes | None = None) -> IVFCandidates:
        if key is None:
            return cls(faiss.read_index(str(path)), factory)
        # Codes approximate the embeddings, so they are sealed at rest too and
        # opened into memory here (tens of bytes per face).
        sealed = path.read_bytes()
        data = AESGCM(key).decrypt(sealed[:12], sealed[12:], b"ivf")
        return cls(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), factory)

    def write(self, path: Path, key: bytes | None = None) -> None:
        if key is None:
            faiss.write_index(self.index, str(path))
            return
        nonce = os.urandom(12)
        data = faiss.serialize_index(self.index).tobytes()
        path.write_bytes(nonce + AESGCM(key).encrypt(nonce, data, b"ivf"))

    def empty_copy(self) -> IVFCandidates:
        """The same trained quantizer and codebooks without any vectors."""
        clone = faiss.clone_index(self.index)
        clone.reset()
        return IVFCandidates(clone, self.factory)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, first_slot: int, vectors: np.ndarray) -> None:
        slots = np.arange(first_slot, first_slot + len(vectors), dtype=np.int64)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), slots)

    def search(
        self, queries: np.ndarray, count: int, nprobe: int, allowed_bits: np.ndarray | None
    ) -> np.ndarray:
        """Candidate slots, (len(queries), count); -1 where there are fewer."""
        return self.scored(queries, count, nprobe, allowed_bits)[1]

    def scored(
        self, queries: np.ndarray, count: int, nprobe: int, allowed_bits: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(approximate scores, candidate slots), each (len(queries), count)."""
        params = faiss.SearchParametersIVF(nprobe=min(nprobe, self.nlist))
        if allowed_bits is not None:
            # FAISS keeps a raw pointer: the selector must not outlive `allowed_bits`.
            params.sel = faiss.IDSelectorBitmap(len(allowed_bits), faiss.swig_ptr(allowed_bits))
        return self.index.search(queries, count, params=params)

    def ram_bytes(self) -> int:
        """What the index holds in memory: codes, slot ids and the coarse centroids."""
        ivf = faiss.extract_index_ivf(self.index)
        return int(ivf.ntotal) * (int(ivf.code_size) + 8) + ivf.nlist * ivf.d * 4
