"""Folders, files and manifests → the items to ingest.

Only what an operator points at is read: local folders walked recursively,
single files, and CSV or JSONL manifests that list files with their metadata.
There is no crawler, and there will not be one.

No single entry stops a walk. What cannot or must not be read — a link loop, a
dangling link, a link out of the folder being walked, a FIFO, socket or device,
a folder without read permission, a name that is not UTF-8, a path too long for
the system — comes out as an item with `refused` set, which ingest records as
that path's error, and the walk goes on. Special files are never opened: a
FIFO opened for reading blocks until a writer comes, which may be never.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from ..errors import FacesearchError
from ..types import SourceItem
from .video import VIDEO_SUFFIXES

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff",
    ".pgm", ".ppm", ".pnm", ".gif",
}  # fmt: skip
# Videos (pipeline/video.py) are walked like photos.
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES
MANIFEST_SUFFIXES = {".csv", ".jsonl"}
MANIFEST_FIELDS = ("path", "source_url", "captured_at", "caption")
# Opening a file to read it: never through a link swapped in after listing, never
# waiting on a FIFO, never taking a terminal as controlling terminal.
_OPEN_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NOCTTY", 0)
)  # fmt: skip


class SourceRefused(FacesearchError):
    """A listed file that cannot be read as it was listed (gone, changed, replaced)."""


def iter_sources(
    paths: list[Path], allowed_roots: Sequence[Path] | None = None
) -> Iterator[SourceItem]:
    """Every item under `paths`, in a stable order so runs are repeatable.

    `allowed_roots`, where given (a server's ingest folders), bounds every file read:
    a manifest line or a link that leads outside them is refused.
    """
    roots = None if allowed_roots is None else [Path(os.path.realpath(r)) for r in allowed_roots]
    for path in paths:
        yield from _sources_of(Path(path), roots)


def _sources_of(path: Path, roots: list[Path] | None) -> Iterator[SourceItem]:
    if not _is_utf8(str(path)):
        yield _refused(path, "the path is not valid UTF-8; rename it to ingest it")
        return
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if not os.path.lexists(path):
            raise FacesearchError(f"{path} does not exist") from None
        yield _refused(path, _unfollowable(path, FileNotFoundError(errno.ENOENT, "")))
        return
    except OSError as exc:
        yield _refused(path, _unfollowable(path, exc))
        return
    real = Path(os.path.realpath(path))
    outside = _outside(real, roots)
    if outside:
        yield _refused(path, outside)
    elif stat.S_ISDIR(info.st_mode):
        yield from _walk(real, roots)
    elif stat.S_ISREG(info.st_mode) and real.suffix.lower() in MANIFEST_SUFFIXES:
        yield from read_manifest(real, roots)
    elif stat.S_ISREG(info.st_mode):
        yield SourceItem(real)
    else:
        yield _refused(path, _not_regular(info.st_mode))


def _walk(root: Path, roots: list[Path] | None) -> Iterator[SourceItem]:
    """Depth first, names sorted, without recursion (a tree may be thousands deep).

    Links are followed only to files inside `root`; a link to a folder inside it is
    skipped, as that folder is walked under its own name.
    """
    stack = [root]
    walked: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            # A folder seen before under another name (a bind mount of an ancestor)
            # would make the walk endless.
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in walked:
                yield _refused(folder, "this folder was already walked under another name")
                continue
            walked.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield _refused(
                folder, f"cannot list this folder ({_reason(exc)}); nothing in it was read"
            )
            continue
        subfolders = []
        for entry in entries:
            kind, item = _entry(entry, root, roots)
            if kind == "folder":
                subfolders.append(Path(entry.path))
            elif item is not None:
                yield item
        stack.extend(reversed(subfolders))


def _entry(
    entry: os.DirEntry, root: Path, roots: list[Path] | None
) -> tuple[str, SourceItem | None]:
    """("folder", None) for a folder to walk, else ("", the item or None to skip)."""
    path = Path(entry.path)
    is_image = Path(entry.name).suffix.lower() in MEDIA_SUFFIXES
    try:
        is_link = entry.is_symlink()
        is_folder = not is_link and entry.is_dir(follow_symlinks=False)
    except OSError as exc:
        if not is_image:
            return "", None
        return "", _refused(path, f"cannot look at this entry ({_reason(exc)})")
    if not _is_utf8(entry.name):
        if is_folder or is_image:
            what = "folder" if is_folder else "file"
            return "", _refused(
                path, f"the {what} name is not valid UTF-8; rename it to ingest it"
                + ("" if is_image else " and what it holds")
            )  # fmt: skip
        return "", None
    if is_folder:
        return "folder", None
    if entry.name.startswith("."):  # hidden files, not hidden folders
        return "", None
    if is_link:
        return "", _link(path, is_image, root, roots)
    if not is_image:
        return "", None
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        return "", _refused(path, f"cannot look at this file ({_reason(exc)})")
    if not stat.S_ISREG(mode):
        return "", _refused(path, _not_regular(mode))
    return "", SourceItem(path)


def _link(path: Path, is_image: bool, root: Path, roots: list[Path] | None) -> SourceItem | None:
    """The file a link in a walked folder leads to, or why it is refused; None to skip."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return _refused(path, _unfollowable(path, exc)) if is_image else None
    is_folder = stat.S_ISDIR(info.st_mode)
    if not (is_image or is_folder):
        return None
    target = Path(os.path.realpath(path))
    if not target.is_relative_to(root):
        kind = "folder" if is_folder else "file"
        return _refused(
            path, f"a link to the {kind} {target}, outside {root}: links may not leave the "
            "folder being ingested (ingest the target itself)"
        )  # fmt: skip
    outside = _outside(target, roots)
    if outside:
        return _refused(path, outside)
    if is_folder:
        return None  # walked under its own name
    if not stat.S_ISREG(info.st_mode):
        return _refused(path, "a link to " + _not_regular(info.st_mode))
    return SourceItem(target)


def read_source(path: Path, max_bytes: int) -> bytes:
    """The bytes of a listed file, up to one past `max_bytes` (enough for decode to
    refuse it). Refuses, with SourceRefused, a file that is gone, is no longer a
    regular file, or changed while it was read; a special file is never opened."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        raise SourceRefused("the file vanished after it was listed") from None
    except OSError as exc:
        raise SourceRefused(f"cannot read file: {_reason(exc)}") from None
    if not stat.S_ISREG(before.st_mode):
        raise SourceRefused(
            f"the file changed after it was listed and is now {_kind(before.st_mode)}; "
            "it was not opened"
        )
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise SourceRefused("the file vanished after it was listed") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SourceRefused("the file was replaced by a link after it was listed") from None
        raise SourceRefused(f"cannot read file: {_reason(exc)}") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise SourceRefused("the file was replaced while it was opened; run the ingest again")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 22))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        after = os.fstat(fd)
    except OSError as exc:
        raise SourceRefused(f"cannot read file: {_reason(exc)}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    changed = (after.st_size, after.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns)
    if changed or len(data) < min(opened.st_size, max_bytes + 1):
        raise SourceRefused(
            "the file changed while it was read (still being written?); run the ingest "
            "again once it is complete"
        )
    return data


def hash_source(path: Path, max_bytes: int) -> tuple[str, int]:
    """(sha256, size) of a listed file read in chunks, for files too large to hold (videos);
    refused as `read_source` refuses. A file above `max_bytes` is hashed no further: the
    video limits refuse it by its size."""
    import hashlib

    try:
        before = os.lstat(path)
    except OSError as exc:
        raise SourceRefused(f"cannot read file: {_reason(exc)}") from None
    if not stat.S_ISREG(before.st_mode):
        raise SourceRefused(
            f"the file changed after it was listed and is now {_kind(before.st_mode)}; "
            "it was not opened"
        )
    if before.st_size > max_bytes:
        return "", before.st_size
    digest = hashlib.sha256()
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise SourceRefused(f"cannot read file: {_reason(exc)}") from None
    try:
        opened = os.fstat(fd)
        while chunk := os.read(fd, 1 << 22):
            digest.update(chunk)
        after = os.fstat(fd)
    except OSError as exc:
        raise SourceRefused(f"cannot read file: {_reason(exc)}") from None
    finally:
        os.close(fd)
    if (after.st_size, after.st_mtime_ns) != (opened.st_size, opened.st_mtime_ns):
        raise SourceRefused(
            "the file changed while it was read (still being written?); run the ingest "
            "again once it is complete"
        )
    return digest.hexdigest(), opened.st_size


def read_manifest(path: Path, allowed_roots: Sequence[Path] | None = None) -> list[SourceItem]:
    """Items listed in a manifest. A malformed row stops here, before anything is stored;
    a row naming a file that cannot be read (missing, a FIFO, a link loop…) is an item
    refused with the line's number, and the others go on."""
    roots = None if allowed_roots is None else [Path(os.path.realpath(r)) for r in allowed_roots]
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
        found, refused = _named_file(target, roots)
        items.append(
            SourceItem(
                found,
                source_url=(row.get("source_url") or "").strip() or None,
                captured_at=captured_at,
                caption=(row.get("caption") or "").strip() or None,
                refused=None if refused is None else f"{where}: {refused}",
            )
        )
    return items


def _named_file(target: Path, roots: list[Path] | None) -> tuple[Path, str | None]:
    """(the file a manifest line names, resolved; or the path as given with the reason)."""
    if not _is_utf8(str(target)):  # a JSON "\\udcff" names the byte 0xff
        return Path(printable(target)), "the path is not valid UTF-8; rename the file to ingest it"
    try:
        info = os.stat(target)
    except FileNotFoundError:
        if not os.path.lexists(target):
            return target, "the file does not exist"
        return target, _unfollowable(target, FileNotFoundError(errno.ENOENT, ""))
    except OSError as exc:
        return target, _unfollowable(target, exc)
    real = Path(os.path.realpath(target))
    outside = _outside(real, roots)
    if outside:
        return target, outside
    if stat.S_ISDIR(info.st_mode):
        return target, "a folder, not a file: a manifest names files"
    if not stat.S_ISREG(info.st_mode):
        return target, _not_regular(info.st_mode)
    return real, None


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


def _refused(path: Path, reason: str) -> SourceItem:
    return SourceItem(Path(printable(path)), refused=reason)


def printable(path: Path | str) -> str:
    """A path as text that can be stored and shown: bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes come in as lone surrogates
        return False
    return True


def _outside(real: Path, roots: list[Path] | None) -> str | None:
    if roots is None or any(real.is_relative_to(root) for root in roots):
        return None
    return f"{real} is outside the folders allowed for ingest"


def _unfollowable(path: Path, exc: OSError) -> str:
    """Why a path cannot be followed to a file: a loop, a dangling link, no permission."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself)"
    if exc.errno == errno.ENOENT:
        try:
            return f"a dangling link: its target {os.readlink(path)} does not exist"
        except OSError:
            return "a dangling link: a folder on its way does not exist"
    if exc.errno == errno.ENAMETOOLONG:
        return f"the path is too long for the system ({len(os.fsencode(path))} bytes)"
    return f"cannot look at it ({_reason(exc)})"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return f"the path is too long for the system ({len(os.fsencode(exc.filename or ''))} bytes)"
    return (exc.strerror or str(exc)).lower() if exc.strerror else str(exc)


def _not_regular(mode: int) -> str:
    return f"{_kind(mode)}, not a regular file; it was not opened"


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a regular file"),
    )  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "an unknown kind of file")
