"""Ingest benchmark: LFW images through the real Engine, then the runtimes under it.

1. The first N LFW images (sorted paths) are ingested into a fresh catalog with
   1 worker (in-process) and with 2 worker processes, alternating, so the
   speed-up is a ratio taken under the same conditions.
2. SFace fp32 under OpenCV DNN versus onnxruntime, and YuNet on 640x480, which
   is what the runtime choice in models/session.py rests on.

Results go to bench/results/ingest.json and ingest.md. Run from the repo root:

    python bench/ingest.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facesearch.config import Settings
from facesearch.engine import Engine
from facesearch.ingest import IngestReport
from facesearch.models.cache import ModelCache
from facesearch.models.registry import get as get_model
from facesearch.models.session import ModelSession, OpenCvSession, OrtSession
from facesearch.pipeline.detect import Detector

REPO = Path(__file__).resolve().parent.parent
STAGES = ("decode", "detect", "align", "embed", "store")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}

Row = dict[str, Any]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_data = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data, help="holds lfw/")
    parser.add_argument("--images", type=int, default=1000, help="how many LFW images")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="ingest runs per worker count")
    parser.add_argument("--runtime-repeats", type=int, default=15, help="timed calls per case")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-runtimes", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    return parser.parse_args(argv)


# selection


def select_images(data: Path, count: int) -> list[Path]:
    root = data / "lfw" / "images_deepfunneled"
    if not root.is_dir():
        sys.exit(f"{root} not found; set FACESEARCH_DATA or pass --data")
    paths = sorted(
        (p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if len(paths) < count:
        sys.exit(f"{root} holds {len(paths)} images, fewer than the {count} asked for")
    return paths[:count]


def write_manifest(paths: list[Path], dest: Path) -> Path:
    with dest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path"])
        writer.writerows([str(p.resolve())] for p in paths)
    return dest


def require_models(settings: Settings) -> None:
    # A benchmark that silently downloads and folds models would time the network.
    cache = ModelCache(settings.models_dir)
    names = (settings.detector, settings.embedder)
    missing = [n for n in names if not cache.is_installed(get_model(n))]
    if missing:
        sys.exit(
            f"models {missing} are not in {settings.models_dir}; run "
            "'facesearch models fetch' or set FACESEARCH_CACHE_DIR"
        )


# ingest


@contextmanager
def progress_reporter(label: str, total: int) -> Iterator[Callable[[IngestReport], None]]:
    console = Console(stderr=True)
    if not console.is_terminal:
        # Logs get a line per 100 images instead of a bar they cannot redraw.
        next_line = 100

        def line(report: IngestReport) -> None:
            nonlocal next_line
            if report.done >= next_line or report.done == total:
                console.print(f"{label}: {report.done}/{total} images, {report.faces} faces")
                next_line = (report.done // 100 + 1) * 100

        yield line
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda report: bar.update(task, completed=report.done)


def ingest_once(manifest: Path, workers: int, count: int, label: str) -> Row:
    with tempfile.TemporaryDirectory(prefix="facesearch-bench-data-") as tmp:
        settings = Settings(data_dir=Path(tmp), workers=workers)
        first_result: list[float] = []
        with Engine(settings) as engine, progress_reporter(label, count) as show:
            engine.create_collection("lfw", "LFW deep-funnelled", "benchmark on public data")

            def progress(report: IngestReport) -> None:
                if not first_result:
                    first_result.append(time.perf_counter() - started)
                show(report)

            started = time.perf_counter()
            report = engine.ingest([manifest], "lfw", progress)
            wall = time.perf_counter() - started
    return summarise_run(report, workers, wall, first_result[0] if first_result else wall)


def summarise_run(report: IngestReport, workers: int, wall: float, first_result: float) -> Row:
    analysed = report.images + report.errors
    per_image = {s: 1000 * report.stage_seconds.get(s, 0.0) / max(analysed, 1) for s in STAGES}
    return {
        "workers": workers,
        "wall_s": wall,
        "first_result_s": first_result,
        "images_per_s": report.done / wall,
        "faces_per_s": report.faces / wall,
        "done": report.done,
        "images": report.images,
        "faces": report.faces,
        "duplicates": report.duplicates,
        "errors": report.errors,
        "stage_ms_per_image": per_image,
        "stages_sum_ms_per_image": sum(per_image.values()),
        "report_seconds": report.seconds,
        # Other processes on a small box skew every figure; this shows when they did.
        "load_avg_1min_after": os.getloadavg()[0],
    }


def ingest_benchmark(args: argparse.Namespace, manifest: Path) -> list[Row]:
    runs: dict[int, list[Row]] = {w: [] for w in args.workers}
    # Alternating worker counts spreads the box's drift over both sides of the ratio.
    for repeat in range(args.repeats):
        for workers in args.workers:
            label = f"workers={workers} run {repeat + 1}/{args.repeats}"
            runs[workers].append(ingest_once(manifest, workers, args.images, label))
            last = runs[workers][-1]
            print(f"{label}: {last['wall_s']:.1f} s, {last['images_per_s']:.1f} images/s")
    return [median_run(w, rs) for w, rs in runs.items()]


def median_run(workers: int, runs: list[Row]) -> Row:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    stages = {s: statistics.median(r["stage_ms_per_image"][s] for r in runs) for s in STAGES}
    return {
        "workers": workers,
        "wall_s": med("wall_s"),
        "images_per_s": med("images_per_s"),
        "faces_per_s": med("faces_per_s"),
        "first_result_s": med("first_result_s"),
        "stage_ms_per_image": stages,
        "stages_sum_ms_per_image": sum(stages.values()),
        "max_load_avg_1min": max(r["load_avg_1min_after"] for r in runs),
        "images": runs[0]["images"],
        "faces": runs[0]["faces"],
        "duplicates": runs[0]["duplicates"],
        "errors": runs[0]["errors"],
        "runs": runs,
    }


def paired_speedup(rows: list[Row]) -> float | None:
    """Median over repeats of (most workers / 1 worker) images/s, each pair run back to back."""
    by_workers = {r["workers"]: r["runs"] for r in rows}
    if 1 not in by_workers or len(by_workers) < 2:
        return None
    pairs = zip(by_workers[max(by_workers)], by_workers[1], strict=True)
    return statistics.median(many["images_per_s"] / one["images_per_s"] for many, one in pairs)


# runtimes


@contextmanager
def opencv_threads(count: int) -> Iterator[None]:
    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def median_ms(call: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        call()
        times.append(time.perf_counter() - clock)
    return 1000 * statistics.median(times)


def open_sface(runtime: str, path: Path, threads: int) -> ModelSession:
    return OrtSession(path, threads) if runtime == "onnxruntime" else OpenCvSession(path)


def sface_benchmark(path: Path, args: argparse.Namespace) -> tuple[list[Row], float]:
    rng = np.random.default_rng(0)
    inputs = {b: rng.integers(0, 256, (b, 3, 112, 112)).astype(np.float32) for b in args.batches}
    rows = []
    outputs: dict[str, np.ndarray] = {}
    for threads in args.threads:
        with opencv_threads(threads):
            for runtime in ("opencv", "onnxruntime"):
                session = open_sface(runtime, path, threads)
                outputs[runtime] = session.run(inputs[max(args.batches)])
                for batch, data in inputs.items():
                    ms = median_ms(lambda s=session, d=data: s.run(d), args.runtime_repeats)
                    rows.append(
                        {"runtime": runtime, "threads": threads, "batch": batch,
                         "ms_per_batch": ms, "ms_per_face": ms / batch}
                    )  # fmt: skip
    return rows, max_cosine_gap(outputs["opencv"], outputs["onnxruntime"])


def max_cosine_gap(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.max(1.0 - np.sum(a * b, axis=1)))


def yunet_benchmark(settings: Settings, image: Path, args: argparse.Namespace) -> list[Row]:
    path = ModelCache(settings.models_dir).path(get_model(settings.detector))
    pixels = cv2.resize(cv2.imread(str(image)), (480, 480))
    # An LFW face pasted on a 640x480 grey canvas, so the detector has one face to find.
    canvas = np.full((480, 640, 3), 127, np.uint8)
    canvas[:, 80:560] = pixels
    rows = []
    for threads in args.threads:
        with opencv_threads(threads):
            detector = Detector(path, settings.detect)
            faces = len(detector.detect(canvas))
            ms = median_ms(lambda d=detector: d.detect(canvas), args.runtime_repeats * 4)
            rows.append({"threads": threads, "size": "640x480", "ms_per_image": ms, "faces": faces})
    return rows


# facts and output


def git(*command: str) -> str:
    done = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def warn_if_busy() -> None:
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus / 2:
        print(f"warning: load average {load:.1f} on {cpus} CPUs; figures will be low and noisy")


def machine_facts(settings: Settings) -> Row:
    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "opencv_default_threads": cv2.getNumThreads(),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "numpy": np.__version__,
        "pillow": version("pillow"),
        "facesearch": version("facesearch"),
        "models_dir": str(settings.models_dir),
        "load_avg_1min_at_start": os.getloadavg()[0],
    }


def markdown(result: Row) -> str:
    facts = result["machine"]
    first = result["ingest"][0]
    lines = [
        f"Ingest of {result['images_requested']:,} LFW images (250x250 JPEG; {first['faces']:,} "
        f"faces, {first['errors']} errors), commit {result['commit']}, {facts['cpu_count']} CPUs, "
        f"Python {facts['python']}, OpenCV {facts['opencv']}, onnxruntime {facts['onnxruntime']}; "
        f"median of {result['repeats']} runs per row, alternating.",
        "",
        "| workers | wall s | images/s (range) | faces/s | start s "
        "| decode | detect | align | embed | store |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["ingest"]:
        rates = [r["images_per_s"] for r in run["runs"]]
        stages = " | ".join(f"{run['stage_ms_per_image'][s]:.1f}" for s in STAGES)
        lines.append(
            f"| {run['workers']} | {run['wall_s']:.1f} "
            f"| {run['images_per_s']:.1f} ({min(rates):.0f}-{max(rates):.0f}) "
            f"| {run['faces_per_s']:.1f} | {run['first_result_s']:.1f} | {stages} |"
        )
    lines += [
        "",
        "Stage columns are CPU-side ms per image, summed over worker processes; images/s and "
        "faces/s are wall-clock, model loading and worker start included. Start s is the time "
        "to the first stored batch. With 1 worker OpenCV uses all cores in-process; each worker "
        "process uses one thread.",
    ]
    if result.get("speedup") is not None:
        most = max(r["workers"] for r in result["ingest"])
        lines.append(
            f"Speed-up of {most} workers over 1 (images/s, median of paired runs): "
            f"{result['speedup']:.2f}x."
        )
    if result.get("runtimes"):
        lines += ["", *runtime_markdown(result["runtimes"])]
    return "\n".join(lines) + "\n"


def runtime_markdown(runtimes: Row) -> list[str]:
    batches = sorted({r["batch"] for r in runtimes["sface"]})
    lines = [
        "SFace fp32, ms per face (median):",
        "",
        "| runtime | threads | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "|---|---:|" + "---:|" * len(batches),
    ]
    cases = sorted({(r["threads"], r["runtime"]) for r in runtimes["sface"]})
    for threads, runtime in cases:
        cells = " | ".join(
            f"{r['ms_per_face']:.2f}"
            for b in batches
            for r in runtimes["sface"]
            if (r["runtime"], r["threads"], r["batch"]) == (runtime, threads, b)
        )
        lines.append(f"| {runtime} | {threads} | {cells} |")
    yunet = ", ".join(
        f"{r['ms_per_image']:.1f} ms at {r['threads']} thread{'s' * (r['threads'] > 1)}"
        for r in runtimes["yunet"]
    )
    lines += [
        "",
        f"YuNet (OpenCV) on 640x480, per image (median): {yunet}.",
        f"Largest cosine gap between the runtimes' embeddings: {runtimes['cosine_gap']:.1e}.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings()
    require_models(settings)
    images = select_images(args.data, args.images)
    warn_if_busy()
    result: Row = {
        "command": "python " + shlex.join(sys.argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_tree": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine_facts(settings),
        "images_requested": len(images),
        "first_image": str(images[0]),
        "last_image": str(images[-1]),
        "repeats": args.repeats,
        "batch_images": settings.batch_images,
    }
    with tempfile.TemporaryDirectory(prefix="facesearch-bench-") as tmp:
        manifest = write_manifest(images, Path(tmp) / "manifest.csv")
        result["ingest"] = ingest_benchmark(args, manifest)
    result["speedup"] = paired_speedup(result["ingest"])
    if not args.skip_runtimes:
        sface = ModelCache(settings.models_dir).path(get_model(settings.embedder))
        rows, gap = sface_benchmark(sface, args)
        result["runtimes"] = {
            "sface": rows,
            "cosine_gap": gap,
            "yunet": yunet_benchmark(settings, images[0], args),
            "repeats": args.runtime_repeats,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    summary = markdown(result)
    (args.out / "ingest.md").write_text(summary, encoding="utf-8")
    print(summary)


if __name__ == "__main__":
    main()
