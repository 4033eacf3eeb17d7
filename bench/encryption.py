"""What encryption at rest costs ingest and search.

1. Per face: sealing (AES-256-GCM) a 512-byte embedding and a real thumbnail,
   and opening them again, against the whole per-face ingest cost measured on
   real LFW photos in the same run.
2. Catalog read-back: rebuilding the index from the catalog opens every sealed
   embedding; timed for N stored faces (synthetic unit vectors, real-size
   thumbnails) against joining the same plain bytes.
3. The persistent index's query latency, plain against sealed (AES-256-GCM blocks
   authenticated and decrypted as they are read), exact and IVF; and the reads
   themselves (100 scattered rows, a full scan) from a plain map, the older AES-CTR
   rows and the GCM blocks at three block sizes, in the same run.
4. Search: the median latency of a real probe search over the LFW catalog,
   and the time of opening the top-k thumbnails it returns.

Results go to bench/results/encryption.json and encryption.md. Run from the repo root:

    python bench/encryption.py [--lfw-images 48] [--sizes 1000 10000 50000]
    python bench/encryption.py --parts index --sizes 10000 50000   # the index only

`--parts` runs some sections and keeps the others of the earlier results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facesearch.config import IndexSettings, Settings
from facesearch.engine import Engine
from facesearch.governance.crypto import open_sealed, seal
from facesearch.index import sealed
from facesearch.index.files import RowCipher, append, mapped_rows, vector_bytes
from facesearch.index.persistent import PersistentIndex
from facesearch.storage import open_catalog_file
from facesearch.types import Detection, FaceRecord, ImageResult, SourceItem

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data")) / "lfw"
RESULTS = ROOT / "bench" / "results"


def _median_us(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def per_face(thumbnail: bytes) -> dict:
    key = os.urandom(32)
    vector = np.random.default_rng(0).standard_normal(128).astype("<f4").tobytes()
    sealed_v, sealed_t = seal(key, vector, b"e"), seal(key, thumbnail, b"t")
    return {
        "thumbnail_bytes": len(thumbnail),
        "seal_embedding_us": _median_us(lambda: seal(key, vector, b"e"), 2000),
        "seal_thumbnail_us": _median_us(lambda: seal(key, thumbnail, b"t"), 2000),
        "open_embedding_us": _median_us(lambda: open_sealed(key, sealed_v, b"e"), 2000),
        "open_thumbnail_us": _median_us(lambda: open_sealed(key, sealed_t, b"t"), 2000),
    }


def index_load(sizes: list[int], thumbnail: bytes, folder: Path) -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    for size in sizes:
        path = folder / f"load-{size}" / "catalog.sqlite3"
        catalog = open_catalog_file(path)
        collection = catalog.create_collection("c", "synthetic", "bench")
        vectors = rng.standard_normal((size, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        detection = Detection((0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32), 0.9)
        batch = 1000
        for start in range(0, size, batch):
            results = [
                ImageResult(SourceItem(Path(f"{n}.jpg")), f"{n:064x}", 1, 10, 10,
                            [FaceRecord(detection, vectors[n], 0.5, thumbnail)])
                for n in range(start, min(size, start + batch))
            ]  # fmt: skip
            catalog.store_results(collection, catalog.start_run(collection, []), results,
                                  "sface-2021dec", "2021dec")  # fmt: skip
        sealed = catalog.conn.execute("SELECT embedding FROM faces").fetchall()
        plain = [v.tobytes() for v in vectors]
        loads = []
        for _ in range(5):
            start = time.perf_counter()
            catalog._data_keys.clear()
            _ids, got = catalog.embeddings("sface-2021dec", "2021dec")
            loads.append(time.perf_counter() - start)
        assert np.allclose(got, vectors)
        joins = []
        for _ in range(5):
            start = time.perf_counter()
            np.frombuffer(b"".join(plain), "<f4").reshape(size, -1).astype(np.float32)
            joins.append(time.perf_counter() - start)
        reads = []
        for _ in range(5):
            start = time.perf_counter()
            catalog.conn.execute("SELECT id, embedding, collection_id FROM faces").fetchall()
            reads.append(time.perf_counter() - start)
        catalog.close()
        rows.append({
            "faces": size, "load_sealed_s": statistics.median(loads),
            "sqlite_read_s": statistics.median(reads), "plain_join_s": statistics.median(joins),
            "decrypt_share": 1 - (statistics.median(reads) + statistics.median(joins))
            / statistics.median(loads), "stored_embedding_bytes": len(sealed[0][0]),
        })  # fmt: skip
        print(rows[-1])
    return rows


def index_search(sizes: list[int], folder: Path) -> list[dict]:
    """Query latency of the persistent index, plain against sealed, exact and IVF."""
    rows = []
    key = os.urandom(32)
    probes = np.random.default_rng(7).standard_normal((60, 128)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    for size in sizes:
        vectors = np.random.default_rng(size).standard_normal((size, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = np.arange(1, size + 1)
        for mode, settings in (
            ("exact", IndexSettings(approx_min_faces=10**9)),
            ("ivf", IndexSettings(approx_min_faces=1, factory="IVF64,Flat", nprobe=8)),
        ):
            row = {"faces": size, "mode": mode}
            indexes = {}
            cache = sealed.CACHE_BLOCKS
            for name, k in (("plain", None), ("sealed", key), ("uncached", key)):
                # "uncached": every block a search reads is decrypted again (the cold case).
                sealed.CACHE_BLOCKS = 0 if name == "uncached" else cache
                index = PersistentIndex(folder / f"idx-{size}-{mode}-{name}", "m", "1", 128,
                                        settings, k)  # fmt: skip
                index.add(ids, vectors)
                if mode == "ivf":
                    index.train()
                indexes[name] = index
            sealed.CACHE_BLOCKS = cache
            # Interleaved, so that what else runs on the machine weighs on all alike; each
            # probe once (a repeated probe would find its blocks decrypted already).
            times: dict[str, list[float]] = {name: [] for name in indexes}
            for probe in probes:
                for name, index in indexes.items():
                    start = time.perf_counter()
                    index.search(probe[None, :], 10)
                    times[name].append(time.perf_counter() - start)
            for name, index in indexes.items():
                row[f"{name}_ms"] = statistics.median(times[name]) * 1e3
                index.close()
            row["ratio"] = row["sealed_ms"] / row["plain_ms"]
            row["uncached_ratio"] = row["uncached_ms"] / row["plain_ms"]
            rows.append(row)
            print(row)
    return rows


def row_reads(sizes: list[int], folder: Path) -> list[dict]:
    """The vectors file read as search reads it: 100 scattered rows (an IVF re-ranking)
    and every row (an exact scan), plain, AES-CTR (format 1) and GCM blocks (format 2)."""
    rows = []
    key = os.urandom(32)
    rng = np.random.default_rng(11)
    for size in sizes:
        vectors = np.random.default_rng(size).standard_normal((size, 128)).astype(np.float32)
        sets = [np.sort(rng.choice(size, 100, replace=False)) for _ in range(100)]
        probe = vectors[0]
        readers, paths = {}, {}
        paths["plain"] = folder / f"plain-{size}.f32"
        append(paths["plain"], vector_bytes(None, "plain", 0, vectors), 0)
        readers["plain"] = sealed.PlainRows(128).open(paths["plain"], size)
        paths["ctr"] = folder / f"ctr-{size}.f32"
        append(paths["ctr"], vector_bytes(RowCipher(key), paths["ctr"].name, 0, vectors), 0)
        readers["ctr"] = mapped_rows(paths["ctr"], size, 128, RowCipher(key))
        default, cache = sealed.BLOCK_BYTES, sealed.CACHE_BLOCKS
        sealed.CACHE_BLOCKS = 0  # every block decrypted each time it is read: the raw cost
        try:
            for block_bytes in (1024, 4096, 16384):
                sealed.BLOCK_BYTES = block_bytes
                name = f"gcm{block_bytes}"
                paths[name] = folder / f"gcm-{size}-{block_bytes}.f32"
                layout = sealed.GcmBlocks(key, 128)
                layout.append(paths[name], 0, vectors)
                readers[name] = layout.open(paths[name], size)
                assert np.array_equal(readers[name][sets[0]], vectors[sets[0]])
            # Interleaved, so that what else runs on the machine weighs on all alike.
            scattered_s: dict[str, list[float]] = {name: [] for name in readers}
            scan_s: dict[str, list[float]] = {name: [] for name in readers}
            for turn, scattered in enumerate(sets):
                for name, reader in readers.items():
                    sealed.BLOCK_BYTES = int(name[3:]) if name.startswith("gcm") else default
                    start = time.perf_counter()
                    reader[scattered] @ probe
                    scattered_s[name].append(time.perf_counter() - start)
                    if turn % 10 == 0:
                        start = time.perf_counter()
                        reader[0:size] @ probe
                        scan_s[name].append(time.perf_counter() - start)
            for name in readers:
                rows.append({
                    "faces": size, "reader": name,
                    "scattered_100_us": statistics.median(scattered_s[name]) * 1e6,
                    "scan_ms": statistics.median(scan_s[name]) * 1e3,
                    "file_bytes": paths[name].stat().st_size,
                })  # fmt: skip
        finally:
            sealed.BLOCK_BYTES, sealed.CACHE_BLOCKS = default, cache
        base = next(r for r in rows if r["faces"] == size and r["reader"] == "plain")
        for row in rows:
            if row["faces"] == size:
                row["scattered_ratio"] = row["scattered_100_us"] / base["scattered_100_us"]
                row["scan_ratio"] = row["scan_ms"] / base["scan_ms"]
                print(row)
    return rows


def real_ingest_and_search(count: int, folder: Path) -> dict:
    photos = sorted((LFW / "images_deepfunneled").glob("*/*_0001.jpg"))[:count]
    settings = Settings(data_dir=folder / "real", workers=1)
    with Engine(settings) as engine:
        engine.create_collection("lfw", "LFW", "bench")
        start = time.perf_counter()
        report = engine.ingest(photos, "lfw")
        seconds = time.perf_counter() - start
        probe = photos[0].parent / photos[0].name.replace("_0001", "_0002")
        probe = probe if probe.exists() else photos[0]
        data = probe.read_bytes()
        engine.search(data, 20)  # warm: models and index
        latencies = []
        for _ in range(15):
            t = time.perf_counter()
            result = engine.search(data, 20)
            latencies.append(time.perf_counter() - t)
        ids = [h.face_id for h in result.hits]
        opens = []
        for _ in range(15):
            t = time.perf_counter()
            engine.catalog.faces(ids)
            opens.append(time.perf_counter() - t)
    return {
        "images": report.images, "faces": report.faces, "ingest_s": seconds,
        "ingest_ms_per_face": seconds / max(report.faces, 1) * 1e3,
        "search_median_ms": statistics.median(latencies) * 1e3,
        "top20_rows_with_thumbnails_ms": statistics.median(opens) * 1e3,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lfw-images", type=int, default=48)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--parts", nargs="+", choices=["catalog", "index"],
                        default=["catalog", "index"])  # fmt: skip
    args = parser.parse_args()
    target = RESULTS / "encryption.json"
    result = json.loads(target.read_text()) if target.exists() else {}
    now = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "catalog" in args.parts:
            real = real_ingest_and_search(args.lfw_images, folder)
            with open_catalog_file(folder / "real" / "catalog.sqlite3") as catalog:
                face_id = catalog.face_list(limit=1)[0]["id"]
                thumbnail = catalog.faces([face_id])[face_id].thumbnail
            face = per_face(thumbnail)
            loads = index_load(args.sizes, thumbnail, folder)
            seal_us = face["seal_embedding_us"] + face["seal_thumbnail_us"]
            result.update(
                now,
                per_face=face,
                real=real,
                index_load=loads,
                ingest_overhead_share=seal_us / 1e3 / real["ingest_ms_per_face"],
            )
        if "index" in args.parts:
            searches = index_search(args.sizes, folder)
            reads = row_reads(args.sizes, folder)
            result.update(index_run=now, index_search=searches, row_reads=reads)
    face, real, loads = result["per_face"], result["real"], result["index_load"]
    searches, reads, index_run = result["index_search"], result["row_reads"], result["index_run"]
    seal_us = face["seal_embedding_us"] + face["seal_thumbnail_us"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# What encryption at rest costs",
        "",
        f"{result['when']}, {result['machine']}, {result['cpus']} CPUs, "
        f"load {result['load']:.2f}. `python bench/encryption.py` (medians).",
        "",
        "| per face | µs |",
        "|---|---:|",
        f"| seal embedding (512 B) | {face['seal_embedding_us']:.1f} |",
        f"| seal thumbnail ({face['thumbnail_bytes']} B) | {face['seal_thumbnail_us']:.1f} |",
        f"| open embedding | {face['open_embedding_us']:.1f} |",
        f"| open thumbnail | {face['open_thumbnail_us']:.1f} |",
        "",
        f"Ingest of {real['images']} LFW photos ({real['faces']} faces, 1 process): "
        f"{real['ingest_ms_per_face']:.1f} ms per face, of which sealing is "
        f"{seal_us / 1e3:.3f} ms ({result['ingest_overhead_share']:.2%}).",
        "",
        f"Search (probe decode, detect, embed, rank, top 20): median "
        f"{real['search_median_ms']:.1f} ms; reading the 20 result rows with their "
        f"thumbnails opened: {real['top20_rows_with_thumbnails_ms']:.2f} ms.",
        "",
        "Reading embeddings back from the catalog (what `index rebuild` and the index's",
        "catch-up after a crash do), each sealed embedding opened:",
        "",
        "| faces | load sealed (s) | SQLite read (s) | join plain bytes (s) | decrypt share |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in loads:
        lines.append(
            f"| {row['faces']:,} | {row['load_sealed_s']:.3f} | {row['sqlite_read_s']:.3f} | "
            f"{row['plain_join_s']:.4f} | {row['decrypt_share']:.0%} |"
        )
    lines += [
        "",
        f"Persistent index ({index_run['when']}, load {index_run['load']:.2f}; "
        "`--parts index`), one probe, top 10,",
        "synthetic unit vectors: its vectors file is AES-256-GCM in blocks of 4 KiB (each",
        "block authenticated and decrypted as it is read from the memory map), its IVF file",
        "AES-256-GCM (decrypted into memory on open).",
        "",
        "`sealed` keeps up to 32 MiB of recently read blocks decrypted in memory (never on",
        "disk); `uncached` decrypts every block each time a search reads it (the cold case).",
        "",
        "| faces | mode | plain (ms) | sealed (ms) | ratio | uncached (ms) | ratio |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in searches:
        lines.append(
            f"| {row['faces']:,} | {row['mode']} | {row['plain_ms']:.2f} | "
            f"{row['sealed_ms']:.2f} | {row['ratio']:.2f}x | {row['uncached_ms']:.2f} | "
            f"{row['uncached_ratio']:.2f}x |"
        )
    lines += [
        "",
        "Reading the vectors file (same run): 100 scattered rows, as an IVF re-ranking reads",
        "them, and a scan of every row, as exact search does; plain float32, the AES-CTR rows",
        "of format 1 and the GCM blocks of format 2 at three block sizes (4 KiB is used),",
        "every block decrypted each time (no cache); 100 different row sets.",
        "",
        "| faces | reader | 100 rows (µs) | ratio | scan (ms) | ratio | file bytes |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in reads:
        lines.append(
            f"| {row['faces']:,} | {row['reader']} | {row['scattered_100_us']:.1f} | "
            f"{row['scattered_ratio']:.1f}x | {row['scan_ms']:.2f} | {row['scan_ratio']:.1f}x | "
            f"{row['file_bytes']:,} |"
        )
    lines += [
        "",
        "Stored embedding: 540 bytes (12-byte nonce, 512 bytes, 16-byte tag) instead of 512.",
        "The catalog load is what `index rebuild` pays; it grows linearly with the faces.",
    ]
    (RESULTS / "encryption.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
