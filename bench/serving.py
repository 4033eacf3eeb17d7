"""Serving benchmark (issue 16): searches from many clients at once through the real
server, filtered search, and search during an ingest, on a store of synthetic faces.

1. Builds (once; reused from --workdir) a catalog of --faces synthetic face-like vectors
   (fitted to real SFace embeddings of LFW, as bench/index.py does) in ten collections
   of 10% each, stored through the real catalog and fed into the real index.
2. Starts the real `facesearch serve` on 127.0.0.1 for each design: threads in one
   process (`--workers 1`, FACESEARCH_API__SEARCH_MODELS=4), two processes
   (`--workers 2`, two models each), and threads with one OpenCV thread per forward
   pass (OPENCV_FOR_THREADS_NUM=1); 1, 2, 4 and 8 clients each send POST /api/search
   with real LFW probe photos, one request after another, for --seconds.
3. With the better design running: search latency from 1 and 2 clients while an ingest
   job of LFW's largest folders runs in the same server, against the same clients idle.
4. Filtered search in the index itself: a search limited to one collection (about 10%
   of the faces) against a search of an index that holds only that collection's faces,
   with recall@10 against exact search over the collection; on the store and on a
   sealed index of --filtered-faces (10M) fed directly.

Writes bench/results/serving.json. Run from the repo root (about 15 minutes at 1M and
10M the first time, which builds the stores; 8 minutes after), not under `nice`: the
server's ingest jobs run at an absolute niceness (FACESEARCH_JOBS__NICE, 19), so a
niced server would lose its lead over them:

    python bench/serving.py [--faces 1000000] [--seconds 15] [--filtered-faces 10000000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests"), str(REPO / "bench")]
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)

from index import FaceLikeVectors  # noqa: E402
from server import Server  # noqa: E402

from facesearch.config import IndexSettings, Settings  # noqa: E402
from facesearch.engine import Engine  # noqa: E402
from facesearch.governance.auth import Role  # noqa: E402
from facesearch.index.flat import FlatIndex  # noqa: E402
from facesearch.index.persistent import PersistentIndex  # noqa: E402
from facesearch.models.registry import get as get_model  # noqa: E402
from facesearch.pipeline.analyze import Analyzer  # noqa: E402
from facesearch.pipeline.decode import decode  # noqa: E402
from facesearch.storage import open_catalog  # noqa: E402
from facesearch.types import Detection, FaceRecord, ImageResult, SourceItem  # noqa: E402

DATA = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data"))
LFW = DATA / "lfw" / "images_deepfunneled"
RESULTS = REPO / "bench" / "results"
PASSWORD = "correct horse battery staple"
USER = "bench-investigator"
PURPOSE = {"purpose": "missing person", "case": "BENCH-16"}
COLLECTIONS = 10
BATCH = 10_000


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(int(q * len(ordered)), len(ordered) - 1)], 1)


# the store


def real_embeddings(settings: Settings, images: int) -> tuple[np.ndarray, np.ndarray]:
    analyzer = Analyzer.load(settings)
    people = sorted(p for p in LFW.iterdir() if len(list(p.glob("*.jpg"))) >= 2)
    vectors, labels = [], []
    for person in people:
        for file in sorted(person.glob("*.jpg"))[:4]:
            faces = analyzer.faces(decode(file.read_bytes(), settings.decode).pixels)
            if faces:
                vectors.append(max(faces, key=lambda f: f.detection.area).embedding)
                labels.append(person.name)
        if len(vectors) >= images:
            break
    return np.vstack(vectors).astype(np.float32), np.array(labels)


def build(settings: Settings, faces: int) -> dict:
    ready = settings.data_dir / "ready.json"
    if ready.exists() and json.loads(ready.read_text())["faces"] == faces:
        log(f"reusing the store of {faces:,} faces in {settings.data_dir}")
        return json.loads(ready.read_text())
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    log("embedding real LFW faces to fit the synthetic distribution")
    real, labels = real_embeddings(settings, 1500)
    gen = FaceLikeVectors(real, labels)
    spec = get_model(settings.embedder)
    catalog = open_catalog(settings)
    collections = [catalog.create_collection(f"c{n}", "synthetic", "benchmark")
                   for n in range(COLLECTIONS)]  # fmt: skip
    identities = max(faces // 10, 1)
    centres = gen.centres(identities, seed=1)
    rng = np.random.default_rng(2)
    detection = Detection((0.0, 0.0, 10.0, 10.0), np.zeros((5, 2), np.float32), 0.9)
    started = time.perf_counter()
    runs = {c.id: catalog.start_run(c, ["synthetic"]) for c in collections}
    for start in range(0, faces, BATCH):
        n = min(BATCH, faces - start)
        vectors = gen.faces(centres, rng.integers(0, identities, n), seed=start)
        # Batches land in random collections, so each collection's faces interleave.
        collection = collections[int(rng.integers(COLLECTIONS))]
        results = [
            ImageResult(SourceItem(Path(f"/synthetic/{start + i}.jpg")),
                        hashlib.sha256(f"{start + i}".encode()).hexdigest(), 1, 10, 10,
                        [FaceRecord(detection, vectors[i], 0.5, b"\xff\xd8")])
            for i in range(n)
        ]  # fmt: skip
        catalog.store_results(collection, runs[collection.id], results, spec.name, spec.version)
        if start % 100_000 == 0:
            log(f"stored {start + n:,} faces")
    store_s = time.perf_counter() - started
    catalog.close()
    log("feeding the index (and training its IVF)")
    started = time.perf_counter()
    with Engine(settings) as engine:
        engine.vector_index().sync(engine.catalog)
        info = engine.index_info()
    index_s = time.perf_counter() - started
    summary = {"faces": faces, "store_s": round(store_s, 1), "index_s": round(index_s, 1),
               "index": info["kind"]}  # fmt: skip
    ready.write_text(json.dumps(summary))
    return summary


# searches through the server


def probes(count: int) -> list[bytes]:
    files = sorted(LFW.glob("A*/*.jpg"))[:count]
    return [f.read_bytes() for f in files]


def client(server: Server) -> httpx.Client:
    c = httpx.Client(base_url=server.url, timeout=120)
    answer = c.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
    answer.raise_for_status()
    c.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return c


def load_run(clients: list[httpx.Client], photos: list[bytes], seconds: float) -> dict:
    """Each client sends searches one after another for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            photo = photos[i % len(photos)]
            i += len(clients)
            began = time.perf_counter()
            answer = clients[n].post(
                "/api/search", data={**PURPOSE, "top": "10"},
                files={"photo": ("probe.jpg", photo, "image/jpeg")},
            )  # fmt: skip
            took = time.perf_counter() - began
            with lock:
                if answer.status_code == 200:
                    latencies.append(took)
                else:
                    errors[0] += 1

    began = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(work, range(len(clients))))
    elapsed = time.perf_counter() - began
    return {
        "clients": len(clients), "searches_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
        "searches": len(latencies), "errors": errors[0],
    }  # fmt: skip


def bench_user(settings: Settings) -> None:
    """An investigator of the default organisation with a known password."""
    from facesearch.cli.service import _accounts

    db, accounts, auth = _accounts(settings)
    try:
        if not any(u.username == USER for u in accounts.users(None)):
            organisation = accounts.organisation_named("default")
            auth.create_user(USER, organisation.id, Role.INVESTIGATOR, PASSWORD,
                             must_change_password=False)  # fmt: skip
    finally:
        db.close()


def serve(settings: Settings, workers: int, models: int, **extra: str) -> Server:
    env = {"FACESEARCH_API__SEARCH_MODELS": str(models),
           "FACESEARCH_API__ALLOWED_ROOTS": json.dumps([str(LFW)]), **extra}  # fmt: skip
    server = Server(settings.data_dir, settings.cache_dir, ("--workers", str(workers)), **env)
    server.start(timeout=600)
    return server


def concurrency(settings: Settings, photos: list[bytes], seconds: float) -> dict:
    designs = {}
    for name, workers, models, env in (
        ("threads", 1, 4, {}),
        ("processes", 2, 2, {}),
        # One OpenCV thread per forward pass: a lone search no longer spreads over the
        # cores, so the rates show how concurrent searches alone scale.
        ("threads, one inference thread each", 1, 4, {"OPENCV_FOR_THREADS_NUM": "1"}),
    ):
        server = serve(settings, workers, models, **env)
        try:
            clients = [client(server) for _ in range(8)]
            load_run(clients, photos, 20)  # models loaded, own lists built (warm)
            rows = []
            for n in (1, 2, 4, 8):
                rows.append(load_run(clients[:n], photos, seconds))
                log(f"{name}: {rows[-1]}")
            designs[name] = {"workers": workers, "search_models": models, "env": env,
                             "rows": rows}  # fmt: skip
            for c in clients:
                c.close()
        finally:
            server.stop()
    return designs


def during_ingest(settings: Settings, workers: int, models: int, photos: list[bytes],
                  seconds: float) -> dict:  # fmt: skip
    """Searches from 1 and 2 clients, idle and while an ingest job of LFW's largest
    folders runs in the same server (with the default ingest workers, one per core)
    into a new collection, so none of its photos is a duplicate already stored."""
    catalog = open_catalog(settings)
    name = f"ingest-{int(time.time())}"
    catalog.create_collection(name, "LFW", "benchmark")
    catalog.close()
    people = sorted(LFW.iterdir(), key=lambda p: -len(list(p.glob("*.jpg"))))[:100]
    env = {"FACESEARCH_WORKERS": str(os.cpu_count() or 1)}
    server = serve(settings, workers, models, **env)
    rows = []
    try:
        clients = [client(server) for _ in range(2)]
        load_run(clients, photos, 20)  # models loaded, own lists built (warm)
        idle = {n: load_run(clients[:n], photos, seconds) for n in (1, 2)}
        job = clients[0].post("/api/jobs", json={"collection": name,
                                                 "paths": [str(p) for p in people]})  # fmt: skip
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        while clients[0].get(f"/api/jobs/{job_id}").json()["status"] == "queued":
            time.sleep(0.2)
        before = clients[0].get(f"/api/jobs/{job_id}").json()["images"]
        began = time.perf_counter()
        busy = {n: load_run(clients[:n], photos, seconds) for n in (1, 2)}
        status = clients[0].get(f"/api/jobs/{job_id}").json()
        ingest_rate = (status["images"] - before) / (time.perf_counter() - began)
        clients[0].delete(f"/api/jobs/{job_id}")
        for n in (1, 2):
            rows.append({"during_ingest": True, "clients": n, "p50_ms": busy[n]["p50_ms"],
                         "p99_ms": busy[n]["p99_ms"], "idle_p50_ms": idle[n]["p50_ms"],
                         "idle_p99_ms": idle[n]["p99_ms"],
                         "searches_per_s": busy[n]["searches_per_s"],
                         "idle_searches_per_s": idle[n]["searches_per_s"]})  # fmt: skip
        for c in clients:
            c.close()
    finally:
        server.stop()
    return {**rows[0], "by_clients": rows, "ingest_workers": int(env["FACESEARCH_WORKERS"]),
            "ingest_still_running": status["status"] == "running",
            "ingest_images_per_s_during": round(ingest_rate, 2)}  # fmt: skip


# where a search's time goes


def stages(settings: Settings, photos: list[bytes]) -> dict:
    """One search at a time in this process: decode, detect + align, embed, rank."""
    spent: dict[str, list[float]] = {"decode": [], "detect": [], "embed": [], "rank": []}
    with Engine(settings) as engine:
        chosen = [engine.catalog.collection(f"c{n}") for n in range(COLLECTIONS)]
        analyzer = engine.analyzer
        for round_ in range(2):  # the first round warms caches up
            for photo in photos:
                began = time.perf_counter()
                image = decode(photo, settings.decode)
                decoded = time.perf_counter()
                timings: dict[str, float] = {}
                faces = analyzer.faces(image.pixels, timings)
                analysed = time.perf_counter()
                if not faces:
                    continue
                engine.rank(faces[0].embedding, 10, chosen)
                ranked = time.perf_counter()
                if round_:
                    spent["decode"].append(decoded - began)
                    spent["detect"].append(timings["detect"] + timings["align"])
                    spent["embed"].append(analysed - decoded - timings["detect"] - timings["align"])
                    spent["rank"].append(ranked - analysed)
    return {name: {"p50_ms": pct(v, 0.5), "mean_ms": round(1000 * sum(v) / len(v), 1)}
            for name, v in spent.items()}  # fmt: skip


# filtered search in the index


def filtered(settings: Settings, queries: int = 200) -> dict:
    """On the store built through the catalog: collection c0 (about 10% of the faces)."""
    spec = get_model(settings.embedder)
    catalog = open_catalog(settings)
    collection = catalog.collection("c0")
    folder = settings.index_dir / f"{spec.name}-{spec.version}"
    key = catalog.data_key(None, f"index:{spec.name}-{spec.version}")
    index = PersistentIndex(folder, spec.name, spec.version, 128, settings.index, key)
    try:
        return filtered_search(index, collection.id, settings.data_dir / "alone", queries)
    finally:
        index.close()
        catalog.close()


def filtered_at(settings: Settings, faces: int, workdir: Path, queries: int = 200) -> dict:
    """A sealed index of `faces` synthetic faces in ten collections fed to the index
    directly (at 10M the catalog would take hours to fill, and a filtered search reads
    only the index), with the same settings and key handling as the store's."""
    folder = workdir / f"index-{faces}"
    spec = get_model(settings.embedder)
    key = hashlib.sha256(b"bench/serving.py filtered index").digest()
    ready = folder / "ready.json"
    if not (ready.exists() and json.loads(ready.read_text())["faces"] == faces):
        shutil.rmtree(folder, ignore_errors=True)
        real, labels = real_embeddings(settings, 1500)
        gen = FaceLikeVectors(real, labels)
        index = PersistentIndex(folder / "index", spec.name, spec.version, 128,
                                settings.index, key)  # fmt: skip
        identities = max(faces // 10, 1)
        centres = gen.centres(identities, seed=1)
        rng = np.random.default_rng(2)
        began = time.perf_counter()
        for start in range(0, faces, 100_000):
            n = min(100_000, faces - start)
            vectors = gen.faces(centres, rng.integers(0, identities, n), seed=start)
            # Runs of 10,000 faces land in random collections, as ingest jobs would.
            runs = rng.integers(1, COLLECTIONS + 1, -(-n // BATCH))
            index.add(np.arange(start + 1, start + n + 1), vectors,
                      np.repeat(runs, BATCH)[:n])  # fmt: skip
            if start % 1_000_000 == 0:
                log(f"index of {faces:,}: {start + n:,} faces added")
        index.train()
        index.close()
        took = round(time.perf_counter() - began, 1)
        ready.write_text(json.dumps({"faces": faces, "build_s": took}))
    index = PersistentIndex(folder / "index", spec.name, spec.version, 128, settings.index, key)
    try:
        result = filtered_search(index, 1, folder / "alone", queries)
    finally:
        index.close()
    result["build_s"] = json.loads(ready.read_text())["build_s"]
    return result


def filtered_search(index: PersistentIndex, collection: int, scratch: Path, queries: int) -> dict:
    """A search limited to one collection against exact search over its faces, the
    unfiltered search, and an index that holds only that collection's faces."""
    slots = index._grouped_slots()[collection]
    members = np.asarray(index._vectors[slots])
    member_ids = np.asarray(index._ids)[slots]
    rng = np.random.default_rng(5)
    # Probes near stored faces of the collection, as a search for a person in it is.
    picks = rng.choice(len(members), queries, replace=False)
    noise = rng.standard_normal((queries, 128)).astype(np.float32) * 0.05
    q = members[picks] + noise
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = FlatIndex(128)
    exact.add(member_ids, members)
    _, truth = exact.search(q, 10)
    del exact

    def timed(search) -> tuple[list[float], np.ndarray]:
        search(q[:1])  # first use builds what the index keeps for it
        took, found = [], []
        for row in q:
            began = time.perf_counter()
            _, ids = search(row[None, :])
            took.append(time.perf_counter() - began)
            found.append(ids[0])
        return took, np.vstack(found)

    def recall(found: np.ndarray) -> float:
        return round(float(np.mean([len(set(f) & set(t)) / 10 for f, t in
                                    zip(found, truth, strict=True)])), 4)  # fmt: skip

    began = time.perf_counter()
    index.search_collections(q[:1], 10, [collection])
    first_s = time.perf_counter() - began
    took, found = timed(lambda x: index.search_collections(x, 10, [collection]))
    result = {"faces": len(index), "allowed_share": round(len(slots) / len(index), 3),
              "allowed": len(slots), "recall_at_10": recall(found), "p50_ms": pct(took, 0.5),
              "p99_ms": pct(took, 0.99), "index": index.info()["kind"],
              "first_search_s": round(first_s, 1)}  # fmt: skip
    took, found = timed(lambda x: index.search(x, 10))
    result["unfiltered"] = {"p50_ms": pct(took, 0.5), "p99_ms": pct(took, 0.99)}
    shutil.rmtree(scratch, ignore_errors=True)
    alone = PersistentIndex(scratch, index.model, index.model_version, 128,
                            IndexSettings(approx_min_faces=len(slots)))  # fmt: skip
    for start in range(0, len(slots), 65_536):
        alone.add(member_ids[start : start + 65_536], members[start : start + 65_536])
    alone.train()
    took, found = timed(lambda x: alone.search(x, 10))
    result["index_of_those_faces_alone"] = {
        "faces": len(alone), "kind": alone.info()["kind"], "recall_at_10": recall(found),
        "p50_ms": pct(took, 0.5), "p99_ms": pct(took, 0.99),
    }  # fmt: skip
    alone.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/facesearch-bench/serving"))
    parser.add_argument(
        "--only", nargs="+", default=["stages", "concurrency", "ingest", "filtered"]
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "serving.json")
    parser.add_argument("--filtered-faces", type=int, nargs="*", default=[10_000_000],
                        help="also filtered search in an index of this many faces")  # fmt: skip
    args = parser.parse_args()
    settings = Settings(data_dir=args.workdir / f"store-{args.faces}",
                        cache_dir=Path.home() / ".cache" / "facesearch", workers=1)  # fmt: skip
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update({
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/serving.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load "
                   f"{os.getloadavg()[0]:.1f} at start (other work shares the cores)",
    })  # fmt: skip
    result["store"] = build(settings, args.faces)
    bench_user(settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each part, so a later failure keeps the earlier figures
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    photos = probes(40)
    if "stages" in args.only:
        result["stages"] = stages(settings, photos)
        log(f"stages: {result['stages']}")
        save()
    if "concurrency" in args.only:
        designs = concurrency(settings, photos, args.seconds)
        result["designs"] = designs
        best = max(designs, key=lambda d: designs[d]["rows"][2]["searches_per_s"]
                   if not designs[d]["env"] else 0)  # fmt: skip
        result["design"] = best
        result["concurrency"] = [
            {k: r[k] for k in ("clients", "searches_per_s", "p50_ms", "p99_ms")}
            for r in designs[best]["rows"]
        ]  # fmt: skip
        save()
    if "ingest" in args.only:
        chosen = result.get("designs", {}).get(result.get("design", "threads"),
                                               {"workers": 1, "search_models": 4})  # fmt: skip
        result["ingest"] = during_ingest(settings, chosen["workers"], chosen["search_models"],
                                         photos, args.seconds)  # fmt: skip
        log(f"ingest: {result['ingest']}")
        save()
    if "filtered" in args.only:
        rows = [filtered(settings)]
        log(f"filtered: {rows[-1]}")
        for faces in args.filtered_faces:
            rows.append(filtered_at(settings, faces, args.workdir))
            log(f"filtered: {rows[-1]}")
        result["filtered_by_size"] = rows
        result["filtered"] = max(rows, key=lambda r: r["faces"])
    save()
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
