"""The engine with its persistent index: deletes, collection filters, kill -9 and verify."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from linkfarm import place
from typer.testing import CliRunner

from facesearch.cli import app
from facesearch.config import Settings
from facesearch.engine import Engine

ROOT = Path(__file__).resolve().parents[2]


def _people(lfw: Path, names: list[str]) -> dict[str, list[Path]]:
    return {name: sorted((lfw / name).glob("*.jpg"))[:4] for name in names}


def _link(folder: Path, files: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        place(file, folder / file.name)
    return folder


def test_delete_and_collection_filters_through_the_engine(engine, lfw, tmp_path):
    people = _people(lfw, ["Colin_Powell", "Tony_Blair", "George_W_Bush", "Gerhard_Schroeder"])
    for collection, names in (("a", ["Colin_Powell", "Tony_Blair"]),
                              ("b", ["George_W_Bush", "Gerhard_Schroeder"])):  # fmt: skip
        engine.create_collection(collection, "LFW", "test")
        files = [f for name in names for f in people[name][1:]]
        engine.ingest([_link(tmp_path / collection, files)], collection)
    probe = people["Colin_Powell"][0].read_bytes()

    everywhere = engine.search(probe, top_k=20)
    assert {h.collection for h in everywhere.hits} == {"a", "b"}
    only_b = engine.search(probe, top_k=20, collections=["b"])
    assert only_b.hits and {h.collection for h in only_b.hits} == {"b"}
    assert only_b.searched_faces < everywhere.searched_faces

    best = everywhere.hits[0]
    assert "Colin_Powell" in best.path
    assert engine.delete_faces([best.face_id]) == 1
    assert best.face_id not in {h.face_id for h in engine.search(probe, top_k=20).hits}
    # Another engine, as another process would open it, never returns it either.
    with Engine(engine.settings, analyzer=engine.analyzer) as again:
        hits = again.search(probe, top_k=20).hits
        assert best.face_id not in {h.face_id for h in hits}
        assert hits[0].path != best.path and "Colin_Powell" in hits[0].path
        report = again.verify_index()
        assert report["ok"], report["problems"]
        assert report["tombstones"] == 1


def test_kill_9_during_index_writes_then_verify_agrees(lfw_embeddings, tmp_path, cache_dir):
    vectors_path = tmp_path / "vectors.npy"
    np.save(vectors_path, lfw_embeddings[0])
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "FACESEARCH_CACHE_DIR": str(cache_dir),
        # Small enough that the IVF is trained, written and compacted while it is killed.
        "FACESEARCH_INDEX__APPROX_MIN_FACES": "150",
        "FACESEARCH_INDEX__FACTORY": "IVF16,SQ8",
    }
    rng = np.random.default_rng(4)
    for seed in range(6):
        child = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "index_crash_child.py"), str(data_dir),
             str(vectors_path), str(seed)], env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(float(rng.uniform(1.0, 3.0)))
        assert child.poll() is None, "the child stopped before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "--cache-dir", str(cache_dir),
                                      "index", "verify", "--json"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = Settings(data_dir=data_dir, cache_dir=cache_dir, index={"approx_min_faces": 150})
    with Engine(settings) as engine:
        report = engine.verify_index()
        assert report["ok"] and report["faces_in_index"] > 150, report
        index = engine.vector_index()
        assert index.approximate
        deleted = engine.catalog.deleted_face_ids()
        assert len(deleted) > 0
        found = index.search(lfw_embeddings[0][:200], 10)[1]
        assert not np.isin(found, deleted).any()
        # Rebuild from the catalog alone gives the same faces.
        live = index.live_ids()
        engine.rebuild_index()
        assert np.array_equal(engine.vector_index().live_ids(), live)
        assert engine.verify_index()["ok"]
