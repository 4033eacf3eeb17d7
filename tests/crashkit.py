"""Helpers of the crash and disk-full tests: a real LFW slice, the `facesearch` command in a
subprocess of its own session, and the checks that a store survived whatever was done to it.

The kills come from `facesearch.faults` (FACESEARCH_FAULT_KILL_AT=STAGE:N), which writes
`fault injection: SIGKILL at STAGE pass N (…)` to stderr before it kills the process
group; a test reads that line back to prove where each kill landed.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from badfiles import write_bad_files
from linkfarm import place

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.faults import ENV as FAULT_ENV
from facesearch.storage import open_catalog, open_catalog_file

FAULT_LINE = re.compile(r"fault injection: SIGKILL at (\w+) pass (\d+)(?: \((.*)\))?")


def lfw_folder(lfw: Path, folder: Path, count: int, first_letters: str = "C") -> list[Path]:
    """`count` LFW images (hard-linked, see linkfarm.py) and the bad files of badfiles.py;
    returns the readable images' paths as ingest records them."""
    files = sorted(f for letter in first_letters for f in lfw.glob(f"{letter}*/*.jpg"))[:count]
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        place(file, folder / f"{file.parent.name}__{file.name}")
    write_bad_files(folder / "bad", files[0].read_bytes())
    return sorted(folder.resolve() / f"{f.parent.name}__{f.name}" for f in files)


def command(data_dir: Path, cache_dir: Path, *args: str, workers: int = 1) -> list[str]:
    return [
        sys.executable, "-m", "facesearch", "--data-dir", str(data_dir),
        "--cache-dir", str(cache_dir), "--workers", str(workers), *args,
    ]  # fmt: skip


def facesearch(data_dir: Path, cache_dir: Path, *args: str, **env: str) -> dict:
    """Run a `--json` command to its end; its parsed output, exit status added."""
    done = subprocess.run(
        command(data_dir, cache_dir, *args), capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        answer = {}
    return {**answer, "exit": done.returncode, "stderr": done.stderr}


@dataclass
class Outcome:
    returncode: int
    stderr: str
    stage: str | None = None  # where the fault injection killed it
    where: str = ""

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def run_ingest(
    data_dir: Path, cache_dir: Path, folder: Path, collection: str, workers: int = 1,
    fault: str | None = None, kill_after: float | None = None,
    file_size_limit: int | None = None, **env: str,
) -> Outcome:  # fmt: skip
    """One `facesearch ingest` in its own session (its workers in its process group):
    killed by the fault `STAGE:N`, by SIGKILL to the group after `kill_after` seconds,
    or left to finish. `file_size_limit` (bytes, RLIMIT_FSIZE) makes every write past
    it fail with EFBIG, as a full disk would."""
    full_env = {**os.environ, "FACESEARCH_BATCH_IMAGES": "4", **env}
    full_env.pop(FAULT_ENV, None)
    if fault:
        full_env[FAULT_ENV] = fault
    child = subprocess.Popen(
        command(data_dir, cache_dir, "ingest", str(folder), "--collection", collection,
                "--json", workers=workers),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
        start_new_session=True,
        preexec_fn=_limit_file_size(file_size_limit) if file_size_limit else None,
    )  # fmt: skip
    try:
        _, stderr = child.communicate(timeout=kill_after or 120)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the ingest and its worker processes
        _, stderr = child.communicate(timeout=30)
    outcome = Outcome(child.returncode, stderr)
    found = FAULT_LINE.search(stderr)
    if found:
        outcome.stage, outcome.where = found.group(1), found.group(3) or ""
    return outcome


def _limit_file_size(limit: int):
    def apply() -> None:
        # Ignored, SIGXFSZ no longer kills the process: the write fails with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def stored_images(catalog_path: Path) -> int:
    try:
        conn = sqlite3.connect(catalog_path, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def kill_while_storing(
    data_dir: Path, cache_dir: Path, folder: Path, collection: str, workers: int, more: int,
    delay: float,
) -> Outcome:  # fmt: skip
    """An ingest SIGKILLed from outside (its whole process group) `delay` seconds after
    `more` images more than now are committed: a moment no fault point chose."""
    before = stored_images(data_dir / "catalog.sqlite3")
    child = subprocess.Popen(
        command(data_dir, cache_dir, "ingest", str(folder), "--collection", collection,
                "--json", workers=workers),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "FACESEARCH_BATCH_IMAGES": "4"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if stored_images(data_dir / "catalog.sqlite3") >= before + more:
            time.sleep(delay)
            break
        time.sleep(0.01)
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
    _, stderr = child.communicate(timeout=30)
    return Outcome(child.returncode, stderr, "outside" if child.returncode < 0 else None)


def create_collection(data_dir: Path, cache_dir: Path, name: str = "c") -> None:
    subprocess.run(
        command(data_dir, cache_dir, "collections", "create", name, "--source", "LFW",
                "--legal-basis", "test"), check=True, capture_output=True,
    )  # fmt: skip


def snapshot(store: Path | Settings) -> dict:
    """The catalog's content, independent of row ids and insertion order.

    `store` is a SQLite catalog file, or settings naming any back end (PostgreSQL too).
    """
    # Embeddings are sealed at rest; the catalog opens them with the configured key.
    opened = open_catalog_file(store) if isinstance(store, Path) else open_catalog(store)
    with opened as catalog:
        conn = catalog.conn
        images = sorted(
            tuple(r)
            for r in conn.execute("SELECT sha256, path, width, height, face_count FROM images")
        )
        faces: dict[str, list] = {}
        for sha, x, y, w, h, face_id in conn.execute(
            "SELECT i.sha256, f.x, f.y, f.w, f.h, f.id FROM faces f "
            "JOIN images i ON i.id = f.image_id"
        ).fetchall():
            faces.setdefault(sha, []).append((x, y, w, h, catalog.embedding(face_id)[0]))
        errors = sorted(tuple(r) for r in conn.execute("SELECT path, reason FROM ingest_errors"))
    return {"images": images, "faces": faces, "errors": errors}


def assert_same_catalog(a: dict, b: dict) -> None:
    assert a["images"] == b["images"], "the images differ from an uninterrupted run's"
    assert a["errors"] == b["errors"], "the recorded errors differ from an uninterrupted run's"
    missing = b["faces"].keys() - a["faces"].keys()
    extra = a["faces"].keys() - b["faces"].keys()
    assert not missing and not extra, f"faces of {len(missing)} images missing, {len(extra)} extra"
    for sha in a["faces"]:
        left = sorted(a["faces"][sha], key=lambda f: (f[0], f[1]))
        right = sorted(b["faces"][sha], key=lambda f: (f[0], f[1]))
        assert len(left) == len(right), f"image {sha[:12]}: {len(left)} faces, not {len(right)}"
        for fa, fb in zip(left, right, strict=True):
            # Worker processes run single-threaded; float sums may differ in the last bits.
            assert np.allclose(fa[:4], fb[:4], atol=0.5)
            assert float(fa[4] @ fb[4]) > 0.9999


def assert_store_intact(
    data_dir: Path, cache_dir: Path, reference: dict, readable: list[Path]
) -> dict:
    """Every readable image stored once, every face in the index once, the audit chain
    whole, and the catalog's content that of an uninterrupted run. Returns counts."""
    catalog_path = data_dir / "catalog.sqlite3"
    conn = sqlite3.connect(catalog_path)
    paths = [Path(p) for (p,) in conn.execute("SELECT path FROM images ORDER BY path")]
    face_ids = np.array([i for (i,) in conn.execute("SELECT id FROM faces ORDER BY id")])
    conn.close()
    assert paths == readable, "every readable image is in the catalog exactly once"

    # The index files themselves, opened without catching up from the catalog.
    with Engine(Settings(data_dir=data_dir, cache_dir=cache_dir)) as engine:
        live = engine.vector_index().live_ids()
    assert len(np.unique(live)) == len(live), "a face is in the index twice"
    assert np.array_equal(np.sort(live), face_ids), "index and catalog hold different faces"

    verified = facesearch(data_dir, cache_dir, "index", "verify", "--json")
    assert verified["exit"] == 0 and verified["ok"], verified
    assert verified["caught_up"] == {"added": 0, "deleted": 0}, verified
    assert verified["faces_in_index"] == len(face_ids)
    audit = facesearch(data_dir, cache_dir, "audit", "verify", "--json")
    assert audit["exit"] == 0 and audit["ok"], audit

    assert_same_catalog(snapshot(catalog_path), reference)
    return {"images": len(paths), "faces": len(face_ids), "audit_entries": audit["head_seq"]}
