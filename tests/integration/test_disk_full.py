"""A disk that fills up in the middle of an ingest: of the catalog, of the vector index, or
a file size limit (EFBIG) on every write. Each gives one clear error line, the store still
opens and verifies, and an ingest with space again completes with nothing lost or stored
twice.

The full disks are small tmpfs mounts (root is needed: the tests skip, saying so, where
mount is refused); the file size limit (RLIMIT_FSIZE) needs no privilege.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from crashkit import (
    assert_store_intact,
    create_collection,
    facesearch,
    lfw_folder,
    run_ingest,
    snapshot,
    stored_images,
)

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.errors import StorageError

IMAGES = 100


@dataclass
class Disk:
    folder: Path

    def grow(self, size: str = "256m") -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.folder)], check=True)

    def used_bytes(self) -> int:
        stat = os.statvfs(self.folder)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Disk]:
    """A tmpfs of `size` mounted at `folder` for the duration; unmounted afterwards."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command here, so no size-limited folder can be made")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"mounting a size-limited tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield Disk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@dataclass
class Slice:
    folder: Path
    readable: list[Path]
    reference: dict
    catalog_bytes: int  # the catalog files of the uninterrupted ingest


@pytest.fixture(scope="module")
def lfw_slice(lfw, tmp_path_factory, cache_dir, analyzer) -> Slice:
    """100 LFW images and four bad files, and the catalog an uninterrupted ingest makes."""
    root = tmp_path_factory.mktemp("disk_full")
    folder = root / "in"
    readable = lfw_folder(lfw, folder, IMAGES, first_letters="G")
    settings = Settings(data_dir=root / "reference", cache_dir=cache_dir, workers=1)
    with Engine(settings, analyzer=analyzer) as engine:
        engine.create_collection("c", "LFW", "test")
        engine.ingest([folder], "c")
    catalog_bytes = sum(p.stat().st_size for p in settings.data_dir.glob("catalog.sqlite3*"))
    return Slice(folder, readable, snapshot(settings.catalog_path), catalog_bytes)


def _assert_clear_error(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    line = " ".join(stderr.split())  # as the terminal's width folded it
    assert "error: could not write" in line and "what was stored before is kept" in line


def _assert_opens_and_verifies(data_dir: Path, cache_dir: Path) -> None:
    stats = facesearch(data_dir, cache_dir, "stats", "--json")
    assert stats["exit"] == 0 and stats["images"] == stored_images(data_dir / "catalog.sqlite3")
    audit = facesearch(data_dir, cache_dir, "audit", "verify", "--json")
    assert audit["exit"] == 0 and audit["ok"], audit


@pytest.mark.slow
def test_catalog_disk_full_mid_ingest(lfw_slice, tmp_path, cache_dir):
    data_dir = tmp_path / "data"
    with small_disk(data_dir, "64m") as disk:
        create_collection(data_dir, cache_dir)
        # Room for about half the ingest's catalog beyond the empty one, whatever size the
        # schema makes an empty catalog.
        disk.grow(f"{(disk.used_bytes() + lfw_slice.catalog_bytes // 2) // 1024}k")
        # The index on a disk of its own, so that the catalog is what fills up.
        with small_disk(data_dir / "index", "64m"):
            failed = run_ingest(data_dir, cache_dir, lfw_slice.folder, "c")
            assert failed.returncode == 2, failed.stderr
            _assert_clear_error(failed.stderr)
            assert "catalog" in failed.stderr and "disk is full" in " ".join(failed.stderr.split())
            assert 0 < stored_images(data_dir / "catalog.sqlite3") < IMAGES
            # Still full: it opens, and index and audit log verify.
            _assert_opens_and_verifies(data_dir, cache_dir)
            verified = facesearch(data_dir, cache_dir, "index", "verify", "--json")
            assert verified["exit"] == 0 and verified["ok"], verified

            disk.grow()
            finished = run_ingest(data_dir, cache_dir, lfw_slice.folder, "c")
            assert finished.returncode == 0, finished.stderr
            assert_store_intact(data_dir, cache_dir, lfw_slice.reference, lfw_slice.readable)


@pytest.mark.slow
def test_index_disk_full_mid_ingest(lfw_slice, tmp_path, cache_dir):
    data_dir = tmp_path / "data"
    create_collection(data_dir, cache_dir)
    # About 40 faces' vectors and ids beside the manifest.
    with small_disk(data_dir / "index", "32k") as disk:
        failed = run_ingest(data_dir, cache_dir, lfw_slice.folder, "c")
        assert failed.returncode == 2, failed.stderr
        _assert_clear_error(failed.stderr)
        assert "no space is left" in " ".join(failed.stderr.split())
        stored = stored_images(data_dir / "catalog.sqlite3")
        assert 0 < stored < IMAGES
        _assert_opens_and_verifies(data_dir, cache_dir)
        # The index cannot catch up with the catalog while its disk is full: it says so.
        behind = facesearch(data_dir, cache_dir, "index", "verify", "--json")
        assert behind["exit"] == 2
        _assert_clear_error(behind["stderr"])
        assert not list((data_dir / "index").glob("*/*.tmp")), "a half-written file is left"

        disk.grow()
        verified = facesearch(data_dir, cache_dir, "index", "verify", "--json")
        assert verified["exit"] == 0 and verified["ok"], verified
        assert verified["caught_up"]["added"] > 0
        finished = run_ingest(data_dir, cache_dir, lfw_slice.folder, "c")
        assert finished.returncode == 0, finished.stderr
        assert_store_intact(data_dir, cache_dir, lfw_slice.reference, lfw_slice.readable)


@pytest.mark.slow
def test_file_size_limit_mid_ingest(lfw_slice, tmp_path, cache_dir):
    data_dir = tmp_path / "data"
    create_collection(data_dir, cache_dir)
    # The catalog's write-ahead log reaches the limit after a few dozen images.
    failed = run_ingest(data_dir, cache_dir, lfw_slice.folder, "c", file_size_limit=300_000)
    assert failed.returncode == 2, failed.stderr
    _assert_clear_error(failed.stderr)
    assert 0 < stored_images(data_dir / "catalog.sqlite3") < IMAGES
    _assert_opens_and_verifies(data_dir, cache_dir)
    verified = facesearch(data_dir, cache_dir, "index", "verify", "--json")
    assert verified["exit"] == 0 and verified["ok"], verified

    finished = run_ingest(data_dir, cache_dir, lfw_slice.folder, "c")
    assert finished.returncode == 0, finished.stderr
    assert_store_intact(data_dir, cache_dir, lfw_slice.reference, lfw_slice.readable)


@pytest.mark.slow
def test_a_process_that_goes_on_after_a_full_index_disk_keeps_its_index_whole(
    lfw_slice, tmp_path, cache_dir, analyzer
):
    """As the server does: the same engine ingests again once there is space. A torn
    append left by the failed write must not shift the rows written after it."""
    settings = Settings(data_dir=tmp_path / "data", cache_dir=cache_dir, workers=1,
                        batch_images=4)  # fmt: skip
    with small_disk(settings.index_dir, "32k") as disk:
        with Engine(settings, analyzer=analyzer) as engine:
            engine.create_collection("c", "LFW", "test")
            with pytest.raises(StorageError, match="no space is left"):
                engine.ingest([lfw_slice.folder], "c")
            disk.grow()
            report = engine.ingest([lfw_slice.folder], "c")
            assert report.status == "finished" and report.duplicates > 0
            verified = engine.verify_index()
            assert verified["ok"], verified["problems"]
            assert verified["caught_up"] == {"added": 0, "deleted": 0}
            assert verified["vectors_checked"] == verified["faces_in_catalog"]
        assert_store_intact(settings.data_dir, cache_dir, lfw_slice.reference, lfw_slice.readable)
