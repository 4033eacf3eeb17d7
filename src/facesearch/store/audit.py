"""The audit log, block-list and verification tables: append, read, nothing else.

Entries are only ever inserted; the hash chain itself is computed by
governance/audit.py, which hands this store a function that seals the next
entry given the previous hash and sequence number, inside one write
transaction so two writers can never fork the chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from .database import Connection, json_array_items, json_text

Transaction = Callable[[], AbstractContextManager[Connection]]
GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    seq: int
    at: str
    actor: str
    organisation_id: int | None
    origin: str
    action: str
    details: str  # canonical JSON
    prev_hash: str
    hash: str
    signature: str | None


COLUMNS = "seq, at, actor, organisation_id, origin, action, details, prev_hash, hash, signature"


class AuditStore:
    def __init__(
        self, transaction: Transaction, read: Callable[[], Connection] | None = None
    ) -> None:
        # A catalog's or a thread pool's transaction: appends join the caller's
        # transaction where there is one (savepoints), so an action and its
        # record are committed together.
        self.transaction = transaction
        # Reads need no write lock: in WAL mode each statement sees a consistent
        # snapshot while an ingest writes.
        self.read = read

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        if self.read is not None:
            yield self.read()
        else:
            with self.transaction() as conn:
                yield conn

    def append(self, seal: Callable[[int, str], Entry]) -> Entry:
        with self.transaction() as conn:
            last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            row = last.fetchone()
            seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
            entry = seal(seq, prev)
            conn.execute(
                f"INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.seq, entry.at, entry.actor, entry.organisation_id, entry.origin,
                 entry.action, entry.details, entry.prev_hash, entry.hash, entry.signature),
            )  # fmt: skip
        return entry

    def entries(self) -> Iterator[Entry]:
        """Every entry in storage order (seq, SQLite's rowid), which is what verification checks."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM audit_log ORDER BY seq").fetchall()
        for row in rows:
            yield Entry(*row)

    def query(
        self, organisation_id: int | None = None, action: str | None = None,
        actor: str | None = None, case: str | None = None, since: str | None = None,
        until: str | None = None, limit: int = 1000, seq: int | None = None,
        search_seq: int | None = None,
    ) -> list[Entry]:  # fmt: skip
        sql = f"SELECT {COLUMNS} FROM audit_log WHERE 1 = 1"
        params: list = []
        with self._reading() as conn:
            for clause, value in (
                ("organisation_id = ?", organisation_id), ("action = ?", action),
                ("actor = ?", actor), (f"{json_text(conn.dialect, 'details', 'case')} = ?",
                                       None if case is None else str(case)),
                ("at >= ?", since), ("at < ?", until), ("seq = ?", seq),
                (f"{json_text(conn.dialect, 'details', 'search_seq')} = ?",
                 None if search_seq is None else str(search_seq)),
            ):  # fmt: skip
                if value is not None:
                    sql += f" AND {clause}"
                    params.append(value)
            params.append(limit)
            rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", params).fetchall()
        return [Entry(*r) for r in rows]

    def searches_returning(self, face_ids: list[int]) -> dict[int, list[Entry]]:
        """For each face id, the search entries whose results included it."""
        found: dict[int, list[Entry]] = {int(i): [] for i in face_ids}
        if not found:
            return found
        marks = ",".join("?" * len(found))
        with self._reading() as conn:
            columns = ", ".join("a." + c for c in COLUMNS.split(", "))
            items = json_array_items(conn.dialect, "a.details", "face_ids", "j")
            rows = conn.execute(
                f"SELECT DISTINCT CAST(j.value AS BIGINT), {columns} "
                f"FROM audit_log a CROSS JOIN {items} WHERE a.action = "
                f"'search' AND CAST(j.value AS BIGINT) IN ({marks}) ORDER BY a.seq",
                list(found),
            ).fetchall()
        for row in rows:
            found[row[0]].append(Entry(*row[1:]))
        return found

    # block-list

    def add_blocked(
        self, organisation_id: int | None, model: str, version: str, sealed: bytes, ref: str,
        at: str,
    ) -> None:  # fmt: skip
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO blocklist (organisation_id, model, model_version, sealed, "
                "reference, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                (organisation_id, model, version, sealed, ref, at),
            )

    def blocked(self, model: str, version: str) -> list[tuple[int, bytes]]:
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, sealed FROM blocklist WHERE model = ? AND model_version = ? "
                "ORDER BY id",
                (model, version),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    # verification decisions

    def add_verification(
        self, search_seq: int, face_id: int, decision: str, by: str, at: str
    ) -> int:
        with self.transaction() as conn:
            row = conn.execute(
                "INSERT INTO verifications (search_seq, face_id, decision, decided_by, at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (search_seq, face_id, decision, by, at),
            ).fetchone()
        return int(row[0])

    def verification(self, verification_id: int) -> dict | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT id, search_seq, face_id, decision, decided_by, confirmed_by, at "
                "FROM verifications WHERE id = ?",
                (verification_id,),
            ).fetchone()
        return dict(zip(("id", "search_seq", "face_id", "decision", "decided_by",
                         "confirmed_by", "at"), row, strict=True)) if row else None  # fmt: skip

    def delete_verifications(self, search_seq: int) -> int:
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM verifications WHERE search_seq = ?", (search_seq,))
        return cursor.rowcount

    def confirm_verification(self, verification_id: int, by: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE verifications SET confirmed_by = ? WHERE id = ?", (by, verification_id)
            )
