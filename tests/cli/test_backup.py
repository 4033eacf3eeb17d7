"""`facesearch backup` while an ingest and searches run in other processes, then
`facesearch restore` of each backup into an empty store: the restored store passes
`index verify` and `audit verify` and answers a search as the original did with the
same faces. On SQLite (online backup API) and on a real PostgreSQL server (pg_dump)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from linkfarm import place

from facesearch.config import Settings
from facesearch.governance.audit import audit_log
from facesearch.storage import open_catalog

PURPOSE = ["--purpose", "missing person", "--case", "B-1"]
IMAGES = 80


class Store:
    """One store driven through the command line, as an operator would."""

    def __init__(self, data: Path, cache_dir: Path, **env: str) -> None:
        self.env = {**os.environ, "FACESEARCH_BATCH_IMAGES": "2", **env}
        self.base = [sys.executable, "-m", "facesearch", "--data-dir", str(data),
                     "--cache-dir", str(cache_dir), "--workers", "1"]  # fmt: skip
        extra = {}
        if "FACESEARCH_DATABASE_URL" in env:
            extra = {"database_url": env["FACESEARCH_DATABASE_URL"],
                     "crypto": {"key_file": env["FACESEARCH_CRYPTO__KEY_FILE"]}}  # fmt: skip
        self.settings = Settings(data_dir=data, cache_dir=cache_dir, **extra)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([*self.base, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.base, *args], env=self.env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        return done

    def json(self, *args: str) -> dict:
        return json.loads(self(*args, "--json").stdout)

    def faces(self) -> set[int]:
        with open_catalog(self.settings) as catalog:
            rows = catalog.conn.execute("SELECT id FROM faces").fetchall()
        return {int(r[0]) for r in rows}

    def actions(self) -> Counter:
        with open_catalog(self.settings) as catalog:
            log = audit_log(self.settings, catalog.transaction, lambda: catalog.conn)
            return Counter(e.action for e in log.store.query(None, limit=1_000_000))


def _until(check, what: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _matches(answer: dict) -> list[tuple[int, float]]:
    return [(m["face_id"], m["score"]) for m in answer["matches"]]


def _scenario(tmp_path: Path, cache_dir: Path, lfw: Path, env_of) -> list[int]:
    """Backups during and after an ingest, each restored and checked; the faces each held."""
    live = Store(tmp_path / "live", cache_dir, **env_of("live"))
    live("collections", "create", "c", "--source", "LFW", "--legal-basis", "test")
    folder = tmp_path / "photos"
    folder.mkdir()
    files = sorted(lfw.glob("B*/*.jpg"))[:IMAGES]
    for file in files:
        place(file, folder / f"{file.parent.name}__{file.name}")
    probes = [files[0], files[IMAGES // 2], sorted(lfw.glob("C*/*.jpg"))[0]]
    keys = tmp_path / "keys"  # apart from the data and the backups
    ingest = live.start("ingest", str(folder), "--collection", "c")
    made: list[tuple[Path, Path]] = []
    try:
        for n, at_least in enumerate((6, 20)):
            _until(lambda m=at_least: len(live.faces()) >= m or ingest.poll() is not None,
                   f"{at_least} faces stored")  # fmt: skip
            assert ingest.poll() is None, "the ingest ended before the backup; give it more"
            searching = live.start("search", str(probes[0]), *PURPOSE, "--json")
            dest, key = tmp_path / f"backup-{n}", keys / f"backup-{n}.key"
            summary = live.json("backup", str(dest), "--key-to", str(key))
            assert summary["files"] >= 4 and oct(key.stat().st_mode & 0o777) == "0o600"
            assert searching.wait(timeout=600) == 0, searching.stderr
            made.append((dest, key))
        assert ingest.wait(timeout=900) == 0, ingest.stderr.read()
    finally:
        if ingest.poll() is None:
            ingest.kill()
    dest, key = tmp_path / "backup-final", keys / "backup-final.key"
    live.json("backup", str(dest), "--key-to", str(key))
    made.append((dest, key))
    assert live.actions()["backup"] == 3
    everything = {str(p): live.json("search", str(p), *PURPOSE, "--top", "500") for p in probes}
    held = []
    for n, (dest, key) in enumerate(made):
        restored = Store(tmp_path / f"restored-{n}", cache_dir, **env_of(f"restored-{n}"))
        report = restored.json("restore", str(dest), "--key-from", str(key))
        assert report["index_ok"] and report["audit_ok"], report
        assert json.loads(restored("index", "verify", "--json").stdout)["ok"]
        restored("audit", "verify")
        faces = restored.faces()
        assert faces <= live.faces() and report["index_faces"] == len(faces)
        actions = restored.actions()
        # The backups made before this one are in its copy of the log; its own is not.
        assert actions["restore"] == 1 and actions["backup"] == n, actions
        if n == 0:
            assert actions["ingest_finished"] == 0, "the first backup was made mid-ingest"
        for probe in probes:
            answer = restored.json("search", str(probe), *PURPOSE, "--top", "10")
            expected = [m for m in _matches(everything[str(probe)]) if m[0] in faces][:10]
            got = _matches(answer)
            assert [f for f, _ in got] == [f for f, _ in expected], (n, probe.name)
            assert all(abs(a - b) < 2e-4 for (_, a), (_, b) in zip(got, expected, strict=True))
        held.append(len(faces))
    assert held[0] < held[2] and held[0] <= held[1] <= held[2] == len(live.faces()), held
    return held


def test_backup_during_ingest_and_restore_on_sqlite(tmp_path, cache_dir, lfw):
    held = _scenario(tmp_path, cache_dir, lfw, lambda name: {})
    print(f"backups restored: {len(held)}, faces {held}")


def test_backup_during_ingest_and_restore_on_postgresql(tmp_path, cache_dir, lfw, postgres):
    import psycopg

    live_url = postgres.create_database()
    schema = live_url.rsplit("%3D", 1)[1]

    def env_of(name: str) -> dict:
        if name == "live":
            url = live_url
        else:  # a database of its own, with the catalog's schema name, as on a new server
            database = f"{schema}_{name.replace('-', '_')}"
            with psycopg.connect(postgres.url(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {database}")
            url = f"{postgres.url(database)}?options=-csearch_path%3D{schema}"
        return {"FACESEARCH_DATABASE_URL": url,
                "FACESEARCH_CRYPTO__KEY_FILE": str(tmp_path / f"{name}.key")}  # fmt: skip

    held = _scenario(tmp_path, cache_dir, lfw, env_of)
    print(f"backups restored: {len(held)}, faces {held}")


def test_backup_refuses_a_key_beside_the_data_and_restore_never_overwrites(tmp_path, cache_dir):
    store = Store(tmp_path / "data", cache_dir)
    store("collections", "create", "c", "--source", "LFW", "--legal-basis", "test")
    done = store("backup", str(tmp_path / "b"), code=2)
    assert "--key-to" in done.stderr
    done = store("backup", str(tmp_path / "b"), "--key-to", str(tmp_path / "b" / "k"), code=2)
    assert "apart" in done.stderr
    done = store("backup", str(tmp_path / "b"), "--key-to", str(tmp_path / "data" / "k"), code=2)
    assert "apart" in done.stderr
    store("backup", str(tmp_path / "b"), "--key-to", str(tmp_path / "keys" / "k"))
    # Into the store it came from: refused, nothing overwritten.
    done = store("restore", str(tmp_path / "b"), code=2)
    assert "exists" in done.stderr
    # A backup file changed after the fact: refused before anything is copied.
    other = Store(tmp_path / "other", cache_dir)
    catalog = tmp_path / "b" / "catalog.sqlite3"
    data = bytearray(catalog.read_bytes())
    data[len(data) // 2] ^= 0x01
    catalog.write_bytes(bytes(data))
    done = other("restore", str(tmp_path / "b"), "--key-from", str(tmp_path / "keys" / "k"),
                 code=2)  # fmt: skip
    assert "damaged" in done.stderr and not (tmp_path / "other" / "catalog.sqlite3").exists()
