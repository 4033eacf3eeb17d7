"""An unexpected failure of a command: one clear line for the user, the details in a log.

A traceback is for whoever fixes the bug, not for the person at the keyboard: it is
appended to `<data folder>/logs/facesearch.log` (or, where that cannot be written, a
file in the system's temporary folder), and the user reads what failed and where
the details are.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

LOG_NAME = "facesearch.log"
# The data folder of the command being run, once its settings are read.
_data_dir: Path | None = None


def remember(data_dir: Path) -> None:
    global _data_dir
    _data_dir = data_dir


def log_file(data_dir: Path | None) -> Path:
    return (data_dir or _fallback_dir()) / "logs" / LOG_NAME


def report_unexpected(exc: BaseException) -> str:
    """Log `exc` with its traceback; returns the one line to show the user."""
    entry = (
        # Not the command line: it may carry a password.
        f"{datetime.now(UTC).isoformat(timespec='seconds')} unexpected failure of a command\n"
        + "".join(traceback.format_exception(exc))
    )
    written = None
    for candidate in (log_file(_data_dir), log_file(_fallback_dir())):
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            with candidate.open("a", encoding="utf-8") as f:
                f.write(entry + "\n")
            written = candidate
            break
        except OSError:
            continue
    summary = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(summary) > 300:
        summary = summary[:297] + "..."
    where = f"the details are in {written}" if written else "no log file could be written"
    return f"unexpected failure ({summary}); this is a bug, please report it; {where}"


def _fallback_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"facesearch-{os.getuid()}"
