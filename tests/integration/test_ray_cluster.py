"""Ingest on a real three-node Ray cluster (one network namespace per node) while a
worker node is killed: the run finishes and every face is stored exactly once.

Needs root, iproute2 and Ray; skips with the reason otherwise (tests/raycluster.py).
"""

from __future__ import annotations

import csv
import hashlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.pipeline.decode import decode
from facesearch.storage import open_catalog

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from raycluster import ClusterUnavailable, RayCluster

IMAGES = 2000
KILL_AFTER = 300  # images stored before the worker node is killed


@pytest.fixture
def cluster():
    try:
        cluster = RayCluster(workers=2).start()
    except ClusterUnavailable as exc:
        pytest.skip(f"no multi-node Ray cluster here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _manifest(paths: list[Path], dest: Path) -> Path:
    with dest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path"])
        writer.writerows([str(p)] for p in paths)
    return dest


def _stored_images(catalog_path: Path) -> int:
    conn = sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def _cli(settings: Settings, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "facesearch", "--data-dir", str(settings.data_dir),
        "--cache-dir", str(settings.cache_dir), *args,
    ]  # fmt: skip


@pytest.mark.slow
def test_ingest_survives_a_killed_worker_node(cluster, lfw, tmp_path, cache_dir, analyzer):
    files = sorted(lfw.glob("*/*.jpg"))[:IMAGES]
    assert len(files) == IMAGES
    distinct = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    manifest = _manifest(files, tmp_path / "lfw.csv")
    settings = Settings(data_dir=tmp_path / "data", cache_dir=cache_dir, workers=1)
    with Engine(settings, analyzer=analyzer) as engine:
        engine.create_collection("lfw", "LFW", "test on public data")

    head, first, second = cluster.nodes
    log = (tmp_path / "driver.log").open("w")
    driver = cluster.exec(
        head,
        _cli(settings, "ingest", str(manifest), "--collection", "lfw",
             "--ray", cluster.address, "--json"),
        env={"FACESEARCH_RAY__NODE_IP": head.address},
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        stored = 0
        while time.monotonic() < deadline and driver.poll() is None:
            stored = _stored_images(settings.catalog_path)
            if stored >= KILL_AFTER:
                break
            time.sleep(0.2)
        assert driver.poll() is None, f"the driver ended before the kill: {_tail(tmp_path)}"
        assert cluster.kill(second) > 0
        out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    assert KILL_AFTER <= stored < len(distinct)
    assert driver.returncode == 0, _tail(tmp_path)
    summary = json.loads(out)

    # The run finished; the dead node had done work, and its batches were done again.
    assert summary["status"] == "finished"
    assert summary["errors"] == 0
    assert summary["images_added"] == len(distinct)
    assert summary["resubmitted_batches"] >= 1
    assert summary["ray_devices"] == {"cpu": 2}  # the cluster has no GPU; none was asked for
    nodes = summary["ray_nodes"]
    assert set(nodes) == {first.address, second.address}, nodes
    assert nodes[second.address] > 0
    # Every image analysed by a node that died is analysed again; none is stored twice.
    assert sum(nodes.values()) >= len(distinct)

    # Every face is stored exactly once, in the catalog and in the vector index.
    conn = sqlite3.connect(settings.catalog_path)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM images").fetchone() == (
        len(distinct), len(distinct),
    )  # fmt: skip
    mismatched = conn.execute(
        "SELECT COUNT(*) FROM images i WHERE i.face_count != "
        "(SELECT COUNT(*) FROM faces f WHERE f.image_id = i.id)"
    ).fetchone()[0]
    faces = conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    duplicated = conn.execute(
        "SELECT COUNT(*) FROM (SELECT image_id, x, y FROM faces "
        "GROUP BY image_id, x, y HAVING COUNT(*) > 1)"
    ).fetchone()[0]
    conn.close()
    assert (mismatched, duplicated) == (0, 0)
    assert faces == summary["faces_added"] >= len(distinct)  # LFW: a face or more per image

    verify = subprocess.run(_cli(settings, "index", "verify", "--json"),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"], report["problems"]
    assert report["faces_in_index"] == report["faces_in_catalog"] == faces
    # The driver kept the index in step batch by batch: nothing left to catch up.
    assert report["caught_up"] == {"added": 0, "deleted": 0}

    # What the cluster stored is what this machine's pipeline makes of the same files.
    _assert_same_faces(settings, files[:: IMAGES // 40], analyzer)

    # Run again on the two nodes left: everything is already stored.
    again = cluster.exec(
        head,
        _cli(settings, "ingest", str(manifest), "--collection", "lfw",
             "--ray", cluster.address, "--json"),
        env={"FACESEARCH_RAY__NODE_IP": head.address},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    rerun = json.loads(out)
    assert (rerun["images_added"], rerun["duplicates_skipped"]) == (0, IMAGES)


def _assert_same_faces(settings: Settings, files: list[Path], analyzer) -> None:
    with open_catalog(settings) as catalog:
        conn = catalog.conn
        for path in files:
            expected = analyzer.faces(decode(path.read_bytes(), settings.decode).pixels)
            rows = conn.execute(
                "SELECT f.id, f.x, f.y FROM faces f JOIN images i ON i.id = f.image_id "
                "WHERE i.path = ? ORDER BY f.x",
                (str(path),),
            ).fetchall()
            assert len(rows) == len(expected), path
            expected.sort(key=lambda f: f.detection.box[0])
            for (face_id, x, y), face in zip(rows, expected, strict=True):
                assert np.allclose((x, y), face.detection.box[:2], atol=0.5)
                stored = catalog.embedding(face_id)[0]
                assert float(stored @ face.embedding) > 0.9999


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "driver.log").read_text()[-3000:]


def test_an_unreachable_cluster_is_a_clear_error(engine, lfw, tmp_path):
    engine.create_collection("c", "test", "test")
    settings = engine.settings
    with socket.socket() as closed:  # a port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    done = subprocess.run(
        _cli(settings, "ingest", str(sorted(lfw.glob("A*/*.jpg"))[0]), "--collection", "c",
             "--ray", address),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"no Ray head answers at '{address}'" in done.stderr
    assert engine.stats()["images"] == 0
