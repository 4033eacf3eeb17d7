"""Leases: work that one process at a time may do, held for a while and renewed.

A lease names a holder and the moment it expires. The holder renews it well before
then (a heartbeat); a holder that dies stops renewing, and once the lease has expired
another process may take it. Two forms share this module's clock and identities:

- a job's lease, in the job's own row (store/jobs.py): the server running an ingest
  job holds it; another server takes the job over when it expires;
- named leases in the `leases` table (`Leases`), for work that must run once in a
  deployment rather than once per server or worker process: `acquire` returns True
  to one caller at a time, for example before each pass of a retention purge.

Expiry is compared on each holder's own clock: keep the servers' clocks in step
(NTP) to well within the lease time.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from functools import cache

from .db import Database


def moment(after_seconds: float = 0.0) -> str:
    """Now (or `after_seconds` from now) as stored: ISO 8601 UTC to the second, as
    clock.now() stamps every record, so that the two compare as text."""
    at = datetime.now(UTC) + timedelta(seconds=after_seconds)
    return at.isoformat(timespec="seconds")


@cache
def this_process() -> str:
    """This process as a lease holder: host, PID namespace, PID and a random part (a
    PID is reused; the random part never is)."""
    return f"{socket.gethostname()}/{_pid_namespace()}/{os.getpid()}/{secrets.token_hex(4)}"


def is_gone(holder: str) -> bool:
    """Whether `holder` is a process of this machine (same host and PID namespace)
    that no longer runs: its leases need not wait for their expiry. False for any
    process elsewhere, or one whose fate cannot be known from here."""
    host, _, rest = holder.partition("/")
    namespace, _, rest = rest.partition("/")
    pid, _, _ = rest.partition("/")
    if host != socket.gethostname() or namespace != _pid_namespace() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return holder != this_process()  # an earlier life of a reused PID
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _pid_namespace() -> str:
    # Two containers may share a host name but never a PID namespace.
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "-"


class Leases:
    """Named leases in the catalog (table `leases`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def acquire(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `seconds`; False while another holds it."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT holder, expires_at FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] != holder and row[1] >= moment() and not is_gone(row[0]):
                return False
            if row is None:
                conn.execute(
                    "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)",
                    (name, holder, moment(seconds)),
                )
            else:
                conn.execute(
                    "UPDATE leases SET holder = ?, expires_at = ? WHERE name = ?",
                    (holder, moment(seconds), name),
                )
        return True

    def release(self, name: str, holder: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def holder(self, name: str) -> str | None:
        """Who holds `name` now; None if nobody does or the lease has expired."""
        row = self.db.conn.execute(
            "SELECT holder, expires_at FROM leases WHERE name = ?", (name,)
        ).fetchone()
        return row[0] if row is not None and row[1] >= moment() else None
