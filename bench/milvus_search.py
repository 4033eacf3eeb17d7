"""Search latency against Milvus beside the embedded FAISS index, in one run.

Synthetic face-like vectors (bench/index.py's `FaceLikeVectors`, fitted to the real
SFace embeddings that bench/embeddings.py caches), about ten faces per identity, at
each size: the embedded index (its default IVF-PQ fast scan with exact re-ranking)
and a real Milvus 2.3 standalone server with each `--kinds` index, both through the
facesearch index classes the engine uses. For each: build time, recall@10 against
exact search (FAISS IndexFlatIP), single-query p50/p99 latency, queries per second
with two client threads, and the Milvus server's resident memory.

The server is the `milvus` PyPI package's embedded binary. Its gRPC ports listen on
every interface, so this script runs itself in a private network namespace that
has only a loopback interface (`unshare --net`, needs root): nothing outside can
reach the server and nothing leaves the machine.

    python bench/milvus_search.py --sizes 100000 1000000     # writes bench/results/milvus.json
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
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embeddings import DEFAULT_OUT, load
from index import CHUNK, FaceLikeVectors, K, Row, log, recall, timed_queries

from facesearch.config import IndexSettings
from facesearch.index.flat import FlatIndex
from facesearch.index.milvus import BUILD_DEFAULTS, MilvusIndex
from facesearch.index.persistent import PersistentIndex

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
ISOLATED = "FACESEARCH_BENCH_NETNS"


def isolate() -> None:
    """Run this script again inside a network namespace holding only loopback."""
    if os.environ.get(ISOLATED):
        return
    env = {**os.environ, ISOLATED: "1", "PYTHONPATH": str(REPO / "src")}
    command = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
               sys.executable, *sys.argv]  # fmt: skip
    sys.exit(subprocess.call(command, env=env))


def server_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_indexed(index, timeout: float) -> None:
    """Until Milvus has built the vector index on every sealed segment."""
    client, name = index.client, index.collection_name
    client.flush(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.describe_index(name, "embedding")
        if state.get("pending_index_rows", 0) == 0 and state.get("indexed_rows", 0) >= state.get(
            "total_rows", 1
        ):
            return
        time.sleep(2)
    raise TimeoutError(f"Milvus did not finish indexing {name} in {timeout} s")


def milvus_figures(
    kind: str, uri: str, pid: int, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray,
    truth: np.ndarray, timeout: float,
) -> Row:  # fmt: skip
    settings = IndexSettings(uri=uri, milvus_index=kind, milvus_prefix=f"bench_{kind}")
    index = MilvusIndex(settings, "bench", "1", vectors.shape[1])
    before = server_rss(pid)
    started = time.perf_counter()
    collections = np.zeros(len(ids), dtype=np.int64)
    for start in range(0, len(ids), CHUNK):
        index._upsert(index.collection_name, ids[start : start + CHUNK],
                      vectors[start : start + CHUNK], collections[start : start + CHUNK],
                      fresh=True)  # fmt: skip
    insert_s = time.perf_counter() - started
    wait_indexed(index, timeout)
    build_s = time.perf_counter() - started
    time.sleep(5)  # the query node swaps growing segments for the indexed ones
    index._barrier()  # as the back end does after every write
    visible = len(index)
    timing = timed_queries(index, queries)
    strong = []  # the same searches under Strong consistency, for the design note
    for query in queries[:30]:
        begun = time.perf_counter()
        index.client.search(index.collection_name, data=[query.tolist()], limit=K,
                            anns_field="embedding", consistency_level="Strong",
                            search_params={"metric_type": "IP", "params": {}})  # fmt: skip
        strong.append((time.perf_counter() - begun) * 1000)
    row = {
        "kind": f"Milvus {kind}",
        "build_params": {**BUILD_DEFAULTS[kind], **settings.milvus_build_params},
        "search_params": index.info()["search_params"], "refine": settings.milvus_refine,
        "faces_visible": visible,
        "recall_at_10": round(recall(timing.pop("found"), truth), 4), **timing,
        "strong_consistency_p50_ms": round(float(np.median(strong)), 1),
        "insert_s": round(insert_s, 1), "insert_and_index_s": round(build_s, 1),
        "server_rss_growth_bytes_per_face": round((server_rss(pid) - before) / len(ids), 1),
    }  # fmt: skip
    index.client.drop_collection(index.collection_name)
    index.client.drop_collection(f"bench_{kind}_marks")
    index.close()
    return row


def faiss_figures(folder: Path, ids, vectors, queries, truth) -> Row:
    shutil.rmtree(folder, ignore_errors=True)
    settings = IndexSettings(approx_min_faces=10**12)
    index = PersistentIndex(folder, "bench", "1", vectors.shape[1], settings)
    for start in range(0, len(ids), CHUNK):
        index.add(ids[start : start + CHUNK], vectors[start : start + CHUNK])
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    index.train()
    build_s = time.perf_counter() - started
    faiss.omp_set_num_threads(1)
    kind = index.info()["kind"]
    index.close()
    index = PersistentIndex(folder, "bench", "1", vectors.shape[1], IndexSettings(factory=kind))
    timing = timed_queries(index, queries)
    row = {"kind": f"embedded {kind}", "nprobe": index.info()["nprobe"],
           "refine": index.settings.refine,
           "recall_at_10": round(recall(timing.pop("found"), truth), 4), **timing,
           "build_s": round(build_s, 1)}  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    return row


def run_size(gen: FaceLikeVectors, size: int, nq: int, args, uri: str, pid: int) -> Row:
    identities = max(size // 10, 1)
    centres = gen.centres(identities, seed=size)
    rng = np.random.default_rng(size + 7)
    log(f"{size}: drawing vectors")
    vectors = np.concatenate([
        gen.faces(centres, rng.integers(0, identities, min(CHUNK, size - s)), seed=size + s)
        for s in range(0, size, CHUNK)
    ])  # fmt: skip
    ids = np.arange(1, size + 1, dtype=np.int64)
    queries = gen.faces(centres, rng.integers(0, identities, nq), seed=size + 99)
    flat = FlatIndex(vectors.shape[1])
    flat.add(ids, vectors)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, truth = flat.search(queries, K)
    faiss.omp_set_num_threads(1)
    del flat
    gc.collect()
    rows = []
    log(f"{size}: embedded index")
    rows.append(faiss_figures(args.workdir / f"faiss-{size}", ids, vectors, queries, truth))
    log(f"{size}: {json.dumps(rows[-1])}")
    for kind in args.kinds:
        log(f"{size}: Milvus {kind}")
        try:
            rows.append(milvus_figures(kind, uri, pid, ids, vectors, queries, truth, args.timeout))
        except TimeoutError as exc:
            rows.append({"kind": f"Milvus {kind}", "error": str(exc)})
        log(f"{size}: {json.dumps(rows[-1])}")
    return {"faces": size, "identities": identities, "queries": nq, "indexes": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["IVF_SQ8", "HNSW", "IVF_PQ"])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per index build")
    parser.add_argument("--real", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facesearch-bench/milvus"))
    parser.add_argument("--out", type=Path, default=RESULTS / "milvus.json")
    parser.add_argument("--append", action="store_true", help="keep the sizes already in --out")
    args = parser.parse_args(argv)
    isolate()
    from milvus import MilvusServer

    faiss.omp_set_num_threads(1)
    args.workdir.mkdir(parents=True, exist_ok=True)
    # A fresh server each run: collections an interrupted run left would be counted twice.
    shutil.rmtree(args.workdir / "server", ignore_errors=True)
    server = MilvusServer()
    server.set_base_dir(str(args.workdir / "server"))
    server.start()
    uri = f"http://127.0.0.1:{server.listen_port}"
    try:
        vectors, labels = load(args.real)
        result: Row = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python bench/milvus_search.py " + " ".join(argv or sys.argv[1:]),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.1f} at start",
            "versions": {
                "faiss": faiss.__version__,
                "milvus": version("milvus"),
                "pymilvus": version("pymilvus"),
                "numpy": version("numpy"),
            },
            "network": "client and server in one private network namespace, loopback only",
            "sizes": [],
        }
        if args.append and args.out.exists():  # a later, larger run beside an earlier one
            earlier = json.loads(args.out.read_text())
            result["sizes"] = earlier["sizes"]
            result["command"] = earlier["command"] + " ; " + result["command"]
        gen = FaceLikeVectors(vectors, labels)
        for size in args.sizes:
            result["sizes"].append(run_size(gen, size, args.queries, args, uri,
                                            server.server_proc.pid))  # fmt: skip
            result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")
            log(f"written {args.out}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
