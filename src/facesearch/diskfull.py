"""Writes that fail for want of space become one clear `StorageError`, not a traceback.

The catalog's transactions and the index's file writes pass their failures through
here; what was committed before the failed write is kept either way (the catalog rolls
the transaction back, the index never counts bytes its manifest has not recorded).
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import StorageError

_REASONS = {
    errno.ENOSPC: "no space is left on its disk",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "it reached the file size limit (ulimit -f)",
}
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
AFTER = "what was stored before is kept; free some space and run it again"


def from_os_error(exc: BaseException, path: Path) -> StorageError | None:
    """The clear error for a write of `path` that failed for want of space, else None."""
    if isinstance(exc, OSError) and exc.errno in _REASONS:
        return StorageError(f"could not write {path}: {_REASONS[exc.errno]}; {AFTER}")
    return None


def from_sqlite_error(exc: BaseException, path: Path) -> StorageError | None:
    """The clear error for a catalog write that failed (SQLITE_FULL, SQLITE_IOERR*)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return None
    if code & 0xFF == _SQLITE_FULL:
        reason = "its disk is full"
    elif code & 0xFF == _SQLITE_IOERR:
        reason = "a disk I/O error (a full disk, a file size limit or a failing device)"
    else:
        return None
    return StorageError(f"could not write the catalog {path}: {reason}; {AFTER}")


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failed write of `path` for want of space into a `StorageError`."""
    try:
        yield
    except OSError as exc:
        clear = from_os_error(exc, path)
        if clear is None:
            raise
        raise clear from exc
