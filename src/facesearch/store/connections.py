"""One database connection per thread, for stores the server uses from many threads.

The server answers requests on a pool of threads and runs ingest jobs on
another; a connection must not be shared between them without a lock, so each
thread gets its own (SQLite's WAL and PostgreSQL's MVCC let readers and one
writer work at once).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .database import Connection, connect, is_url
from .migrations import migrate


class ThreadConnections:
    def __init__(self, target: Path | str) -> None:
        """`target`: a SQLite file or a postgresql:// URL."""
        if not is_url(target):
            target = Path(target)
            target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()
        migrate(self.get())

    def get(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.target, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        conn = self.get()
        conn.begin()
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
