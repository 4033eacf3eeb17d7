"""Video benchmark: seconds of video ingested per second of wall time, how the cost grows
with duration, and the recall of appearances, on clips built from LFW photos.

Clips come from tests/videoclips.py (LFW people pasted onto plain backgrounds, moving and
growing, with hard cuts between shots), so who is on screen when is known to the frame.
Each is ingested into a fresh catalog through the real Engine with the default video
settings (2 sampled frames a second, segments of 60 s).

1. Speed: 720p clips of growing duration (and one 360p), H.264 in MP4, with 1 worker and
   with 2 worker processes (segments are the units of work): per clip `clip`,
   `duration_s`, `resolution`, `sample_fps`, `seconds`, `realtime_factor` (seconds of
   video per second of wall time), `detections`, `tracks`, `faces_stored`; the summary
   `realtime_factor_720p` (the longest 720p clip, 2 workers) and seconds per minute of
   video at each duration.
2. Recall: one clip of many single-face LFW people, each on screen for 1 to 2.5 s, some
   two at a time. An appearance is found when a photo search with another photo of that
   person returns, among its top 10 and at or above the access threshold (0.363), a face
   of the clip within 1 s of the appearance. Also the recall of tracks: the share of
   appearances with a stored track that overlaps them and matches the person.

From the repository root (machine shared: nice):

    nice -n 10 python bench/video.py                 # writes bench/results/video.json
    nice -n 10 python bench/video.py --quick         # shorter clips, for a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from videoclips import (  # noqa: E402 (tests/ on the path first)
    Person,
    Shot,
    build_clip,
    people_photos,
    single_face_people,
)

from facesearch.config import Settings  # noqa: E402
from facesearch.engine import Engine  # noqa: E402
from facesearch.pipeline.analyze import Analyzer  # noqa: E402

RESULTS = REPO / "bench" / "results"
DATA = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data"))
LFW = DATA / "lfw" / "images_deepfunneled"
THRESHOLD = 0.363
COLOURS = [(40, 90, 140), (150, 60, 30), (30, 130, 60), (120, 120, 120), (10, 10, 60)]


def speed_shots(people: dict[str, list[Path]], seconds: float) -> list[Shot]:
    """About `seconds` of 2 s shots, one or two people each, an empty shot now and then."""
    names = list(people)
    shots, total, n = [], 0.0, 0
    while total < seconds - 1e-6:
        name, other = names[n % len(names)], names[(n + 1) % len(names)]
        cast = [Person(name, people[name][0], (0.35, 0.5), (0.45, 0.5), (0.7, 0.8))]
        if n % 3 == 2:
            cast = [
                Person(name, people[name][0], (0.27, 0.5), (0.3, 0.5), (0.6, 0.65)),
                Person(other, people[other][0], (0.73, 0.5), (0.7, 0.5), (0.6, 0.65)),
            ]
        if n % 5 == 4:
            cast = []
        length = min(2.0, seconds - total)
        shots.append(Shot(length, cast, COLOURS[n % len(COLOURS)]))
        total += length
        n += 1
    return shots


def recall_shots(people: dict[str, list[Path]], rng: random.Random) -> list[Shot]:
    """Each person on screen once or twice for 1 to 2.5 s, sometimes beside another."""
    names = list(people)
    shots = []
    for n, name in enumerate(names):
        seconds = rng.choice((1.0, 1.5, 2.0, 2.5))
        cast = [Person(name, people[name][0], (0.4, 0.5), (0.5, 0.5), (0.8, 1.0))]
        if n % 4 == 3:
            other = names[n - 2]
            cast = [
                Person(name, people[name][0], (0.27, 0.5), (0.3, 0.5), (0.7, 0.75)),
                Person(other, people[other][0], (0.73, 0.5), (0.7, 0.5), (0.7, 0.75)),
            ]
        shots.append(Shot(seconds, cast, COLOURS[n % len(COLOURS)]))
        if n % 3 == 1:
            shots.append(Shot(1.0, [], COLOURS[(n + 2) % len(COLOURS)]))
    return shots


def ingest_clip(folder: Path, workers: int, analyzer: Analyzer | None, data: Path) -> dict:
    settings = Settings(data_dir=data, workers=workers)
    with Engine(settings, analyzer=analyzer if workers <= 1 else None) as engine:
        engine.create_collection("bench", "built clips", "benchmark")
        clock = time.perf_counter()
        report = engine.ingest([folder], "bench")
        seconds = time.perf_counter() - clock
    assert report.errors == 0 and report.done == 1, report
    return {"seconds": seconds, "report": report}


def speed(analyzer: Analyzer, durations: list[float], tmp: Path, log) -> list[dict]:
    people = people_photos(LFW, 40)
    rows = []
    cases = [(d, (1280, 720)) for d in durations] + [(durations[-1], (640, 360))]
    for duration, size in cases:
        folder = tmp / f"speed-{size[1]}p-{duration:g}"
        folder.mkdir()
        clip = folder / "clip.mp4"
        build_clip(clip, speed_shots(people, duration), "mp4-h264", size=size, fps=25)
        for workers in (1, 2):
            done = ingest_clip(folder, workers, analyzer, tmp / f"data-{folder.name}-{workers}")
            report = done["report"]
            row = {
                "clip": f"{size[1]}p-{duration:g}s-h264", "duration_s": duration,
                "resolution": f"{size[0]}x{size[1]}", "sample_fps": Settings().video.sample_fps,
                "workers": workers, "seconds": round(done["seconds"], 2),
                "realtime_factor": round(duration / done["seconds"], 2),
                "frames_sampled": report.frames, "detections": report.detections,
                "tracks": report.tracks, "faces_stored": report.faces,
                "segments": report.segments,
                "stage_seconds": {k: round(v, 2) for k, v in report.stage_seconds.items()},
            }  # fmt: skip
            rows.append(row)
            log(row)
    return rows


def recall(analyzer: Analyzer, tmp: Path, count: int, log) -> dict:
    people = single_face_people(LFW, analyzer, count)
    folder = tmp / "recall"
    folder.mkdir()
    appearances = build_clip(folder / "recall.mp4", recall_shots(people, random.Random(7)),
                             "mp4-h264", size=(1280, 720), fps=25)  # fmt: skip
    settings = Settings(data_dir=tmp / "data-recall", workers=1)
    found = tracked = 0
    errors_ms = []
    misses = []
    with Engine(settings, analyzer=analyzer) as engine:
        engine.create_collection("bench", "built clips", "benchmark")
        engine.ingest([folder], "bench")
        conn = engine.catalog.conn
        tracks = conn.execute("SELECT id, start_ms, end_ms FROM tracks").fetchall()
        for a in appearances:
            probe = people[a.name][1].read_bytes()
            hits = [
                h for h in engine.search(probe, 10).hits
                if h.video and h.score >= THRESHOLD
                and a.start_ms - 1000 <= h.video["time_ms"] <= a.end_ms + 1000
            ]  # fmt: skip
            if hits:
                found += 1
                errors_ms.append(max(0, a.start_ms - hits[0].video["time_ms"],
                                     hits[0].video["time_ms"] - a.end_ms))  # fmt: skip
            else:
                misses.append({"name": a.name, "start_ms": a.start_ms, "end_ms": a.end_ms})
            reference = analyzer.faces(cv2.imread(str(a.photo)))[0].embedding
            overlapping = [t for t in tracks if t[1] < a.end_ms and t[2] >= a.start_ms]
            ids = [t[0] for t in overlapping]
            vectors = engine.catalog.embeddings_of(
                f for (f,) in conn.execute(
                    f"SELECT id FROM faces WHERE track_id IN ({','.join('?' * len(ids))})", ids
                )
            ) if ids else {}  # fmt: skip
            if any(float(v @ reference) > 0.6 for v in vectors.values()):
                tracked += 1
    result = {
        "people": len(people), "appearances": len(appearances),
        "appearance_seconds": [round((a.end_ms - a.start_ms) / 1000, 2) for a in appearances],
        "found": found, "recall": round(found / len(appearances), 4),
        "tracks_found": tracked, "track_recall": round(tracked / len(appearances), 4),
        "max_time_error_ms": max(errors_ms) if errors_ms else None,
        "misses": misses, "rule": "top 10, score >= 0.363, time within 1 s of the appearance",
    }  # fmt: skip
    log(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter clips (a smoke run)")
    parser.add_argument("--people", type=int, default=40, help="people in the recall clip")
    parser.add_argument("--out", type=Path, default=RESULTS / "video.json")
    args = parser.parse_args()
    if not LFW.exists():
        sys.exit(f"{LFW} is absent (set FACESEARCH_DATA to ../shared/data)")
    durations = [10.0, 20.0] if args.quick else [15.0, 30.0, 60.0, 120.0]
    analyzer = Analyzer.load(Settings())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as folder:
        tmp = Path(folder)
        rows = speed(analyzer, durations, tmp, print)
        found = recall(analyzer, tmp, 12 if args.quick else args.people, print)
    longest = max(r["duration_s"] for r in rows if r["resolution"] == "1280x720")
    at = {(r["resolution"], r["duration_s"], r["workers"]): r for r in rows}
    growth = [
        {"duration_s": d, "workers": w,
         "seconds_per_video_minute": round(60 * at[("1280x720", d, w)]["seconds"] / d, 2)}
        for w in (1, 2) for d in durations
    ]  # fmt: skip
    summary = {
        "realtime_factor_720p": at[("1280x720", longest, 2)]["realtime_factor"],
        "realtime_factor_720p_1_worker": at[("1280x720", longest, 1)]["realtime_factor"],
        "goal": ">= 4x real time for 720p at 2 sampled fps on 2 cores",
        "recall_of_appearances": found["recall"], "recall_of_tracks": found["track_recall"],
        "cost_growth": growth,
    }  # fmt: skip
    # fmt: off
    out = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg(), "shared": True},
        "versions": {"av": version("av"), "onnxruntime": version("onnxruntime"),
                     "opencv": cv2.__version__},
        "settings": Settings().video.model_dump(),
        "summary": summary, "clips": rows, "recall": found,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "command": "nice -n 10 python bench/video.py" + (" --quick" if args.quick else ""),
    }
    # fmt: on
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
