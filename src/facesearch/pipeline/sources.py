"""Folders, files and manifests → the items to ingest.

Only what an operator points at is read: local folders walked recursively,
single files, and CSV or JSONL manifests that list files with their metadata.
There is no crawler, and there will not be one.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from ..errors import FacesearchError
from ..types import SourceItem

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff",
    ".pgm", ".ppm", ".pnm", ".gif",
}  # fmt: skip
MANIFEST_SUFFIXES = {".csv", ".jsonl"}
MANIFEST_FIELDS = ("path", "source_url", "captured_at", "caption")


def iter_sources(paths: list[Path]) -> Iterator[SourceItem]:
    """Every item under `paths`, in a stable order so runs are repeatable."""
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            yield from read_manifest(path)
        elif path.exists():
            yield SourceItem(path.resolve())
        else:
            raise FacesearchError(f"{path} does not exist")


def _walk(folder: Path) -> Iterator[SourceItem]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                yield SourceItem((Path(root) / name).resolve())


def read_manifest(path: Path) -> list[SourceItem]:
    """Items listed in a manifest; any bad row stops here, before anything is stored."""
    rows = _manifest_rows(path)
    items = []
    for line, row in rows:
        where = f"{path}:{line}"
        unknown = set(row) - set(MANIFEST_FIELDS)
        if unknown:
            raise FacesearchError(f"{where}: unknown columns {sorted(unknown)}")
        file = (row.get("path") or "").strip()
        if not file:
            raise FacesearchError(f"{where}: 'path' is required")
        captured_at = (row.get("captured_at") or "").strip() or None
        if captured_at:
            try:
                datetime.fromisoformat(captured_at)
            except ValueError:
                raise FacesearchError(
                    f"{where}: captured_at {captured_at!r} is not an ISO 8601 date"
                ) from None
        target = Path(file)
        if not target.is_absolute():
            target = path.parent / target
        items.append(
            SourceItem(
                target.resolve(),
                source_url=(row.get("source_url") or "").strip() or None,
                captured_at=captured_at,
                caption=(row.get("caption") or "").strip() or None,
            )
        )
    return items


def _manifest_rows(path: Path) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacesearchError(f"cannot read manifest {path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise FacesearchError(f"{path}: a CSV manifest needs a header with a 'path' column")
        return [(n + 2, dict(row)) for n, row in enumerate(reader)]
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FacesearchError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise FacesearchError(f"{path}:{n}: each line must be a JSON object")
        rows.append((n, {k: (None if v is None else str(v)) for k, v in row.items()}))
    return rows
