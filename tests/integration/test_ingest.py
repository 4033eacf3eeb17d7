"""Ingest with real models: bad files, interruption and resumption."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from badfiles import write_bad_files
from crashkit import assert_same_catalog, snapshot
from linkfarm import place

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.store.database import connect


def _lfw_slice(lfw: Path, count: int) -> list[Path]:
    return sorted(lfw.glob("A*/*.jpg"))[:count]


def _link_folder(folder: Path, files: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        place(file, folder / f"{file.parent.name}__{file.name}")
    return folder


def test_bad_files_are_recorded_and_the_batch_finishes(catalog_engine, lfw, tmp_path):
    engine = catalog_engine  # on SQLite, then on PostgreSQL
    good = _lfw_slice(lfw, 3)
    folder = _link_folder(tmp_path / "in", good)
    expected = write_bad_files(folder, good[0].read_bytes())
    engine.create_collection("mixed", "test", "test")
    report = engine.ingest([folder], "mixed")
    assert (report.images, report.errors) == (3, len(expected))
    reasons = {Path(e["path"]).name: e["reason"] for e in engine.catalog.errors()}
    assert reasons.keys() == expected.keys()
    for name, phrase in expected.items():
        assert phrase in reasons[name], (name, reasons[name])
    assert engine.stats()["faces"] >= 3
    # Again: nothing is stored twice and each error stays one row.
    again = engine.ingest([folder], "mixed")
    assert (again.images, again.duplicates, again.errors) == (0, 3, len(expected))
    assert engine.stats()["images"] == 3 and len(engine.catalog.errors()) == len(expected)


def test_ctrl_c_keeps_what_was_stored_and_a_rerun_completes(catalog_engine, lfw, tmp_path):
    engine = catalog_engine  # on SQLite, then on PostgreSQL
    folder = _link_folder(tmp_path / "in", _lfw_slice(lfw, 40))
    engine.settings.batch_images = 8
    engine.create_collection("c", "test", "test")

    def interrupt_after_two_batches(report):
        if report.done >= 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.ingest([folder], "c", interrupt_after_two_batches)
    assert engine.stats()["images"] == 16
    assert engine.catalog.runs()[0]["status"] == "interrupted"
    report = engine.ingest([folder], "c")
    assert (report.images, report.duplicates) == (24, 16)
    assert engine.stats()["images"] == 40


@pytest.mark.slow
def test_kill_9_mid_ingest_then_resume_gives_the_same_catalog(
    catalog_backend, lfw, tmp_path, cache_dir, analyzer, request
):
    """The resumed catalog (on SQLite, then on PostgreSQL) equals a SQLite reference."""
    files = _lfw_slice(lfw, 120)
    folder = _link_folder(tmp_path / "in", files)
    write_bad_files(folder / "bad", files[0].read_bytes())

    reference = Settings(data_dir=tmp_path / "reference", cache_dir=cache_dir, workers=1)
    with Engine(reference, analyzer=analyzer) as engine:
        engine.create_collection("c", "test", "test")
        engine.ingest([folder], "c")

    extra, env = {}, dict(os.environ)
    if catalog_backend == "postgresql":
        url, key = request.getfixturevalue("database_url"), tmp_path / "resumed.key"
        extra = {"database_url": url, "crypto": {"key_file": key}}
        env |= {"FACESEARCH_DATABASE_URL": url, "FACESEARCH_CRYPTO__KEY_FILE": str(key)}
    interrupted = Settings(data_dir=tmp_path / "resumed", cache_dir=cache_dir, workers=2, **extra)
    with Engine(interrupted) as engine:
        engine.create_collection("c", "test", "test")
    command = [
        sys.executable, "-m", "facesearch", "--data-dir", str(interrupted.data_dir),
        "--cache-dir", str(cache_dir), "--workers", "2", "ingest", str(folder), "--collection", "c",
    ]  # fmt: skip
    child = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    stored = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        conn = connect(interrupted.catalog_location)
        stored = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        conn.close()
        if stored >= 20:
            break
        time.sleep(0.02)
    assert child.poll() is None, "the ingest finished before it could be killed"
    os.killpg(child.pid, signal.SIGKILL)  # the parent and its worker processes
    child.wait()
    assert 20 <= stored < len(files)

    with Engine(interrupted, analyzer=analyzer) as engine:
        report = engine.ingest([folder], "c")
    assert report.duplicates >= 20
    assert_same_catalog(snapshot(interrupted), snapshot(reference))
