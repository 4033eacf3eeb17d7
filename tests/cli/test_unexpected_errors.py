"""No traceback is ever shown to a user: a bug in a command becomes one clear line on
stderr and a log entry with the details, through the real console entry point."""

from __future__ import annotations

import subprocess
import sys


def _facesearch(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facesearch", *args], capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip


def test_an_unexpected_error_is_one_line_and_a_log_entry(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # Not a database: SQLite's own error, which no code path expects.
    (data / "catalog.sqlite3").write_bytes(b"this is not a database " * 200)
    done = _facesearch("--data-dir", str(data), "stats")
    assert done.returncode == 1 and done.stdout == ""
    # Before it, the notice of the new master key the catalog's opening made.
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and done.stderr.rstrip().endswith(lines[0]), done.stderr
    log = data / "logs" / "facesearch.log"
    assert lines[0].startswith("error: unexpected failure (DatabaseError: file is not a database)")
    assert str(log) in lines[0]
    entry = log.read_text()
    assert "Traceback (most recent call last)" in entry and "file is not a database" in entry


def test_a_bad_setting_is_one_clear_line(tmp_path):
    import os

    env = {**os.environ, "FACESEARCH_WORKERS": "many", "FACESEARCH_DATA_DIR": str(tmp_path)}
    done = _facesearch("stats", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: invalid settings: workers: Input should be a valid integer, unable to parse "
        "string as an integer"
    ]
