"""Online backup and restore of a store: catalog, index files, uploads and key material.

A backup is a folder: `catalog.sqlite3` (SQLite's online backup API, a consistent
snapshot while ingest and search go on) or `catalog.pgdump` (`pg_dump`, one snapshot
transaction), `index/` (each index folder's committed files, copied under its shared
lock so no writer commits half way), `uploads/`, and `backup.json`, which lists every
file with its size and sha256 and the fingerprint of the master key. The index is copied
before the catalog: it can then only be behind the catalog, never ahead of it, and the
restored index catches up from the restored catalog as it does after a crash.

The key material (the master key, and the audit key where one is set) goes to a file of
its own, created owner-only (0600) and refused inside the backup folder: whoever holds a
backup and its key holds every face, so they are meant to be kept apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from . import __version__
from .config import Settings
from .errors import Conflict, FacesearchError
from .index.files import fsync_dir, locked
from .index.persistent import Manifest

FORMAT = 1
MANIFEST = "backup.json"
CHUNK = 1 << 20


class BackupProblem(FacesearchError):
    """A backup cannot be made or restored; the message says why and what to do."""


# key material


def _master_key(settings: Settings) -> bytes:
    from .governance.crypto import _decode

    if settings.crypto.master_key is not None:
        text = settings.crypto.master_key.get_secret_value()
        return _decode(text, "FACESEARCH_CRYPTO__MASTER_KEY")
    path = settings.master_key_file
    if not path.exists():
        raise BackupProblem(f"no master key at {path}: the store has none to back up")
    return _decode(path.read_text().strip(), str(path))


def fingerprint(key: bytes) -> str:
    """Names a master key without revealing it: restore checks the key matches."""
    return hashlib.sha256(b"facesearch master key:" + key).hexdigest()[:32]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupProblem(f"{path} exists; a key file is never overwritten") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


# copying


def _copy(src: Path, dst: Path, size: int | None = None) -> dict:
    """Copy the first `size` bytes (all when None); its size and sha256."""
    digest = hashlib.sha256()
    left = src.stat().st_size if size is None else size
    dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as fin, dst.open("wb") as fout:
        while left > 0:
            chunk = fin.read(min(CHUNK, left))
            if not chunk:
                raise BackupProblem(f"{src} is shorter than its committed {size} bytes")
            digest.update(chunk)
            fout.write(chunk)
            left -= len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return {"bytes": dst.stat().st_size, "sha256": digest.hexdigest()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_index(src: Path, dst: Path, listed: dict[str, dict]) -> None:
    """One index folder's committed state, under its shared lock: no writer commits
    while it is copied, readers go on."""
    with locked(src / "lock", exclusive=False):
        manifest_path = src / "manifest.json"
        if not manifest_path.exists():
            return
        text = manifest_path.read_bytes()
        for name, size in Manifest(**json.loads(text)).committed_sizes().items():
            if (src / name).exists():
                listed[f"index/{src.name}/{name}"] = _copy(src / name, dst / name, size)
        (dst / "manifest.json").write_bytes(text)
        listed[f"index/{src.name}/manifest.json"] = {
            "bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}  # fmt: skip


def _sqlite_backup(src: Path, dst: Path) -> None:
    """SQLite's online backup: a consistent snapshot, writers in WAL mode go on."""
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


def pg_program(name: str) -> str:
    """A PostgreSQL client program, newest version first (it must not be older than the
    server): Debian's /usr/lib/postgresql/*/bin, then PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)  # fmt: skip
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path is None:
        raise BackupProblem(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return on_path


def _pg_parts(url: str) -> tuple[str, str | None]:
    """The URL without its query, and the schema its search_path names (tests and
    shared servers keep a catalog in a schema of its own)."""
    parts = urlsplit(url)
    options = " ".join(parse_qs(parts.query).get("options", []))
    schema = None
    for option in unquote(options).split():
        if option.startswith("-csearch_path="):
            schema = option.split("=", 1)[1].split(",")[0].strip('"')
    return parts._replace(query="").geturl(), schema


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupProblem(f"{what} failed: {done.stderr.strip()[-800:]}")


# backup


def backup(settings: Settings, dest: Path, key_to: Path | None) -> dict:
    """Copy the store of `settings` to the new folder `dest`; the key to `key_to`."""
    if settings.index.uri:
        raise BackupProblem("the index is on a Milvus server: back it up with Milvus's tools "
                            "(or rebuild it from a restored catalog)")  # fmt: skip
    if dest.exists() and any(dest.iterdir()):
        raise BackupProblem(f"{dest} is not empty: a backup goes into a new folder")
    if key_to is not None and _inside(key_to, dest):
        raise BackupProblem(f"{key_to} is inside the backup: keep the key file apart from it")
    if key_to is not None and _inside(key_to, settings.data_dir):
        raise BackupProblem(f"{key_to} is inside the data folder: keep it apart from the data")
    if key_to is not None and key_to.exists():
        raise BackupProblem(f"{key_to} exists; a key file is never overwritten")
    key = _master_key(settings)
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o700)
    work = dest / ".partial"
    work.mkdir()
    listed: dict[str, dict] = {}
    if settings.index_dir.exists():
        for folder in sorted(p for p in settings.index_dir.iterdir() if p.is_dir()):
            _copy_index(folder, work / "index" / folder.name, listed)
    if settings.database_url:
        url, schema = _pg_parts(settings.database_url)
        target = work / "catalog.pgdump"
        command = [pg_program("pg_dump"), "--format=custom", "--no-owner", "--no-acl",
                   f"--file={target}", f"--dbname={url}"]  # fmt: skip
        _run(command + ([f"--schema={schema}"] if schema else []), "pg_dump")
        catalog = {"kind": "postgresql", "file": "catalog.pgdump", "schema": schema}
    else:
        if not settings.catalog_path.exists():
            raise BackupProblem(f"no catalog at {settings.catalog_path}")
        _sqlite_backup(settings.catalog_path, work / "catalog.sqlite3")
        catalog = {"kind": "sqlite", "file": "catalog.sqlite3"}
    listed[catalog["file"]] = {"bytes": (work / catalog["file"]).stat().st_size,
                               "sha256": _sha256(work / catalog["file"])}  # fmt: skip
    if settings.uploads_dir.exists():
        for path in sorted(settings.uploads_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                name = "uploads/" + path.relative_to(settings.uploads_dir).as_posix()
                listed[name] = _copy(path, work / name)
    if key_to is not None:
        material = {"format": FORMAT, "master_key": base64.b64encode(key).decode(),
                    "fingerprint": fingerprint(key)}  # fmt: skip
        if settings.crypto.audit_key is not None:
            material["audit_key"] = settings.crypto.audit_key.get_secret_value()
        _write_private(key_to, (json.dumps(material, indent=1) + "\n").encode())
    manifest = {
        "format": FORMAT, "facesearch": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "catalog": catalog,
        "key_fingerprint": fingerprint(key), "key_file": str(key_to) if key_to else None,
        "files": listed,
    }  # fmt: skip
    for name in os.listdir(work):
        os.replace(work / name, dest / name)
    work.rmdir()
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    fsync_dir(dest)
    return {
        "backup": str(dest), "catalog": catalog["kind"], "files": len(listed),
        "bytes": sum(f["bytes"] for f in listed.values()),
        "key_file": str(key_to) if key_to else None,
        "seconds": round(time.monotonic() - started, 2),
    }  # fmt: skip


# restore


def read_manifest(src: Path) -> dict:
    path = src / MANIFEST
    if not path.exists():
        raise BackupProblem(f"{src} is not a facesearch backup (no {MANIFEST})")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupProblem(f"{path} has format {manifest.get('format')}, not {FORMAT}")
    return manifest


def check_backup(src: Path, manifest: dict) -> None:
    """Every listed file present with its size and sha256: a damaged backup is refused."""
    for name, entry in manifest["files"].items():
        path = src / name
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            raise BackupProblem(f"{path} is missing or has the wrong size: the backup is damaged")
        if _sha256(path) != entry["sha256"]:
            raise BackupProblem(f"{path} differs from its sha256: the backup is damaged")


def _install_key(settings: Settings, manifest: dict, key_from: Path | None) -> None:
    wanted = manifest["key_fingerprint"]
    if key_from is not None:
        material = json.loads(key_from.read_text())
        key = base64.b64decode(material["master_key"])
        if fingerprint(key) != wanted:
            raise BackupProblem(f"{key_from} is not the key of this backup")
        if settings.crypto.master_key is None and not settings.master_key_file.exists():
            encoded = (base64.b64encode(key).decode() + "\n").encode()
            _write_private(settings.master_key_file, encoded)
            return
    try:
        configured = _master_key(settings)
    except BackupProblem:
        raise BackupProblem(
            "no master key for the restored store: give the backup's key file with --key-from"
        ) from None
    if fingerprint(configured) != wanted:
        raise BackupProblem(
            "the configured master key is not the one this backup was made with "
            "(FACESEARCH_CRYPTO__KEY_FILE, FACESEARCH_CRYPTO__MASTER_KEY or --key-from)"
        )


def _pg_empty(url: str, schema: str | None) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        name = schema or "public"
        rows = conn.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (name,)
        ).fetchone()
        if schema and rows and rows[0] == 0:
            # An empty schema of that name: dropped, so that the dump creates it as it was.
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}"')
        return bool(rows) and rows[0] == 0


def restore(settings: Settings, src: Path, key_from: Path | None) -> dict:
    """Bring the backup in `src` back into the (empty) store of `settings`."""
    started = time.monotonic()
    manifest = read_manifest(src)
    check_backup(src, manifest)
    catalog = manifest["catalog"]
    if (catalog["kind"] == "postgresql") != bool(settings.database_url):
        raise BackupProblem(
            f"the backup holds a {catalog['kind']} catalog and the store is configured for "
            f"{'postgresql' if settings.database_url else 'sqlite'}: restore it to the same kind"
        )
    index_dir = settings.index_dir
    if settings.database_url is None and settings.catalog_path.exists():
        raise Conflict(f"{settings.catalog_path} exists: restore into an empty data folder "
                       "(move the present store away first; nothing is overwritten)")  # fmt: skip
    if index_dir.exists() and any(index_dir.iterdir()):
        raise Conflict(f"{index_dir} is not empty: restore into an empty data folder")
    if settings.database_url:
        url, schema = _pg_parts(settings.database_url)
        if schema != catalog.get("schema") and catalog.get("schema"):
            raise BackupProblem(f"the backup's catalog is in schema {catalog['schema']}; "
                                "restore into a database URL with that search_path")  # fmt: skip
        if not _pg_empty(settings.database_url, schema):
            raise Conflict("the PostgreSQL catalog already holds tables: restore into an "
                           "empty database (nothing is overwritten)")  # fmt: skip
    _install_key(settings, manifest, key_from)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for name, entry in manifest["files"].items():
        if name.startswith(("index/", "uploads/")):
            target = settings.data_dir / name
            if _copy(src / name, target)["sha256"] != entry["sha256"]:
                raise BackupProblem(f"{name} changed while it was copied")
    if catalog["kind"] == "postgresql":
        command = [pg_program("pg_restore"), "--no-owner", "--no-acl", "--exit-on-error",
                   f"--dbname={url}", str(src / catalog["file"])]  # fmt: skip
        _run(command, "pg_restore")
    else:
        partial = settings.catalog_path.with_name(settings.catalog_path.name + ".restoring")
        _copy(src / catalog["file"], partial)
        os.replace(partial, settings.catalog_path)
        fsync_dir(settings.data_dir)
    return {
        "restored": str(src), "catalog": catalog["kind"], "files": len(manifest["files"]),
        "made": manifest["created_at"], "seconds": round(time.monotonic() - started, 2),
    }  # fmt: skip
