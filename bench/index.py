"""Vector index benchmark: the persistent index against exact search, by size.

1. Real SFace embeddings of LFW and UTKFace (bench/embeddings.py caches them):
   recall@10 of the approximate index against exact search, and whether the best
   match is the same person, for held-out faces of people with several images.
2. Synthetic vectors drawn to match the real ones (identity centres from the
   between-person covariance, faces scattered by the within-person covariance,
   the scatter scaled until same-person cosine similarity matches LFW's), about
   ten faces per identity, at each size: build time, bytes per face on disk and
   in RAM, recall@10 against exact (FAISS IndexFlatIP, the first issue's search),
   single-query p50/p99 latency, queries per second on both cores, and the same
   figures for exact search so the speed-up is a ratio from one run.

Results go to bench/results/index.json, index.md and index.png. From the repo root:

    python bench/embeddings.py                  # once: the real embeddings
    python bench/index.py --sizes 100000 1000000 10000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embeddings import DEFAULT_OUT, load

from facesearch.config import IndexSettings
from facesearch.index.flat import FlatIndex
from facesearch.index.persistent import PersistentIndex

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
K = 10
CHUNK = 500_000
Row = dict[str, Any]


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def rss() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / K


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


# the synthetic distribution


class FaceLikeVectors:
    """Identity centres and per-face scatter fitted to real embeddings."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        names, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        several = counts[inverse] >= 2
        x, person = vectors[several], inverse[several]
        means = np.zeros((len(names), x.shape[1]))
        np.add.at(means, person, x)
        means = means[counts >= 2] / counts[counts >= 2, None]
        remap = -np.ones(len(names), dtype=np.int64)
        remap[counts >= 2] = np.arange((counts >= 2).sum())
        deviations = x - means[remap[person]]
        self.mean = vectors.mean(0)
        self.between = np.linalg.cholesky(np.cov(means.T) + 1e-6 * np.eye(x.shape[1]))
        self.within = np.linalg.cholesky(np.cov(deviations.T) + 1e-6 * np.eye(x.shape[1]))
        self.real = similarity_stats(vectors, labels)
        # Real photos vary in quality, so the scatter varies from face to face: a
        # log-normal factor of spread `spread`, chosen to match the spread of
        # same-person similarity; the overall scale (bisection) matches its mean.
        best = None
        for spread in (0.0, 0.2, 0.4, 0.6, 0.8):
            self.spread = spread
            self._fit_scale(self.real["same_person_mean"])
            got = similarity_stats(*self.sample_labelled(4000, 1000, seed=1))
            miss = abs(got["same_person_std"] - self.real["same_person_std"])
            if best is None or miss < best[0]:
                best = (miss, spread, self.scale)
        _, self.spread, self.scale = best
        self.synthetic = similarity_stats(*self.sample_labelled(20000, 2000, seed=2))

    def _fit_scale(self, target: float) -> None:
        low, high = 0.2, 3.0
        for _ in range(16):  # bisection: scatter scale -> same-person similarity
            self.scale = (low + high) / 2
            got = similarity_stats(*self.sample_labelled(4000, 1000, seed=1))["same_person_mean"]
            low, high = (self.scale, high) if got > target else (low, self.scale)

    def centres(self, identities: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((identities, len(self.mean)))
        return (self.mean + z @ self.between.T).astype(np.float32)

    def faces(self, centres: np.ndarray, who: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((len(who), centres.shape[1])).astype(np.float32)
        factor = self.scale * np.exp(self.spread * rng.standard_normal((len(who), 1)))
        x = centres[who] + factor.astype(np.float32) * (z @ self.within.T.astype(np.float32))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def sample_labelled(self, n: int, identities: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        who = rng.integers(0, identities, n)
        return self.faces(self.centres(identities, seed), who, seed + 1), who


def similarity_stats(vectors: np.ndarray, labels: np.ndarray, pairs: int = 20000) -> Row:
    rng = np.random.default_rng(0)
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    same = np.flatnonzero(sorted_labels[1:] == sorted_labels[:-1])
    same = rng.choice(same, min(pairs, len(same)), replace=False)
    a, b = order[same], order[same + 1]
    same_sim = np.sum(vectors[a] * vectors[b], 1)
    i, j = rng.integers(0, len(vectors), (2, pairs))
    keep = labels[i] != labels[j]
    other_sim = np.sum(vectors[i[keep]] * vectors[j[keep]], 1)
    return {
        "same_person_mean": round(float(same_sim.mean()), 4),
        "same_person_std": round(float(same_sim.std()), 4),
        "different_mean": round(float(other_sim.mean()), 4),
        "different_std": round(float(other_sim.std()), 4),
    }


# measuring one index


def timed_queries(index: Any, queries: np.ndarray, allowed: np.ndarray | None = None) -> Row:
    """Single-query latencies, then throughput with two threads (FAISS and NumPy
    release the GIL), one query at a time, as concurrent searches would come."""
    index.search(queries[:5], K, allowed)  # warm-up
    found, latencies = [], []
    for query in queries:
        started = time.perf_counter()
        _, ids = index.search(query[None, :], K, allowed)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda q: index.search(q[None, :], K, allowed), queries))
    qps = len(queries) / (time.perf_counter() - started)
    return {
        "found": np.array(found),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "qps_2_threads": round(qps, 1),
    }


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def approximate_figures(
    folder: Path, dim: int, settings: IndexSettings, queries: np.ndarray, truth: np.ndarray,
    count: int,
) -> Row:  # fmt: skip
    gc.collect()
    before = rss()
    index = PersistentIndex(folder, "bench", "1", dim, settings)
    timing = timed_queries(index, queries)
    after = rss()
    info = index.info()
    row = {
        "kind": info["kind"], "nprobe": info["nprobe"], "refine": settings.refine,
        "recall_at_10": round(recall(timing.pop("found"), truth), 4), **timing,
        "disk_bytes_per_face": round(folder_bytes(folder) / count, 1),
        "ram_bytes_per_face": round(info["ram_bytes"] / count, 1),
        "rss_anon_bytes_per_face": round(opened_rss(folder, dim, settings) / count, 1),
        "page_cache_touched_mb": round((after["RssFile"] - before["RssFile"]) / 2**20, 1),
    }  # fmt: skip
    del index
    return row


def opened_rss(folder: Path, dim: int, settings: IndexSettings) -> int:
    """Anonymous memory a fresh process gains by opening the index (the IVF read into RAM)."""
    code = (
        "import sys, json; sys.path.insert(0, 'bench'); from index import rss; "
        "from facesearch.config import IndexSettings; "
        "from facesearch.index.persistent import PersistentIndex; before = rss(); "
        f"index = PersistentIndex(__import__('pathlib').Path({str(folder)!r}), 'bench', '1', "
        f"{dim}, IndexSettings.model_validate_json({settings.model_dump_json()!r})); "
        "print(rss()['RssAnon'] - before['RssAnon'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    return int(out.stdout.strip().splitlines()[-1])


def exact_figures(flat: FlatIndex, queries: np.ndarray, single: int) -> Row:
    flat.search(queries[:1], K)
    latencies = []
    for query in queries[:single]:
        started = time.perf_counter()
        flat.search(query[None, :], K)
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda q: flat.search(q[None, :], K), queries[:single]))
    return {
        "kind": "Flat (exact, in RAM)", "recall_at_10": 1.0,
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "qps_2_threads": round(single / (time.perf_counter() - started), 1),
        "ram_bytes_per_face": 4 * flat.dim + 8,
    }  # fmt: skip


# the runs


def real_run(vectors: np.ndarray, labels: np.ndarray, workdir: Path, queries: int) -> Row:
    """Hold out one face each of `queries` people with several images; index the rest."""
    _, first, counts = np.unique(labels, return_index=True, return_counts=True)
    rng = np.random.default_rng(0)
    held = np.sort(rng.choice(first[counts >= 2], min(queries, int((counts >= 2).sum())), False))
    keep = np.setdiff1d(np.arange(len(vectors)), held)
    ids = np.arange(1, len(keep) + 1)
    flat = FlatIndex(vectors.shape[1])
    flat.add(ids, vectors[keep])
    q = vectors[held]
    _, truth = flat.search(q, K)
    folder = workdir / "real"
    shutil.rmtree(folder, ignore_errors=True)
    index = PersistentIndex(folder, "bench", "1", vectors.shape[1], IndexSettings())
    index.add(ids, vectors[keep])
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index.train()
    build = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    del index
    row = approximate_figures(folder, vectors.shape[1], IndexSettings(), q, truth, len(keep))
    _, approx = PersistentIndex(folder, "bench", "1", vectors.shape[1], IndexSettings()).search(
        q, K
    )
    kept_labels = labels[keep]
    same_exact = float(np.mean(kept_labels[truth[:, 0] - 1] == labels[held]))
    same_approx = float(np.mean(kept_labels[approx[:, 0] - 1] == labels[held]))
    exact = exact_figures(flat, q, len(q))
    return {
        "faces": len(keep), "queries": len(q), "build_s": round(build, 2),
        "approximate": row, "exact": exact,
        "top1_same_person_exact": round(same_exact, 4),
        "top1_same_person_approx": round(same_approx, 4),
    }  # fmt: skip


def synthetic_run(
    gen: FaceLikeVectors, size: int, workdir: Path, nq: int, sweep: bool, codes: list[str],
) -> Row:  # fmt: skip
    identities = max(size // 10, 1)
    centres = gen.centres(identities, seed=size)
    folder = workdir / f"synthetic-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    big = IndexSettings(approx_min_faces=10**12)
    index = PersistentIndex(folder, "bench", "1", centres.shape[1], big)
    flat = FlatIndex(centres.shape[1])
    rng = np.random.default_rng(size + 7)
    log(f"{size}: writing vectors")
    started = time.perf_counter()
    for start in range(0, size, CHUNK):
        n = min(CHUNK, size - start)
        who = rng.integers(0, identities, n)
        x = gen.faces(centres, who, seed=size + start)
        ids = np.arange(start + 1, start + n + 1)
        index.add(ids, x)
        flat.add(ids, x)
    write_s = time.perf_counter() - started
    queries = gen.faces(centres, rng.integers(0, identities, nq), seed=size + 99)
    log(f"{size}: exact ground truth")
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    _, truth = flat.search(queries, K)
    exact_batch_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    exact = exact_figures(flat, queries, nq if size <= 1_000_000 else 20)
    exact["batch_qps"] = round(nq / exact_batch_s, 1)
    # Filtered ground truth: a "collection" of 10% and one of 0.5% of the faces.
    filters = {}
    for share in (0.1, 0.005):
        allowed = np.sort(rng.choice(size, max(int(size * share), K), replace=False) + 1)
        filtered = FlatIndex(centres.shape[1])
        filtered.add(allowed, np.asarray(index._vectors[allowed - 1]))
        filters[share] = (allowed, filtered.search(queries, K)[1])
        del filtered
    del flat
    gc.collect()
    builds = []
    for code in codes:
        log(f"{size}: training {code}")
        index = PersistentIndex(folder, "bench", "1", centres.shape[1], big.model_copy(
            update={"codes": code}))  # fmt: skip
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        started = time.perf_counter()
        index.train()
        build_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        factory = index.info()["kind"]
        del index
        log(f"{size}: {factory} trained and written in {build_s:.1f} s; querying")
        settings = IndexSettings(factory=factory)
        row = approximate_figures(folder, centres.shape[1], settings, queries, truth, size)
        row["build_s"] = round(build_s, 2)
        row["write_vectors_s"] = round(write_s, 2)
        index = PersistentIndex(folder, "bench", "1", centres.shape[1], settings)
        for share, (allowed, want) in filters.items():
            timing = timed_queries(index, queries[: min(nq, 100)], allowed)
            row[f"filter_{share}"] = {
                "allowed": len(allowed),
                "recall_at_10": round(recall(timing.pop("found"), want[: min(nq, 100)]), 4),
                **timing,
            }
        if sweep:
            row["sweep"] = []
            nlist = int(factory[3:].split(",")[0])
            for nprobe in (nlist // 32, nlist // 16, nlist // 8, nlist // 4, nlist // 2):
                for refine in (20, 50):
                    index.settings = settings.model_copy(update={"nprobe": nprobe,
                                                                 "refine": refine})  # fmt: skip
                    timing = timed_queries(index, queries[: min(nq, 200)])
                    row["sweep"].append({
                        "nprobe": nprobe, "refine": refine,
                        "recall_at_10": round(recall(timing.pop("found"), truth[:200]), 4),
                        "p50_ms": timing["p50_ms"], "p99_ms": timing["p99_ms"],
                    })  # fmt: skip
        del index
        builds.append(row)
        log(f"{size}: {json.dumps({k: v for k, v in row.items() if k != 'sweep'})}")
    shutil.rmtree(folder, ignore_errors=True)
    return {"faces": size, "identities": identities, "queries": nq, "exact": exact,
            "approximate": builds}  # fmt: skip


# reporting


def write_markdown(result: Row, path: Path) -> None:
    lines = [
        "# Vector index benchmark",
        "",
        f"{result['machine']}; {result['started']}; `{result['command']}`",
        "",
        "Defaults: " + ", ".join(f"{k}={v}" for k, v in result["defaults"].items()),
        "",
        "## Real SFace embeddings (LFW + UTKFace)",
        "",
    ]
    real = result.get("real")
    if real:
        a, e = real["approximate"], real["exact"]
        lines += [
            f"{real['faces']} faces, {real['queries']} held-out probes of people with several "
            f"images. {a['kind']}: recall@10 {a['recall_at_10']}, p50 {a['p50_ms']} ms, "
            f"p99 {a['p99_ms']} ms; exact p50 {e['p50_ms']} ms. Best match is the same person: "
            f"{real['top1_same_person_approx']} approximate, {real['top1_same_person_exact']} "
            "exact.",
            "",
        ]
    lines += [
        "Similarity of the real and the synthetic faces (cosine):",
        "",
        "| | same person mean ± sd | different people mean ± sd |",
        "|---|---|---|",
    ]
    for name in ("real", "synthetic"):
        s = result["distribution"][name]
        lines.append(
            f"| {name} | {s['same_person_mean']} ± {s['same_person_std']} | "
            f"{s['different_mean']} ± {s['different_std']} |"
        )
    lines += [
        "",
        "## By size (synthetic, face-like)",
        "",
        "| faces | index | build s | disk B/face | RAM B/face | recall@10 | p50 ms | p99 ms "
        "| QPS (2 threads) | exact p50 ms | exact QPS | speed-up p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in result["synthetic"]:
        e = run["exact"]
        for a in run["approximate"]:
            lines.append(
                f"| {run['faces']:,} | {a['kind']} | {a['build_s']} | {a['disk_bytes_per_face']} "
                f"| {a['ram_bytes_per_face']} | {a['recall_at_10']} | {a['p50_ms']} "
                f"| {a['p99_ms']} | {a['qps_2_threads']} | {e['p50_ms']} | {e['qps_2_threads']} "
                f"| {e['p50_ms'] / a['p50_ms']:.0f} times |"
            )
    lines += [
        "",
        "Filtered search (a random subset of the faces, as a collection):",
        "",
        "| faces | index | allowed | recall@10 | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for run in result["synthetic"]:
        for a in run["approximate"]:
            for key in ("filter_0.1", "filter_0.005"):
                f = a[key]
                lines.append(f"| {run['faces']:,} | {a['kind']} | {f['allowed']:,} | "
                             f"{f['recall_at_10']} | {f['p50_ms']} | {f['p99_ms']} |")  # fmt: skip
    for run in result["synthetic"]:
        for a in run["approximate"]:
            if "sweep" in a:
                lines += ["", f"Recall/latency trade-off, {run['faces']:,} faces, {a['kind']}:",
                          "", "| nprobe | refine | recall@10 | p50 ms | p99 ms |",
                          "|---|---|---|---|---|"]  # fmt: skip
                lines += [f"| {s['nprobe']} | {s['refine']} | {s['recall_at_10']} | "
                          f"{s['p50_ms']} | {s['p99_ms']} |" for s in a["sweep"]]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def plot(result: Row, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["synthetic"]
    sizes = [r["faces"] for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    default = result["defaults"]["codes"]
    pick = [next((a for a in r["approximate"] if default in a["kind"]), r["approximate"][0])
            for r in runs]  # fmt: skip
    left.loglog(sizes, [r["exact"]["p50_ms"] for r in runs], "o-", label="exact p50")
    left.loglog(sizes, [a["p50_ms"] for a in pick], "s-", label="IVF + re-rank p50")
    left.loglog(sizes, [a["p99_ms"] for a in pick], "s--", label="IVF + re-rank p99")
    left.axhline(50, color="grey", lw=0.8, ls=":", label="goal: p99 50 ms")
    left.set_xlabel("faces")
    left.set_ylabel("ms per query (one thread)")
    left.legend()
    left.set_title("latency")
    right.semilogx(sizes, [a["ram_bytes_per_face"] for a in pick], "s-", label="index RAM")
    right.semilogx(sizes, [a["disk_bytes_per_face"] for a in pick], "o-", label="index disk")
    right.semilogx(sizes, [r["exact"]["ram_bytes_per_face"] for r in runs], "^:",
                   label="exact, in RAM")  # fmt: skip
    right.axhline(200, color="grey", lw=0.8, ls=":", label="goal: 200 B RAM")
    right.set_xlabel("faces")
    right.set_ylabel("bytes per face")
    right.legend()
    right.set_title("memory and disk")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--real", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facesearch-bench/index"))
    parser.add_argument("--codes", nargs="+", default=[IndexSettings().codes],
                        help="IVF code types to compare (PQ32, PQ16, SQ8, …)")  # fmt: skip
    parser.add_argument(
        "--compare-codes-at",
        type=int,
        default=1_000_000,
        help="the size at which every --codes is built; others use the default",
    )
    parser.add_argument("--sweep-at", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--out", type=Path, default=RESULTS / "index.json")
    args = parser.parse_args(argv)
    # Queries run with one FAISS thread each (two threads for throughput); builds use all cores.
    faiss.omp_set_num_threads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    vectors, labels = load(args.real)
    result: Row = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/index.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f} at start",
        "versions": {"faiss": faiss.__version__, "numpy": version("numpy")},
        "defaults": IndexSettings().model_dump(),
    }
    log(f"real: {len(vectors)} embeddings")
    gen = FaceLikeVectors(vectors, labels)
    result["distribution"] = {
        "real": gen.real,
        "synthetic": gen.synthetic,
        "scatter_scale": round(gen.scale, 4),
        "scatter_spread": gen.spread,
    }
    log(f"distribution: {result['distribution']}")
    result["real"] = real_run(vectors, labels, args.workdir, args.queries)
    log(f"real: {json.dumps(result['real'])}")
    result["synthetic"] = []
    for size in args.sizes:
        codes = args.codes if size == args.compare_codes_at else [IndexSettings().codes]
        run = synthetic_run(gen, size, args.workdir, args.queries, size in args.sweep_at, codes)
        result["synthetic"].append(run)
        result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        write_markdown(result, args.out.with_suffix(".md"))
        plot(result, args.out.with_suffix(".png"))
    log(f"done: {args.out}")


if __name__ == "__main__":
    main()
