"""Ray ingest benchmark: throughput with 1, 2 and 3 Ray worker nodes on this machine,
against the local ingest in the same run.

For each worker count a fresh cluster is started (tests/raycluster.py: a head with
no CPUs and N worker nodes of one CPU each, every node in its own network
namespace, so data crosses veth links and separate object stores as between
machines). The pool puts one actor on each worker CPU. Ray runs and local runs
(the default local ingest: one worker process per core) alternate `--repeats`
times, each into a fresh catalog, so ratios are taken under the same load.

Each run is a child process: the Ray driver must run inside the head's namespace.
It reports the end-to-end time (joining the cluster and loading the models on
every actor included) and the steady rate after the first stored batch.

Needs root and iproute2, like the test. Results: bench/results/ray_ingest.json, .md

    python bench/ray_ingest.py --images 600 --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the namespace cluster the test uses

Row = dict[str, Any]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_data = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data, help="holds lfw/")
    parser.add_argument("--images", type=int, default=600, help="how many LFW images")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    # Internal: one ingest in this process, printed as JSON (run by the parent).
    parser.add_argument("--one-run", nargs=2, metavar=("MANIFEST", "DATA_DIR"))
    parser.add_argument("--ray", default="")
    return parser.parse_args(argv)


def one_run(manifest: Path, data_dir: Path, ray_address: str) -> Row:
    from facesearch.config import Settings
    from facesearch.engine import Engine

    settings = Settings(data_dir=data_dir)
    if ray_address:
        settings.ray.address = ray_address
    first: list[float] = []

    def progress(report) -> None:
        if not first and report.images:
            first.append(time.perf_counter() - started)
            first.append(report.done)

    with Engine(settings) as engine:
        engine.create_collection("lfw", "LFW deep-funnelled", "benchmark on public data")
        started = time.perf_counter()
        report = engine.ingest([manifest], "lfw", progress)
        wall = time.perf_counter() - started
    steady = (report.done - first[1]) / (wall - first[0]) if first and wall > first[0] else 0.0
    return {
        "images": report.images, "faces": report.faces, "errors": report.errors,
        "seconds": round(wall, 2), "first_batch_s": round(first[0], 2) if first else None,
        "images_per_s": round(report.done / wall, 2), "steady_images_per_s": round(steady, 2),
        "ray_nodes": report.ray_nodes,
    }  # fmt: skip


def spawn_run(manifest: Path, cluster=None) -> Row:
    with tempfile.TemporaryDirectory(prefix="fs-bench-ray-") as tmp:
        command = [sys.executable, __file__, "--one-run", str(manifest), tmp]
        env = dict(os.environ)
        if cluster is None:
            done = subprocess.run(command, capture_output=True, text=True, env=env)
        else:
            env["FACESEARCH_RAY__NODE_IP"] = cluster.head.address
            child = cluster.exec(
                cluster.head, [*command, "--ray", cluster.address], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            out, err = child.communicate()
            done = subprocess.CompletedProcess(command, child.returncode, out, err)
    if done.returncode:
        sys.exit(f"a run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main(args: argparse.Namespace) -> None:
    from raycluster import RayCluster

    # The nodes' actors import this checkout's facesearch, as the runs do.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p
    )

    root = args.data / "lfw" / "images_deepfunneled"
    files = sorted(root.glob("*/*.jpg"))[: args.images]
    if len(files) < args.images:
        sys.exit(f"{root} holds fewer than {args.images} images")
    runs: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fs-bench-ray-") as tmp:
        manifest = Path(tmp) / "lfw.csv"
        with manifest.open("w", newline="") as f:
            csv.writer(f).writerows([["path"], *([str(p)] for p in files)])
        for workers in args.workers:
            started = time.perf_counter()
            with RayCluster(workers=workers).start() as cluster:
                cluster_start = round(time.perf_counter() - started, 1)
                for repeat in range(args.repeats):
                    for kind in ("local", "ray"):
                        row = spawn_run(manifest, cluster if kind == "ray" else None)
                        row |= {"kind": kind, "ray_workers": workers, "repeat": repeat,
                                "load_average": load_average(),
                                "cluster_start_s": cluster_start}  # fmt: skip
                        print(json.dumps(row), file=sys.stderr)
                        runs.append(row)
            # Written after each cluster, so a later failure keeps what was measured.
            write_results(args, runs)


def summarise(runs: list[Row]) -> list[Row]:
    rows = []
    for workers in sorted({r["ray_workers"] for r in runs}):
        local = [r for r in runs if r["ray_workers"] == workers and r["kind"] == "local"]
        ray = [r for r in runs if r["ray_workers"] == workers and r["kind"] == "ray"]
        med = {
            key: (
                round(statistics.median(r[key] for r in local), 2),
                round(statistics.median(r[key] for r in ray), 2),
            )
            for key in ("images_per_s", "steady_images_per_s", "first_batch_s")
        }
        rows.append({
            "ray_workers": workers,
            "local_images_per_s": med["images_per_s"][0],
            "ray_images_per_s": med["images_per_s"][1],
            "ray_over_local": round(med["images_per_s"][1] / med["images_per_s"][0], 2),
            "local_steady_images_per_s": med["steady_images_per_s"][0],
            "ray_steady_images_per_s": med["steady_images_per_s"][1],
            "steady_ray_over_local": round(
                med["steady_images_per_s"][1] / med["steady_images_per_s"][0], 2
            ),
            "local_first_batch_s": med["first_batch_s"][0],
            "ray_first_batch_s": med["first_batch_s"][1],
            "cluster_start_s": ray[0]["cluster_start_s"],
            "load_average": [min(r["load_average"] for r in local + ray),
                             max(r["load_average"] for r in local + ray)],
        })  # fmt: skip
    return rows


NOTE = """\
What a real cluster changes. Here every node shares the same 2 cores, so more Ray
workers cannot add compute: the figures show Ray's overhead against the local pool
(cluster daemons, object transfer, one actor per CPU instead of OpenCV using both
cores), not its scaling. On a real cluster:
- cores: throughput grows with the actors, one per worker CPU (about 30 LFW images/s
  per 2 cores here, three quarters of it SFace), until the driver is the bottleneck;
- GPUs: an actor on a GPU node runs SFace in onnxruntime's CUDA provider
  (onnxruntime-gpu on that node) while YuNet and decoding stay on its CPU, so the
  CPU work per image (decode + detect, about a quarter here) bounds such a node;
- network: the driver reads every file to hash it (deduplication before any work)
  and ships the bytes to the actors; about 15 KB per LFW image, a few MB per archive
  photo, so a 1 Gb/s driver link carries some 30-100 archive photos/s;
- the driver is the single writer: the catalog transaction and the index update
  cost 0.1-0.2 ms per image (`store` in bench/results/ingest.md), so reading and
  hashing every file (SHA-256 at some hundreds of MB/s) and its network link bound
  one driver first; past that, several drivers can ingest disjoint folders into a
  catalog that takes concurrent writers (the PostgreSQL back end) and a shared
  vector store.
"""


def write_results(args: argparse.Namespace, runs: list[Row]) -> None:
    summary = summarise(runs)
    result = {
        "benchmark": "ray_ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/ray_ingest.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "ray": version("ray"),
        },
        "images": args.images,
        "summary": summary,
        "runs": runs,
        "note": NOTE,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Ray ingest",
        "",
        f"`{result['command']}`: {args.images} LFW images, median of {args.repeats} "
        f"alternating runs per row; {os.cpu_count()} cores, Ray {version('ray')}.",
        "",
        "| Ray workers | local img/s | Ray img/s | Ray/local | steady local | steady Ray "
        "| Ray/local steady | first batch local / Ray (s) | cluster start (s) | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary:
        lines.append(
            f"| {r['ray_workers']} | {r['local_images_per_s']} | {r['ray_images_per_s']} "
            f"| {r['ray_over_local']} | {r['local_steady_images_per_s']} "
            f"| {r['ray_steady_images_per_s']} | {r['steady_ray_over_local']} "
            f"| {r['local_first_batch_s']} / {r['ray_first_batch_s']} | {r['cluster_start_s']} "
            f"| {r['load_average'][0]}-{r['load_average'][1]} |"
        )
    loads = [r["load_average"] for r in runs]
    if max(loads) > 2 * (os.cpu_count() or 1):
        lines += [
            "",
            f"The machine was busy with other work (load average {min(loads)}-{max(loads)} on "
            f"{os.cpu_count()} cores): every process got a small share of a core, so the "
            "absolute rates are low, runs of the same configuration differ by up to half, and "
            "a configuration with more processes (more Ray nodes) gets a larger share of the "
            "machine. Read the ratios as 'no large overhead', not as scaling.",
        ]
    lines += ["", NOTE]
    (args.out / "ray_ingest.md").write_text("\n".join(lines))


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.one_run:
        manifest, data_dir = arguments.one_run
        print(json.dumps(one_run(Path(manifest), Path(data_dir), arguments.ray)))
    else:
        main(arguments)
