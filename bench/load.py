"""Load test: concurrent searches while an ingest job runs, against the real server.

Starts `facesearch serve` on 127.0.0.1 (a free port; nothing else is contacted) over a
fresh catalog, ingests a gallery of LFW images (one per person) by a server-side folder
job, then for `--duration` seconds runs, all at once:

- `--photo-users` clients searching by an uploaded probe photo (LFW second photos),
- `--face-users` clients searching by a stored face id,
- `--read-users` clients listing collections and fetching face thumbnails,
- an ingest job of `--ingest` more LFW images into the same collection.

Each client sends its next request as soon as the last one is answered (closed loop, no
pause). The run stops by itself; the ingest is then awaited and checked: every file is
either stored, a duplicate or a recorded error, and the collection holds exactly the
images and faces the two jobs report. Results go to bench/results/load.json and
load.png (latency and throughput over time). Run from the repo root:

    python bench/load.py [--duration 180] [--gallery 500] [--ingest 400]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
)

from server import Server, first_login  # noqa: E402

from facesearch.config import Settings  # noqa: E402

DATA = REPO.parent / "shared" / "data"
PASSWORD = "correct horse battery staple"
PURPOSE = {"purpose": "missing person", "case": "LOAD-TEST"}
BIN_S = 10.0


@dataclass(frozen=True)
class Sample:
    kind: str
    start: float  # seconds since the load began
    latency: float
    status: int  # 0: no answer (a transport error)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[Sample], seconds: float) -> dict:
    ok = [s.latency for s in samples if 200 <= s.status < 300]
    errors = [s for s in samples if not 200 <= s.status < 300]
    return {
        "requests": len(samples),
        "errors": len(errors),
        "error_statuses": sorted({s.status for s in errors}),
        "per_s": round(len(samples) / seconds, 2),
        "p50_ms": round(1000 * statistics.median(ok), 1) if ok else None,
        "p99_ms": round(1000 * percentile(ok, 0.99), 1) if ok else None,
        "max_ms": round(1000 * max(ok), 1) if ok else None,
    }


def folder_of(images: list[Path], root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    for image in images:
        # A hard link: ingest refuses symbolic links that leave the folder.
        os.link(image, folder / image.name)
    return folder


def wait_job(client: httpx.Client, job_id: int, track: list | None = None, t0: float = 0.0):
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if track is not None:
            track.append((time.perf_counter() - t0, job["done"], job["images"]))
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--gallery", type=int, default=500)
    parser.add_argument("--ingest", type=int, default=400)
    parser.add_argument("--photo-users", type=int, default=4)
    parser.add_argument("--face-users", type=int, default=2)
    parser.add_argument("--read-users", type=int, default=1)
    parser.add_argument("--baseline", type=int, default=20, help="searches by one client first")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    args = parser.parse_args()

    lfw = DATA / "lfw" / "images_deepfunneled"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    firsts = [sorted(p.glob("*.jpg"))[0] for p in people]
    gallery_images = firsts[: args.gallery]
    ingest_images = firsts[args.gallery : args.gallery + args.ingest]
    probes = [
        sorted(p.glob("*.jpg"))[1] for p in people[: args.gallery] if len(list(p.glob("*.jpg"))) > 1
    ][:40]
    payloads = [p.read_bytes() for p in probes]

    work = tempfile.TemporaryDirectory()
    root = Path(work.name)
    gallery = folder_of(gallery_images, root, "gallery")
    later = folder_of(ingest_images, root, "later")
    server = Server(
        root / "data", Settings().cache_dir,
        FACESEARCH_API__ALLOWED_ROOTS=json.dumps([str(root)]),
        FACESEARCH_API__MAX_TOP_K="50",
    )  # fmt: skip
    results: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": os.getloadavg(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }  # fmt: skip
    samples: list[Sample] = []
    lock = threading.Lock()
    stop = threading.Event()
    with server:
        admin = first_login(server, PASSWORD)
        admin.post(
            "/api/collections", json={"name": "lfw", "source": "LFW", "legal_basis": "bench"}
        ).raise_for_status()
        clock = time.perf_counter()
        first = admin.post("/api/jobs", json={"collection": "lfw", "paths": [str(gallery)]})
        first_job = wait_job(admin, first.json()["id"])
        results["gallery_job"] = {**{k: first_job[k] for k in (
            "status", "total", "images", "faces", "duplicates", "errors")},
            "seconds": round(time.perf_counter() - clock, 1)}  # fmt: skip
        user = admin.post("/api/users", json={
            "username": "load-investigator", "role": "investigator", "password": PASSWORD,
            "must_change_password": False,
        }).json()  # fmt: skip
        token = admin.post("/api/tokens", json={"name": "load", "user_id": user["id"]}).json()
        headers = {"Authorization": f"Bearer {token['token']}"}
        listed = httpx.get(
            server.url + "/api/images?collection=lfw&limit=200", headers=headers, timeout=60
        ).json()
        face_ids = [f["id"] for image in listed for f in image["faces"]]

        # One client alone first: the service time that concurrency is compared with.
        alone = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=300) as client:
            for n in range(args.baseline + 2):
                started = time.perf_counter()
                client.post("/api/search", data={"top": "20", **PURPOSE},
                            files={"photo": ("p.jpg", payloads[n % len(payloads)])},
                            ).raise_for_status()  # fmt: skip
                if n >= 2:  # the first two warm the models and the index
                    alone.append(time.perf_counter() - started)
        results["one_client_search_photo"] = {
            "n": len(alone), "p50_ms": round(1000 * statistics.median(alone), 1),
            "searches_per_s": round(len(alone) / sum(alone), 2),
        }  # fmt: skip

        t0 = time.perf_counter()

        def record(kind: str, started: float, status: int) -> None:
            with lock:
                samples.append(Sample(kind, started - t0, time.perf_counter() - started, status))

        def user_loop(kind: str, seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        if kind == "search_photo":
                            photo = {"photo": ("p.jpg", rng.choice(payloads))}
                            form = {"top": "20", **PURPOSE}
                            answer = client.post("/api/search", data=form, files=photo)
                        elif kind == "search_face":
                            form = {"top": "20", "face_id": str(rng.choice(face_ids)), **PURPOSE}
                            answer = client.post("/api/search", data=form)
                        elif rng.random() < 0.5:
                            answer = client.get("/api/collections")
                        else:
                            answer = client.get(f"/api/faces/{rng.choice(face_ids)}/thumbnail")
                        record(kind, started, answer.status_code)
                    except httpx.HTTPError:
                        record(kind, started, 0)

        kinds = (["search_photo"] * args.photo_users + ["search_face"] * args.face_users
                 + ["read"] * args.read_users)  # fmt: skip
        threads = [threading.Thread(target=user_loop, args=(k, n)) for n, k in enumerate(kinds)]
        for thread in threads:
            thread.start()
        job = admin.post("/api/jobs", json={"collection": "lfw", "paths": [str(later)]}).json()
        progress: list = []
        deadline = t0 + args.duration
        while time.perf_counter() < deadline:
            state = admin.get(f"/api/jobs/{job['id']}").json()
            progress.append((time.perf_counter() - t0, state["done"], state["images"]))
            time.sleep(min(2.0, max(0.0, deadline - time.perf_counter())))
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - t0
        load_job = wait_job(admin, job["id"], progress, t0)
        collection = next(c for c in admin.get("/api/collections").json() if c["name"] == "lfw")

    work.cleanup()
    results["duration_s"] = round(elapsed, 1)
    results["load_average_after"] = os.getloadavg()
    results["overall"] = summary(samples, elapsed)
    results["by_kind"] = {
        kind: summary([s for s in samples if s.kind == kind], elapsed)
        for kind in ("search_photo", "search_face", "read")
    }
    searches = [s for s in samples if s.kind.startswith("search")]
    results["searches"] = summary(searches, elapsed)
    accounted = load_job["images"] + load_job["duplicates"] + load_job["errors"]
    alone = results["one_client_search_photo"]
    results["concurrency_cost"] = {
        "search_photo_p50_ratio_to_one_client": round(
            results["by_kind"]["search_photo"]["p50_ms"] / alone["p50_ms"], 2),
        "searches_per_s_ratio_to_one_client": round(
            results["searches"]["per_s"] / alone["searches_per_s"], 2),
    }  # fmt: skip
    results["ingest_during_load"] = {
        **{k: load_job[k] for k in ("status", "total", "images", "faces", "duplicates", "errors")},
        "finished_at_s": round(progress[-1][0], 1),
        "every_file_accounted_for": accounted == len(ingest_images) == load_job["total"],
        "collection_images": collection["images"],
        "collection_faces": collection["faces"],
        "nothing_lost": (
            collection["images"] == first_job["images"] + load_job["images"]
            and collection["faces"] == first_job["faces"] + load_job["faces"]
        ),
    }
    results["timeline"] = timeline(samples, elapsed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(samples, progress, elapsed, args.out.with_suffix(".png"), results)
    print(json.dumps({k: v for k, v in results.items() if k != "timeline"}, indent=2))


def timeline(samples: list[Sample], elapsed: float) -> list[dict]:
    rows = []
    for n in range(math.ceil(elapsed / BIN_S)):
        start = n * BIN_S
        width = min(BIN_S, elapsed - start)
        inside = [s for s in samples if start <= s.start < start + BIN_S]
        searches = [s.latency for s in inside if s.kind.startswith("search") and s.status == 200]
        rows.append({
            "t_s": start, "width_s": round(width, 2), "requests": len(inside),
            "errors": sum(1 for s in inside if not 200 <= s.status < 300),
            "searches": len(searches),
            "search_p50_ms": round(1000 * statistics.median(searches), 1) if searches else None,
            "search_p99_ms": round(1000 * percentile(searches, 0.99), 1) if searches else None,
        })  # fmt: skip
    return rows


def plot(samples, progress, elapsed, path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    colours = {"search_photo": "tab:blue", "search_face": "tab:orange", "read": "tab:green"}
    for kind, colour in colours.items():
        mine = [s for s in samples if s.kind == kind]
        top.scatter([s.start for s in mine], [1000 * s.latency for s in mine], s=4,
                    color=colour, alpha=0.4, label=kind)  # fmt: skip
    rows = results["timeline"]
    top.plot([r["t_s"] + BIN_S / 2 for r in rows], [r["search_p99_ms"] for r in rows],
             color="black", label=f"search p99 per {BIN_S:g} s")  # fmt: skip
    top.set_yscale("log")
    top.set_ylabel("latency (ms, log)")
    top.legend(loc="upper right", fontsize=8)
    top.set_title(
        f"{results['overall']['requests']} requests in {results['duration_s']} s, "
        f"{results['overall']['errors']} errors; searches p50 "
        f"{results['searches']['p50_ms']} ms, p99 {results['searches']['p99_ms']} ms"
    )
    for kind, colour in colours.items():
        starts = [s.start for s in samples if s.kind == kind]
        counts = [
            sum(1 for t in starts if r["t_s"] <= t < r["t_s"] + BIN_S) / r["width_s"] for r in rows
        ]
        bottom.plot([r["t_s"] + BIN_S / 2 for r in rows], counts, color=colour, label=kind)
    bottom.set_ylabel("requests per second")
    bottom.set_xlabel("seconds since the load began")
    twin = bottom.twinx()
    twin.plot([p[0] for p in progress], [p[1] for p in progress], color="grey", linestyle="--",
              label="ingest job: files done")  # fmt: skip
    twin.set_ylabel("ingest files done")
    bottom.axvline(elapsed, color="red", linewidth=0.8)
    lines = bottom.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    bottom.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
