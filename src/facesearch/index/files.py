"""Crash-safe file primitives for the on-disk index.

Whole files are replaced by writing a temporary name, fsyncing it, renaming it
over the old one and fsyncing the folder, so a reader or a process killed at any
moment sees either the old file or the new one, never a torn mixture.
Append-only files are only trusted up to a length that a manifest, replaced
atomically, has recorded; bytes past it are a torn append and are cut off.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


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
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)
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
def locked(path: Path, exclusive: bool) -> Iterator[None]:
    """An advisory lock shared by every process that opens the same index."""
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
