"""Service benchmark: what the HTTP layer adds to a search, and what logging in costs.

Starts the real `facesearch serve` on 127.0.0.1 (a free port) over a fresh catalog of the
first N LFW images, ingested by a server-side folder job, then measures, alternating so
both see the same machine load:

1. search latency through POST /api/search (httpx, one request at a time) against
   Engine.search in this process on the same catalog and the same probes;
2. searches from 1, 2 and 4 concurrent clients (the server runs one search at a time);
3. small reads (collection list, a face thumbnail) and a password login (argon2id).

Results go to bench/results/service.json and service.md. Run from the repo root:

    python bench/service.py [--images 1000] [--probes 20]
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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]
# The server subprocess runs this checkout's code too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)

from server import Server, first_login  # noqa: E402

from facesearch.config import Settings  # noqa: E402
from facesearch.engine import Engine  # noqa: E402

DATA = REPO.parent / "shared" / "data"
PASSWORD = "correct horse battery staple"


def ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 2),
        "n": len(ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    lfw = DATA / "lfw" / "images_deepfunneled"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    gallery = tempfile.TemporaryDirectory()
    folder = Path(gallery.name) / "gallery"
    folder.mkdir()
    stored = [img for person in people for img in sorted(person.glob("*.jpg"))[:1]][: args.images]
    for image in stored:
        # A hard link: ingest refuses symbolic links that leave the folder.
        os.link(image, folder / image.name)
    # Probes: the second photo of people whose first photo is stored.
    probes = [
        sorted(p.glob("*.jpg"))[1] for p in people[: args.images] if len(list(p.glob("*.jpg"))) > 1
    ][: args.probes]
    probes.append(DATA / "wild" / "img1.jpg")  # 2.3 MB, 1536x1152-class photo
    cache = Settings().cache_dir
    work = Path(gallery.name)
    server = Server(
        work / "data", cache, FACESEARCH_API__ALLOWED_ROOTS=json.dumps([str(work)]),
        FACESEARCH_WORKERS="2",
    )  # fmt: skip
    results: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "images": len(stored), "probes": len(probes),
    }  # fmt: skip
    with server:
        client = first_login(server, PASSWORD)
        client.post(
            "/api/collections", json={"name": "lfw", "source": "LFW", "legal_basis": "bench"}
        ).raise_for_status()
        started = time.perf_counter()
        job = client.post("/api/jobs", json={"collection": "lfw", "paths": [str(folder)]}).json()
        while (state := client.get(f"/api/jobs/{job['id']}").json())["status"] in (
            "queued", "running",
        ):  # fmt: skip
            time.sleep(0.5)
        results["ingest_job"] = {
            "status": state["status"], "faces": state["faces"], "errors": state["errors"],
            "seconds": round(time.perf_counter() - started, 1), "rate_images_per_s": state["rate"],
        }  # fmt: skip
        # The administrator cannot search; an investigator's token does.
        user = client.post("/api/users", json={
            "username": "bench-investigator", "role": "investigator", "password": PASSWORD,
            "must_change_password": False,
        }).json()  # fmt: skip
        search_token = client.post(
            "/api/tokens", json={"name": "bench", "user_id": user["id"]}
        ).json()["token"]
        searcher = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {search_token}"}, timeout=120
        )
        payloads = [p.read_bytes() for p in probes]

        def http_search(data: bytes) -> float:
            clock = time.perf_counter()
            answer = searcher.post(
                "/api/search", files={"photo": ("p.jpg", data)}, data={"top": "10"}
            )
            answer.raise_for_status()
            return time.perf_counter() - clock

        settings = Settings(data_dir=work / "data", workers=1)
        engine = Engine(settings)
        for data in payloads[:2]:  # warm both sides: models, index
            http_search(data)
            engine.search(data, 10)
        lfw_http, lfw_engine, big_http, big_engine = [], [], [], []
        for _ in range(3):
            for n, data in enumerate(payloads):
                big = n == len(payloads) - 1
                (big_http if big else lfw_http).append(http_search(data))
                clock = time.perf_counter()
                engine.search(data, 10)
                (big_engine if big else lfw_engine).append(time.perf_counter() - clock)
        engine.close()
        results["search_lfw_250px"] = {"http": ms(lfw_http), "engine": ms(lfw_engine)}
        results["search_wild_large"] = {"http": ms(big_http), "engine": ms(big_engine)}

        concurrency = {}
        for clients in (1, 2, 4):
            jobs = [payloads[i % (len(payloads) - 1)] for i in range(8 * clients)]
            clock = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                latencies = list(pool.map(http_search, jobs))
            wall = time.perf_counter() - clock
            concurrency[clients] = {**ms(latencies), "searches_per_s": round(len(jobs) / wall, 2)}
        results["concurrent_searches_lfw"] = concurrency

        reads = {"collections": [], "thumbnail": []}
        face = searcher.post("/api/search", files={"photo": ("p.jpg", payloads[0])}).json()
        thumb = face["matches"][0]["thumbnail_url"]
        for _ in range(50):
            for key, url in (("collections", "/api/collections"), ("thumbnail", thumb)):
                clock = time.perf_counter()
                searcher.get(url).raise_for_status()
                reads[key].append(time.perf_counter() - clock)
        logins = []
        credentials = {"username": "bench-investigator", "password": PASSWORD}
        for _ in range(5):
            clock = time.perf_counter()
            httpx.post(server.url + "/api/auth/login", json=credentials).raise_for_status()
            logins.append(time.perf_counter() - clock)
        results["reads"] = {k: ms(v) for k, v in reads.items()}
        results["login_argon2id"] = ms(logins)
    gallery.cleanup()
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "service.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "service.md").write_text(_markdown(results))
    print(_markdown(results))


def _markdown(r: dict) -> str:
    lines = [
        f"# Service benchmark ({r['when']}, {r['machine']})", "",
        f"Catalog: {r['images']} LFW images ingested by a server-side folder job "
        f"({r['ingest_job']['faces']} faces, {r['ingest_job']['seconds']} s, "
        f"{r['ingest_job']['rate_images_per_s']} images/s with 2 worker processes).", "",
        "| what | median ms | p90 ms | n |", "|---|---|---|---|",
    ]  # fmt: skip
    rows = [
        ("search, LFW 250x250 probe, HTTP", r["search_lfw_250px"]["http"]),
        ("search, LFW 250x250 probe, Engine in-process", r["search_lfw_250px"]["engine"]),
        ("search, wild 2.3 MB probe, HTTP", r["search_wild_large"]["http"]),
        ("search, wild 2.3 MB probe, Engine in-process", r["search_wild_large"]["engine"]),
        ("GET /api/collections", r["reads"]["collections"]),
        ("GET a face thumbnail", r["reads"]["thumbnail"]),
        ("POST /api/auth/login (argon2id verify)", r["login_argon2id"]),
    ]
    lines += [f"| {name} | {v['median_ms']} | {v['p90_ms']} | {v['n']} |" for name, v in rows]
    lines += ["", "| concurrent clients | searches/s | median ms | p90 ms |", "|---|---|---|---|"]
    for clients, v in r["concurrent_searches_lfw"].items():
        lines.append(f"| {clients} | {v['searches_per_s']} | {v['median_ms']} | {v['p90_ms']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
