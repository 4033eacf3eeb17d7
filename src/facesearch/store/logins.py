"""Failed logins and lock-outs: their rows and nothing else (governance/throttle.py
decides). In the catalog, so every server process counts the same failures and a
restart forgets none of them."""

from __future__ import annotations

from .db import Database


class Logins:
    def __init__(self, db: Database) -> None:
        self.db = db

    def locked_until(self, kind: str, name: str) -> float:
        row = self.db.conn.execute(
            "SELECT locked_until FROM login_locks WHERE kind = ? AND name = ?", (kind, name)
        ).fetchone()
        return float(row[0]) if row else 0.0

    def fail(self, kind: str, name: str, at: float, since: float, limit: int, until: float) -> bool:
        """Count a failure at `at`; with `limit` failures since `since`, lock `name`
        until `until` and forget its failures. Whether it was locked now."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM login_failures WHERE kind = ? AND name = ? AND failed_at <= ?",
                (kind, name, since),
            )
            conn.execute(
                "INSERT INTO login_failures (kind, name, failed_at) VALUES (?, ?, ?)",
                (kind, name, at),
            )
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM login_failures WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
            if count < limit:
                return False
            conn.execute("DELETE FROM login_failures WHERE kind = ? AND name = ?", (kind, name))
            conn.execute("DELETE FROM login_locks WHERE kind = ? AND name = ?", (kind, name))
            conn.execute(
                "INSERT INTO login_locks (kind, name, locked_until) VALUES (?, ?, ?)",
                (kind, name, until),
            )
            return True

    def forget(self, kind: str, name: str) -> None:
        """Drop the failures counted against `name`."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE kind = ? AND name = ?", (kind, name))

    def unlock(self, kind: str, name: str) -> float:
        """Lift the lock and the failures of `name`; when the lock would have ended."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT locked_until FROM login_locks WHERE kind = ? AND name = ?", (kind, name)
            ).fetchone()
            conn.execute("DELETE FROM login_locks WHERE kind = ? AND name = ?", (kind, name))
            conn.execute("DELETE FROM login_failures WHERE kind = ? AND name = ?", (kind, name))
        return float(row[0]) if row else 0.0
