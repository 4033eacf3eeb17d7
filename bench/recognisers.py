"""Speed of each recogniser, plain and with test-time flip, single-threaded.

For each of the first N LFW images (sorted paths): detect once, then time the
recogniser's alignment + embedding of the central face, `--repeat` rounds in
alternation so every variant sees the same machine load. Reports the median ms
per face and the ratio to SFace plain, measured in the same run.

Then the whole ingest pipeline per image (decode, detect, align, embed, quality,
thumbnail; `Analyzer.analyze_batch` in batches of 16, as ingest runs it), in images
per second on one thread; a fusion costs its first model's pipeline plus the second
model's alignment and embedding. Ingest runs one such worker per core.

    python bench/recognisers.py --images 200
Writes bench/results/recogniser_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2

from facesearch.config import Settings
from facesearch.evaluation.embeddings import central_face
from facesearch.models.cache import ModelCache
from facesearch.models.registry import get as get_model
from facesearch.pipeline.analyze import Analyzer, load_embedder
from facesearch.pipeline.decode import decode
from facesearch.pipeline.detect import Detector
from facesearch.pipeline.embed import embed_faces
from facesearch.types import SourceItem

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
MODELS = ("sface-2021dec", "dlib-resnet-v1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    settings = Settings()
    cache = ModelCache(settings.models_dir)
    detector = Detector(cache.ensure(get_model(settings.detector)), settings.detect)
    paths = sorted((DATA / "lfw" / "images_deepfunneled").glob("*/*.jpg"))[: args.images]
    faces = []
    detect_ms = []
    for path in paths:
        pixels = decode(path.read_bytes(), settings.decode).pixels
        clock = time.perf_counter()
        found = detector.detect(pixels)
        detect_ms.append((time.perf_counter() - clock) * 1000)
        face = central_face(found, pixels.shape[1], pixels.shape[0])
        if face is not None:
            faces.append((pixels, face))
    variants = {
        (m, flip): load_embedder(cache, get_model(m), flip)
        for m in MODELS
        for flip in (False, True)
    }
    timings: dict[tuple[str, bool], list[float]] = {k: [] for k in variants}
    for _ in range(args.repeat):
        for key, embedder in variants.items():
            clock = time.perf_counter()
            for pixels, face in faces:
                embed_faces(embedder, pixels, [face])
            timings[key].append((time.perf_counter() - clock) * 1000 / len(faces))
    base = statistics.median(timings[("sface-2021dec", False)])
    rows = [
        {"model": m, "flip": flip, "ms_per_face": round(statistics.median(t), 2),
         "ratio_to_sface": round(statistics.median(t) / base, 2)}
        for (m, flip), t in timings.items()
    ]  # fmt: skip
    ingest = _ingest_speed(paths, settings, cache, detector, variants, args.repeat, timings)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "faces": len(faces),
        "threads": 1,
        "load_average": os.getloadavg(),
        "detect_ms_per_250px_image_median": round(statistics.median(detect_ms), 2),
        "recognisers": rows,
        "ingest": ingest,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recogniser_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def _ingest_speed(paths, settings, cache, detector, variants, repeat, per_face) -> list[dict]:
    works = [(SourceItem(p), "", p.read_bytes()) for p in paths]
    seconds: dict[tuple[str, bool], list[float]] = {}
    for _ in range(repeat):
        for (model, flip), embedder in variants.items():
            analyzer = Analyzer(detector, embedder, settings)
            clock = time.perf_counter()
            for start in range(0, len(works), 16):
                analyzer.analyze_batch(works[start : start + 16])
            seconds.setdefault((model, flip), []).append(time.perf_counter() - clock)
    rows = []
    for (model, flip), t in seconds.items():
        rate = len(works) / statistics.median(t)
        rows.append({"variant": model + (" flip" if flip else ""), "images_per_s": round(rate, 1)})
    for flip in (False, True):
        base = len(works) / statistics.median(seconds[(MODELS[0], flip)])
        extra_s = statistics.median(per_face[(MODELS[1], flip)]) / 1000  # per face, ~1 per image
        rate = 1 / (1 / base + extra_s)
        rows.append({"variant": " + ".join(MODELS) + (" flip" if flip else ""),
                     "images_per_s": round(rate, 1)})  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
