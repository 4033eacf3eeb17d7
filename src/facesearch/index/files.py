"""Crash-safe file primitives for the on-disk index.

Whole files are replaced by writing a temporary name, fsyncing it, renaming it
over the old one and fsyncing the folder, so a reader or a process killed at any
moment sees either the old file or the new one, never a torn mixture.
Append-only files are only trusted up to a length that a manifest, replaced
atomically, has recorded; bytes past it are a torn append: cut off on open, and
overwritten by the next append of a process that went on after a failed write.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .. import faults
from ..diskfull import writing


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(tmp), tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        # A full disk: give back what the half-written copy holds.
        tmp.unlink(missing_ok=True)
        raise
    faults.point("index_write", f"{tmp.name} written, not renamed")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def append(path: Path, data: bytes, offset: int) -> None:
    """Write `data` at `offset`, the length the manifest has committed. Bytes past it
    are the torn tail of a write that failed (a full disk) in a process that went on:
    appending after them would put every later row at the wrong place."""
    with writing(path), path.open("r+b" if path.exists() else "w+b") as f:
        f.seek(offset)
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def truncate(path: Path, size: int) -> None:
    """Cut a torn tail; a file shorter than the committed length is corruption."""
    actual = path.stat().st_size if path.exists() else 0
    if actual < size:
        raise OSError(f"{path} holds {actual} bytes but {size} were committed")
    if actual > size:
        with path.open("r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())


def mapped(path: Path, dtype: str, rows: int, dim: int | None = None) -> np.ndarray:
    """A read-only memory map of the first `rows` rows (an empty array for none)."""
    shape = (rows,) if dim is None else (rows, dim)
    if rows == 0:
        return np.zeros(shape, dtype=dtype)
    # A plain ndarray view of the map: indexing a np.memmap subclass is several times slower.
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", shape=shape))


@contextmanager
def locked(path: Path, exclusive: bool, wait: bool = True) -> Iterator[bool]:
    """An advisory lock shared by every process that opens the same index; whether it
    was taken (always, unless `wait` is False and another process holds it)."""
    with path.open("a") as f:
        try:
            flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
            fcntl.flock(f.fileno(), flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class RowCipher:
    """AES-256-CTR over the rows of an append-only vectors file, so it can stay
    memory-mapped yet hold no plain embedding: any row is decrypted on its own
    (the counter is the byte offset), a block of rows in one call.

    Format 1, without integrity: kept only to read indexes of earlier versions, which
    are rewritten as AES-GCM blocks (sealed.py) when opened.

    Each file gets its own nonce (derived from its name, which carries the
    generation), so a key never encrypts two files with the same keystream."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def _iv(self, name: str, offset: int) -> bytes:
        nonce = hashlib.sha256(name.encode()).digest()[:8]
        return nonce + (offset // 16).to_bytes(8, "big")

    def keystream(self, name: str, rows: np.ndarray, row_bytes: int) -> np.ndarray:
        """The CTR keystream of scattered rows in one AES call: their counter blocks
        encrypted with ECB are exactly what CTR would have XORed them with."""
        per_row = row_bytes // 16
        counters = (rows[:, None] * per_row + np.arange(per_row)[None, :]).ravel()
        blocks = np.empty((len(counters), 16), dtype=np.uint8)
        blocks[:, :8] = np.frombuffer(hashlib.sha256(name.encode()).digest()[:8], np.uint8)
        blocks[:, 8:] = counters.astype(">u8").view(np.uint8).reshape(-1, 8)
        engine = Cipher(algorithms.AES(self.key), modes.ECB()).encryptor()
        return np.frombuffer(engine.update(blocks.tobytes()), dtype=np.uint8)

    def crypt(self, name: str, offset: int, data: bytes) -> bytes:
        """Encrypts or decrypts (the same operation in CTR mode); `offset` % 16 == 0."""
        engine = Cipher(algorithms.AES(self.key), modes.CTR(self._iv(name, offset))).encryptor()
        return engine.update(data) + engine.finalize()


class SealedRows:
    """Rows of a `RowCipher`-encrypted, memory-mapped float32 file, read like an array."""

    def __init__(self, raw: np.ndarray, cipher: RowCipher, name: str, dim: int) -> None:
        self.raw = raw  # (rows, dim * 4) uint8
        self.cipher = cipher
        self.name = name
        self.dim = dim
        self.row_bytes = dim * 4
        self.shape = (len(raw), dim)

    def __len__(self) -> int:
        return len(self.raw)

    def _range(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros((0, self.dim), dtype=np.float32)
        plain = self.cipher.crypt(self.name, start * self.row_bytes, self.raw[start:stop].tobytes())
        return np.frombuffer(plain, dtype="<f4").reshape(stop - start, self.dim)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            rows = self._range(start, stop)
            return rows if step == 1 else rows[::step]
        if isinstance(index, int | np.integer):
            i = int(index) + (len(self) if index < 0 else 0)
            return self._range(i, i + 1)[0]
        slots = np.asarray(index, dtype=np.int64)
        if not len(slots):
            return np.zeros((0, self.dim), dtype=np.float32)
        if np.all(np.diff(slots) == 1):
            return self._range(int(slots[0]), int(slots[-1]) + 1)
        slots = np.where(slots < 0, slots + len(self), slots)
        stream = self.cipher.keystream(self.name, slots, self.row_bytes)
        plain = np.bitwise_xor(np.asarray(self.raw[slots]).reshape(-1), stream)
        return plain.view("<f4").reshape(len(slots), self.dim)


def mapped_rows(
    path: Path, rows: int, dim: int, cipher: RowCipher | None
) -> np.ndarray | SealedRows:
    """The vectors file as float32 rows: a plain map, or one decrypted on read."""
    if cipher is None:
        return mapped(path, "<f4", rows, dim)
    raw = mapped(path, "u1", rows, dim * 4)
    return SealedRows(raw, cipher, path.name, dim)


def vector_bytes(cipher: RowCipher | None, name: str, first_row: int, vectors: np.ndarray) -> bytes:
    data = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    if cipher is None:
        return data
    return cipher.crypt(name, first_row * vectors.shape[1] * 4, data)
