"""Audit completeness on the command line (issue 18): an ingest records how it ended,
also when it fails or is interrupted, and each governed command is exactly one entry."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from crashkit import stored_images
from linkfarm import place

from facesearch.config import Settings
from facesearch.governance.audit import audit_log
from facesearch.storage import open_catalog

PURPOSE = ["--purpose", "missing person", "--case", "MP-1"]


class Cli:
    def __init__(self, data: Path, cache_dir: Path) -> None:
        self.settings = Settings(data_dir=data, cache_dir=cache_dir, workers=1)
        self.base = [sys.executable, "-m", "facesearch", "--data-dir", str(data),
                     "--cache-dir", str(cache_dir), "--workers", "1"]  # fmt: skip

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == code, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        return done

    def actions(self) -> Counter:
        with open_catalog(self.settings) as catalog:
            log = audit_log(self.settings, catalog.transaction, lambda: catalog.conn)
            return Counter(e.action for e in log.store.query(None, limit=1_000_000))

    def ended(self) -> list[dict]:
        with open_catalog(self.settings) as catalog:
            log = audit_log(self.settings, catalog.transaction, lambda: catalog.conn)
            rows = log.store.query(None, action="ingest_finished", limit=1000)
        return [json.loads(r.details) for r in reversed(rows)]


@pytest.fixture
def cli(tmp_path, cache_dir) -> Cli:
    cli = Cli(tmp_path / "data", cache_dir)
    cli("collections", "create", "c", "--source", "LFW", "--legal-basis", "test")
    return cli


def _folder(lfw: Path, folder: Path, count: int) -> Path:
    folder.mkdir()
    for file in sorted(lfw.glob("C*/*.jpg"))[:count]:
        place(file, folder / f"{file.parent.name}__{file.name}")
    return folder


def test_an_ingest_that_fails_or_is_interrupted_still_records_how_it_ended(cli, lfw, tmp_path):
    # Fails before its run begins: the folder is not there.
    cli("ingest", str(tmp_path / "missing"), "--collection", "c", code=2)
    assert cli.ended()[-1] == {"collection": "c", "status": "failed", "images": 0, "faces": 0,
                               "blocked": 0, "run_id": 0}  # fmt: skip

    # Interrupted by Ctrl-C (SIGINT) once a few batches are stored.
    folder = _folder(lfw, tmp_path / "in", 120)
    running = subprocess.Popen(
        [*cli.base, "ingest", str(folder), "--collection", "c"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while stored_images(cli.settings.catalog_path) < 16 and time.monotonic() < deadline:
            assert running.poll() is None, running.communicate()[1][-2000:]
            time.sleep(0.1)
        running.send_signal(signal.SIGINT)
        _, err = running.communicate(timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 130 and "Traceback" not in err, err[-2000:]
    interrupted = cli.ended()[-1]
    stored = stored_images(cli.settings.catalog_path)
    assert interrupted["status"] == "interrupted" and interrupted["run_id"] > 0
    assert 16 <= interrupted["images"] == stored < 120

    # Fails during its run: the Ray cluster it was sent to does not answer.
    pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    cli("ingest", str(folder), "--collection", "c", "--ray", "127.0.0.1:9", code=2)
    failed = cli.ended()[-1]
    assert failed["status"] == "failed" and failed["run_id"] > interrupted["run_id"]
    assert cli.actions()["ingest"] == cli.actions()["ingest_finished"] == 3


def test_each_governed_command_is_exactly_one_audit_entry(cli, wild, tmp_path):
    folder = tmp_path / "pick"
    folder.mkdir()
    for name in ("img1.jpg", "img2.jpg", "img4.jpg"):
        place(wild / name, folder / name)
    before = cli.actions()
    cli("ingest", str(folder), "--collection", "c")
    assert cli.actions() - before == Counter({"ingest": 1, "ingest_finished": 1})

    def one(action: str, *args: str) -> subprocess.CompletedProcess:
        before = cli.actions()
        done = cli(*args)
        assert cli.actions() - before == Counter({action: 1}), args
        return done

    found = json.loads(one("search", "search", str(wild / "img4.jpg"), *PURPOSE, "--json").stdout)
    face = found["matches"][0]["face_id"]
    one("view", "faces", "thumbnail", str(face), "--output", str(tmp_path / "face.jpg"))
    one("export", "audit", "list", "--csv", str(tmp_path / "audit.csv"))
    one("erase", "rights", "erase", str(face), "--reference", "ER-1")
