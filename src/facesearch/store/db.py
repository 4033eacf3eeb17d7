"""The one owner of the catalog database: one writer connection, a reader per thread.

Every store (catalog aggregates, accounts, jobs, leases, the audit log) takes a
`Database` and asks it for connections; nothing else connects. Like
sqlite-utils' `Database` nested `transaction()` blocks become savepoints, and
like datasette's the single write connection serves one thread at a time while
each thread reads on a connection of its own that refuses writes.

Inside a thread's transaction `conn` is the writer, so a store reads what the
transaction has written so far; outside one it is the thread's reader. Write
transactions are serialised here between the threads of this process and by
the back end between processes (store/database.py): SQLite's write lock, or
PostgreSQL's advisory lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..diskfull import from_sqlite_error
from ..errors import StorageError
from .database import LOCK_TIMEOUT_S, Connection, connect, is_url
from .migrations import migrate


class Database:
    def __init__(self, target: Path | str) -> None:
        """`target`: a SQLite file or a postgresql:// URL; brought to the current schema."""
        self.target: Path | str = target if is_url(target) else Path(target)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[Connection] = []
        self._readers_lock = threading.Lock()
        self._current = _Current(self)
        self._writer: Connection | None = self._connect()
        self.dialect = self._writer.dialect
        migrate(self._writer)

    def _connect(self, read_only: bool = False) -> Connection:
        return connect(self.target, check_same_thread=False, read_only=read_only)

    @property
    def conn(self) -> Connection:
        """This thread's connection, chosen again at each statement: the writer inside
        the thread's transaction, else its reader. A store may keep it."""
        return self._current

    def connection(self) -> Connection:
        """The connection `conn` stands for on this thread, now."""
        if getattr(self._local, "depth", 0):
            assert self._writer is not None
            return self._writer
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._connect(read_only=True)
            self._local.reader = reader
            with self._readers_lock:
                self._readers.append(reader)
        return reader

    def write(self, sql: str, params: Any = ()) -> list:
        """One statement on the writer, atomic by itself, without the transaction lock
        of store/database.py (nothing it writes allocates ids); its RETURNING rows."""
        if getattr(self._local, "depth", 0):
            cursor = self.connection().execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        with self._holding_writer() as conn:
            cursor = conn.execute(sql, params)
            # To the end: SQLite finishes the statement (and its lock) there.
            return cursor.fetchall() if cursor.description else []

    @contextmanager
    def _holding_writer(self) -> Iterator[Connection]:
        if not self._write_lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise StorageError(
                f"the catalog {self.target} stayed locked by another writer for "
                f"{LOCK_TIMEOUT_S} s; try again"
            )
        try:
            if self._writer is None:  # closed, and used again (a restarted app)
                self._writer = self._connect()
            yield self._writer
        finally:
            self._write_lock.release()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """All or nothing on the writer; nested blocks become savepoints."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            conn = self.connection()
            with self._savepoint(conn, depth):
                yield conn
            return
        with self._holding_writer() as conn, self._savepoint(conn, 0):
            yield conn

    @contextmanager
    def _savepoint(self, conn: Connection, depth: int) -> Iterator[None]:
        name = f"sp{depth}"
        if depth == 0:
            conn.begin()
        else:
            conn.execute(f"SAVEPOINT {name}")
        self._local.depth = depth + 1
        try:
            yield
        except BaseException as exc:
            self._local.depth = depth
            self._roll_back(conn, depth, name)
            clear = from_sqlite_error(exc, self.target)  # type: ignore[arg-type]
            if clear is None:
                raise
            raise clear from exc
        self._local.depth = depth
        try:
            conn.execute("COMMIT" if depth == 0 else f"RELEASE {name}")
        except Exception as exc:
            # A commit that fails (a full disk) may leave the transaction open.
            self._roll_back(conn, depth, name)
            clear = from_sqlite_error(exc, self.target)  # type: ignore[arg-type]
            if clear is None:
                raise
            raise clear from exc

    @staticmethod
    def _roll_back(conn: Connection, depth: int, savepoint: str) -> None:
        # SQLite rolls back by itself on some errors (SQLITE_FULL, SQLITE_IOERR); a
        # second ROLLBACK would fail and hide the first error.
        if conn.in_transaction:
            conn.execute("ROLLBACK" if depth == 0 else f"ROLLBACK TO {savepoint}")

    def close(self) -> None:
        """Close every connection; a later use opens them again."""
        with self._readers_lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._local = threading.local()
        # A writer stuck past the timeout (at shutdown) keeps its connection.
        if self._write_lock.acquire(timeout=LOCK_TIMEOUT_S):
            try:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            finally:
                self._write_lock.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Current(Connection):
    """`Database.conn`: each statement runs on the connection its thread should use:
    the writer inside the thread's transaction, else a read on the thread's reader and
    a write in a transaction of its own."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def dialect(self) -> str:  # type: ignore[override]
        return self._db.dialect

    def execute(self, sql: str, params: Any = ()) -> Any:
        if self.in_transaction or _reads(sql):
            return self._db.connection().execute(sql, params)
        # A write outside a transaction is one of its own, on the writer.
        with self._db.transaction() as conn:
            cursor = conn.execute(sql, params)
            return _Done(cursor.fetchall() if cursor.description else [], cursor.rowcount)

    def executemany(self, sql: str, rows: Any) -> None:
        if self.in_transaction or _reads(sql):
            self._db.connection().executemany(sql, rows)
            return
        with self._db.transaction() as conn:
            conn.executemany(sql, rows)

    def begin(self) -> None:
        raise TypeError("begin a write with Database.transaction()")

    @property
    def in_transaction(self) -> bool:
        return bool(getattr(self._db._local, "depth", 0))

    def close(self) -> None:
        raise TypeError("the Database closes its connections")


_READS = ("SELECT", "WITH", "PRAGMA", "EXPLAIN", "VALUES")


def _reads(sql: str) -> bool:
    return sql.lstrip(" \n\t(").upper().startswith(_READS)


class _Done:
    """The cursor of a write already committed: its RETURNING rows and row count."""

    def __init__(self, rows: list, rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount
        self.description = None

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list:
        rows, self.rows = self.rows, []
        return rows

    def __iter__(self):
        return iter(self.fetchall())
