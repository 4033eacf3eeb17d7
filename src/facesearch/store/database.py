"""One connection type over SQLite (one machine) or PostgreSQL (many), so the stores keep their SQL.

The stores write portable SQL with `?` placeholders and this module bridges the
few differences: the placeholder style, how a write transaction locks, the
column types of schema steps, two JSON functions and the constraint error.

Write transactions are serialised on both back ends. SQLite's `BEGIN
IMMEDIATE` takes its single write lock; on PostgreSQL every write transaction
takes one transaction-level advisory lock. That keeps what the vector indexes
rely on: a face id (or deletion sequence number) is allocated and committed
while no other writer runs, so ids become visible in increasing order, and a
reader that has seen id n will never later find a face below n appear. Reads
never wait (WAL on SQLite, MVCC on PostgreSQL).
"""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
URL_SCHEMES = ("postgresql://", "postgres://")
# pg_advisory_xact_lock key of the single writer: b"fsearch1" as an integer.
WRITER_LOCK = int.from_bytes(b"fsearch1", "big") - 2**63
# How long a writer waits for another before giving up, like SQLite's busy timeout.
LOCK_TIMEOUT_S = 30


class IntegrityError(Exception):
    """A constraint (unique, foreign key, not null) refused a write, on either back end."""


def is_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def connect(
    target: Path | str, check_same_thread: bool = True, read_only: bool = False
) -> Connection:
    """A connection in autocommit mode: a path is a SQLite file, a postgresql:// URL a
    server. A `read_only` one refuses writes (store/db.py's readers)."""
    if is_url(target):
        return PostgresConnection(str(target), read_only)
    return SqliteConnection(Path(target), check_same_thread, read_only)


class Connection:
    dialect: str

    def execute(self, sql: str, params: Any = ()) -> Any:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Any) -> None:
        raise NotImplementedError

    def begin(self) -> None:
        """Start a write transaction, waiting for any other writer to finish."""
        raise NotImplementedError

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (a failed write may already have ended it)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteConnection(Connection):
    dialect = SQLITE

    def __init__(self, path: Path, check_same_thread: bool = True, read_only: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.raw = sqlite3.connect(
            path, isolation_level=None, timeout=LOCK_TIMEOUT_S, check_same_thread=check_same_thread
        )
        self.raw.row_factory = sqlite3.Row
        self.raw.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process without losing a commit; only
        # a power cut can drop the last transactions, never corrupt the file.
        self.raw.execute("PRAGMA synchronous=NORMAL")
        self.raw.execute("PRAGMA foreign_keys=ON")
        # Deleted rows (erased faces, purged collections) are overwritten, not
        # left readable in free pages.
        self.raw.execute("PRAGMA secure_delete=ON")
        if read_only:
            self.raw.execute("PRAGMA query_only=ON")

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, rows: Any) -> None:
        try:
            self.raw.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def close(self) -> None:
        self.raw.close()


class Row(tuple):
    """A result row read by position or by column name, like sqlite3.Row."""

    names: tuple[str, ...]

    def __new__(cls, names: tuple[str, ...], values) -> Row:
        row = super().__new__(cls, values)
        row.names = names
        return row

    def keys(self) -> list[str]:
        return list(self.names)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)


def _rows(cursor):
    names = tuple(c.name for c in cursor.description or ())
    return lambda values: Row(names, values)


class PostgresConnection(Connection):
    dialect = POSTGRESQL

    def __init__(self, url: str, read_only: bool = False) -> None:
        try:
            import psycopg
        except ImportError:
            raise ImportError(
                "a postgresql:// catalog needs psycopg: pip install 'facesearch[postgres]'"
            ) from None
        self._psycopg = psycopg
        # Client-side binding: parameters become literals as with SQLite, so
        # `? IS NULL` and untyped NULLs need no casts in the stores' SQL.
        self.raw = psycopg.connect(
            url, autocommit=True, cursor_factory=psycopg.ClientCursor, row_factory=_rows
        )
        self.raw.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
        if read_only:
            self.raw.execute("SET default_transaction_read_only = on")

    def execute(self, sql: str, params: Any = ()):
        try:
            return self.raw.execute(_postgres(sql), _params(params))
        except self._psycopg.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, rows: Any) -> None:
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(_postgres(sql), [_params(r) for r in rows])
        except self._psycopg.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def begin(self) -> None:
        self.raw.execute("BEGIN")
        try:
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise

    @property
    def in_transaction(self) -> bool:
        idle = self._psycopg.pq.TransactionStatus.IDLE
        return self.raw.info.transaction_status != idle

    def close(self) -> None:
        self.raw.close()


def _params(params: Any) -> Any:
    # numpy integers and floats arrive from index code; psycopg wants Python numbers.
    return [p.item() if hasattr(p, "item") and not isinstance(p, bytes) else p for p in params]


@lru_cache(maxsize=4096)
def _postgres(sql: str) -> str:
    """`?` → `%s` outside string literals; a literal `%` → `%%`."""
    out, quoted = [], False
    for char in sql:
        if char == "'":
            quoted = not quoted
        if char == "%":
            out.append("%%")
        elif char == "?" and not quoted:
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


# Schema steps are written for SQLite in portable terms (INTEGER, TEXT, REAL, BLOB;
# `INTEGER PRIMARY KEY [AUTOINCREMENT]` for ids); these rules make them PostgreSQL.
_DDL_RULES = [
    (r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b",
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    # Ids and counts outgrow 32 bits at billions of faces; SQLite's are 64-bit.
    (r"\bINTEGER\b", "BIGINT"),
    (r"\bREAL\b", "DOUBLE PRECISION"),
    (r"\bBLOB\b", "BYTEA"),
    (r"strftime\('%Y-%m-%dT%H:%M:%S\+00:00',\s*'now'\)",
     """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')"""),
]  # fmt: skip

# SQLite's NOCASE, for names compared without case (organisations, users).
_POSTGRES_SETUP = [
    "CREATE COLLATION IF NOT EXISTS nocase "
    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
]


def schema_statement(dialect: str, statement: str) -> str:
    """A schema step's statement for this back end."""
    if dialect == POSTGRESQL:
        for pattern, replacement in _DDL_RULES:
            statement = re.sub(pattern, replacement, statement, flags=re.IGNORECASE)
    return statement


def setup_statements(dialect: str) -> list[str]:
    """What a fresh database needs before the first schema step."""
    return list(_POSTGRES_SETUP) if dialect == POSTGRESQL else []


def json_text(dialect: str, column: str, key: str) -> str:
    """SQL for the text of `column`'s JSON member `key` (compare it with a str)."""
    if dialect == POSTGRESQL:
        return f"({column}::jsonb ->> '{key}')"
    return f"CAST(json_extract({column}, '$.{key}') AS TEXT)"


def json_array_items(dialect: str, column: str, key: str, alias: str) -> str:
    """A FROM item with one row per element of `column`'s JSON array `key`, as `alias`.value."""
    if dialect == POSTGRESQL:
        return (
            f"jsonb_array_elements_text(CASE WHEN jsonb_typeof({column}::jsonb -> '{key}') = "
            f"'array' THEN {column}::jsonb -> '{key}' END) AS {alias}(value)"
        )
    return f"json_each({column}, '$.{key}') AS {alias}"
