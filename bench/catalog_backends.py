"""Catalog benchmark: the same store operations on SQLite and on a local PostgreSQL server.

What the catalog costs around ingest and search, not the models: batches of
synthetic images (two faces each, real sealing of 128-d embeddings and 3 KB
thumbnails) are stored, the index's catch-up read and the search's hit lookup
are timed, and a hundred faces are erased. The back ends alternate within each
round, so ratios are taken under the same load. PostgreSQL runs on this
machine (tests/postgres.py starts it: fsync off, as in the tests), so the
figures leave out a network round trip, which a real deployment adds to every
statement (see the note in the results).

Results go to bench/results/catalog_backends.json and .md. From the repo root:

    python bench/catalog_backends.py --images 2000 8000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from postgres import PostgresServer, _bin_dir  # noqa: E402

from facesearch.governance.crypto import Keyring  # noqa: E402
from facesearch.store.catalog import Catalog  # noqa: E402
from facesearch.types import Detection, FaceRecord, ImageResult, SourceItem  # noqa: E402

BATCH = 16
# Written under the table; the figures it quotes are from the committed run.
NOTE = """
What it means. SQLite is a library call in the process; every PostgreSQL statement is a round
trip to a server process, so the gap is round trips, not work: a batch is about six statements
whatever its size, which is why store cost per image is flat in the catalog's size (1,000 and
4,000 images above); the index catch-up read is one query that streams every row, 1 to 4
times slower than SQLite's (its rows arrive as text and are decoded). The
machine was shared with other jobs (load average above); in an earlier run at a load average
near 30 the same PostgreSQL figures were 5 to 8 times worse (120 to 170 images/s, 16 to 24 ms
per lookup) because each statement waited for its server process to be scheduled. One node
ingests about 28 LFW images/s with the models on these 2 cores (bench/results/ingest.md), far
below either store rate, so the catalog does not limit a node. Nodes sharing one catalog write
one batch at a time (the writer lock), so together they store at most one batch per batch time,
here about 1,000 images/s; a network adds one round trip (typically 0.1 to 0.5 ms in a data
centre) per statement, and a search adds one lookup of its hits (about 2 ms here).
"""


def _batches(count: int, seed: int) -> list[list[ImageResult]]:
    rng = np.random.default_rng(seed)
    results = []
    for n in range(count):
        faces = []
        for k in range(2):
            vector = rng.normal(size=128).astype(np.float32)
            detection = Detection((10.0 * k, 5.0, 40.0, 50.0), np.zeros((5, 2), np.float32), 0.9)
            faces.append(FaceRecord(detection, vector / np.linalg.norm(vector), 0.8,
                                    rng.bytes(3000)))  # fmt: skip
        item = SourceItem(Path(f"/archive/{seed}/{n:07d}.jpg"))
        results.append(ImageResult(item, f"{seed:04d}{n:060d}", 100_000, width=640, height=480,
                                   faces=faces))  # fmt: skip
    return [results[i : i + BATCH] for i in range(0, count, BATCH)]


def _measure(location, key_dir: Path, images: int, seed: int) -> dict:
    catalog = Catalog(location, Keyring.from_file(key_dir / "master.key"))
    try:
        collection = catalog.create_collection(f"c{seed}", "bench", "bench")
        run = catalog.start_run(collection, ["/archive"])
        batches = _batches(images, seed)
        per_batch = []
        start = time.perf_counter()
        for batch in batches:
            t = time.perf_counter()
            catalog.store_results(collection, run, batch, "m", "1")
            per_batch.append(time.perf_counter() - t)
        store_s = time.perf_counter() - start
        top, _ = catalog.index_marks()
        t = time.perf_counter()
        ids, vectors = catalog.embeddings_between("m", "1", 0, top, 10**9)
        sync_s = time.perf_counter() - t
        assert len(ids) == 2 * images and vectors.shape == (2 * images, 128)
        rng = np.random.default_rng(seed)
        lookups = []
        for _ in range(50):
            hits = rng.choice(ids, 10, replace=False).tolist()
            t = time.perf_counter()
            rows = catalog.faces(hits)
            lookups.append(time.perf_counter() - t)
            assert len(rows) == 10
        t = time.perf_counter()
        erased = catalog.delete_faces(ids[:100].tolist())
        erase_s = time.perf_counter() - t
        assert erased == 100
        return {
            "images": images, "faces": 2 * images,
            "store_images_per_s": images / store_s,
            "store_batch_ms_median": 1000 * statistics.median(per_batch),
            "sync_read_faces_per_s": len(ids) / sync_s,
            "hit_lookup_ms_median": 1000 * statistics.median(lookups),
            "erase_100_ms": 1000 * erase_s,
        }  # fmt: skip
    finally:
        catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    bin_dir = _bin_dir()
    if bin_dir is None:
        sys.exit("PostgreSQL's server is not installed (apt-get install postgresql)")
    server = PostgresServer(bin_dir)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed = 0
            for images in args.images:
                for round_ in range(args.rounds):
                    for backend in ("sqlite", "postgresql"):
                        seed += 1
                        location = (server.create_database() if backend == "postgresql"
                                    else Path(tmp) / f"c{seed}.sqlite3")  # fmt: skip
                        row = _measure(location, Path(tmp), images, seed)
                        row |= {"backend": backend, "round": round_}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    finally:
        server.stop()
    summary = []
    for images in args.images:
        for backend in ("sqlite", "postgresql"):
            mine = [r for r in rows if r["images"] == images and r["backend"] == backend]
            summary.append({"backend": backend, "images": images} | {
                k: statistics.median(r[k] for r in mine)
                for k in ("store_images_per_s", "store_batch_ms_median", "sync_read_faces_per_s",
                          "hit_lookup_ms_median", "erase_100_ms")
            })  # fmt: skip
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/catalog_backends.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": os.getloadavg(),
        "postgresql": str(bin_dir),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "catalog_backends.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": rows}, indent=2) + "\n"
    )
    lines = [
        "# Catalog on SQLite and on PostgreSQL",
        "",
        f"`{meta['command']}` on {meta['date']}, {meta['machine']}, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in meta['load_average_at_end'])}. Medians of "
        f"{args.rounds} rounds; the back ends alternate within each round. Synthetic images "
        "with two faces each (sealed 128-d embeddings and 3 KB thumbnails), stored in batches "
        f"of {BATCH} as ingest does; PostgreSQL 15 on the same machine over TCP on 127.0.0.1.",
        "",
        "| back end | images | store, images/s | ms per batch of 16 | index catch-up read, "
        "faces/s | 10 hits looked up, ms | erase 100 faces, ms |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['backend']} | {s['images']} | {s['store_images_per_s']:.0f} | "
            f"{s['store_batch_ms_median']:.1f} | {s['sync_read_faces_per_s']:.0f} | "
            f"{s['hit_lookup_ms_median']:.2f} | {s['erase_100_ms']:.1f} |"
        )
    (args.out / "catalog_backends.md").write_text("\n".join(lines) + "\n" + NOTE)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
