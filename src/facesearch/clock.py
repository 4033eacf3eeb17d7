"""The time every stored record is stamped with."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    """The current moment as stored: ISO 8601 in UTC, to the second (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
