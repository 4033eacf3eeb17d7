"""Every recogniser and lever on the in-the-wild protocol, on every set that is present.

One enrolled photo per person, up to three other photos of each as probes, and at
least 10,000 distractor faces (evaluation/wild.py). Sets, each run where its folders
exist under ../shared/data (or $FACESEARCH_DATA), else skipped with the reason:

- `celeba_dev`: the issue's set, 150 identities of unconstrained celebrity photos;
  distractors fairface_val, UTKFace and LFW's one-image people.
- `lfw`: LFW's 1,680 people with two or more photos; distractors LFW's one-image
  people, UTKFace and AT&T, less the reviewed duplicates of gallery people
  (bench/distractors/lfw-duplicates.csv). Enrolment `first` and `hard`.
- `deepface-wild`: the `wild/` photos (deepface's test set: unconstrained photos of
  public figures, varied size, light and pose), people joined by their labelled
  same-person pairs; distractors LFW's one-image people and UTKFace. Enrolment
  `first` and `hard`. Small (a few dozen probes) but not news photos.
- `att`: AT&T's 40 people (grayscale, studio); distractors LFW's one-image people and
  UTKFace.

The strong-lead threshold of each model is the lowest score at which a top-1 result is
right with 99% precision in a 10,000-face gallery, fitted on LFW DevTrain (never a
probe's pair) by evaluation/precision.py; its measured precision here is
the check. Embeddings come from the evaluation cache (evaluation/embeddings.py), so a
rerun takes a minute; the first run embeds every image once per model.

    PYTHONPATH=src nice -n 10 python bench/recognisers_wild.py --models sface-2021dec
Writes bench/results/recognisers.json (rows) and bench/results/eval/wild/ (CMC, DET).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facesearch.config import Settings
from facesearch.evaluation import plots, precision, wild
from facesearch.evaluation.embeddings import Embeddings, embed_files
from facesearch.evaluation.measure import all_pair_scores
from facesearch.evaluation.protocols import (
    excluded_files,
    identities,
    image_files,
    read_lfw_pairs,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"
GALLERY_FOR_BANDS = 10_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def lfw_split() -> tuple[dict[str, list[Path]], list[Path]]:
    people = identities(DATA / "lfw" / "images_deepfunneled")
    multi = {n: f for n, f in people.items() if len(f) > 1}
    singles = [f[0] for f in people.values() if len(f) == 1]
    return multi, singles


def wild_identities(folder: Path) -> dict[str, list[Path]]:
    """People of the `wild/` photos (deepface's test set: unconstrained photos of public
    figures), from its labelled pairs: photos joined by a same-person pair are one
    person. A different-person pair inside one person would be a labelling error."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    pairs = []
    for name in ("master.csv", "face-recognition-pivot.csv"):
        if not (folder / name).is_file():
            continue
        with (folder / name).open(newline="") as f:
            for row in csv.DictReader(f):
                a, b = Path(row["file_x"]).name, Path(row["file_y"]).name
                same = (row.get("Decision") or row.get("decision") or "").lower() == "yes"
                pairs.append((a, b, same))
                if same:
                    parent[root(a)] = root(b)
                else:
                    root(a), root(b)
    if any(not same and root(a) == root(b) for a, b, same in pairs):
        raise SystemExit(f"{folder}: a different-person pair joins one person")
    people: dict[str, list[Path]] = {}
    for photo in sorted(parent, key=lambda n: (len(n), n)):
        if (folder / photo).is_file():
            people.setdefault(f"person-{root(photo)}", []).append(folder / photo)
    return people


def sets(enrolments: list[str]) -> tuple[list[dict], list[str]]:
    """The protocol sets present, and why the others were skipped."""
    found, skipped = [], []
    celeba, fairface = DATA / "celeba_dev", DATA / "fairface_val"
    lfw_ok = (DATA / "lfw" / "images_deepfunneled").is_dir()
    utk = DATA / "utkface"
    if celeba.is_dir() and fairface.is_dir() and lfw_ok:
        _, singles = lfw_split()
        found.append({
            "dataset": "celeba_dev", "identities": identities(celeba),
            "distractors": image_files(fairface) + image_files(utk) + singles,
            "exclude": None, "enrolment": "first",
        })  # fmt: skip
    else:
        skipped.append(f"celeba_dev: {celeba} or {fairface} is absent")
    if lfw_ok and utk.is_dir():
        multi, singles = lfw_split()
        att = image_files(DATA / "att_orl") if (DATA / "att_orl").is_dir() else []
        for enrolment in enrolments:
            found.append({
                "dataset": f"lfw-wild-{enrolment}", "identities": multi,
                "distractors": singles + image_files(utk) + att,
                "exclude": ROOT / "bench" / "distractors" / "lfw-duplicates.csv",
                "enrolment": enrolment,
            })  # fmt: skip
    else:
        skipped.append("lfw-wild: LFW or UTKFace is absent")
    photos = DATA / "wild"
    if (photos / "master.csv").is_file() and lfw_ok and utk.is_dir():
        _, singles = lfw_split()
        for enrolment in enrolments:
            found.append({
                "dataset": f"deepface-wild-{enrolment}", "identities": wild_identities(photos),
                "distractors": singles + image_files(utk), "exclude": None,
                "enrolment": enrolment,
            })  # fmt: skip
    else:
        skipped.append("deepface-wild: wild/master.csv, LFW or UTKFace is absent")
    if (DATA / "att_orl").is_dir() and lfw_ok and utk.is_dir():
        _, singles = lfw_split()
        found.append({
            "dataset": "att-wild", "identities": identities(DATA / "att_orl"),
            "distractors": singles + image_files(utk), "exclude": None, "enrolment": "first",
        })  # fmt: skip
    else:
        skipped.append("att-wild: AT&T, LFW or UTKFace is absent")
    return found, skipped


def levers(models: list[str], flipped: set[str]) -> list[wild.Lever]:
    out = []
    for m in models:
        out += [wild.Lever((m,))] + ([wild.Lever((m,), flip=True)] if m in flipped else [])
    out += [wild.Lever((models[0],), min_quality=q) for q in (0.5, 0.7)]
    if len(models) > 1:
        out.append(wild.Lever(tuple(models)))
        if flipped.issuperset(models):
            out.append(wild.Lever(tuple(models), flip=True))
    return out


def dev_scores(settings: Settings, model: str, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Impostor and genuine scores of every pair of LFW DevTrain images."""
    pairs = read_lfw_pairs(DATA / "lfw" / "pairsDevTrain.txt", DATA / "lfw" / "images_deepfunneled")
    files = pairs.files
    e = embed_files(files, settings, [model], mirrored=flip)[model]
    keep = np.flatnonzero(e.found)
    vectors = e.vectors(flip)[keep]
    people = np.array([files[i].parent.name for i in keep])
    return all_pair_scores(vectors, people)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="sface-2021dec", help="comma-separated")
    parser.add_argument("--enrolment", default="first,hard")
    parser.add_argument("--max-probes", type=int, default=3)
    parser.add_argument("--flip-models", default="sface-2021dec",
                        help="models whose mirror images are embedded (flip lever)")  # fmt: skip
    parser.add_argument("--speed", type=Path, default=RESULTS / "recogniser_speed.json",
                        help="ingest images/s per variant (bench/recognisers.py)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "recognisers.json")
    args = parser.parse_args()
    models = args.models.split(",")
    flipped = set(args.flip_models.split(",")) & set(models)
    settings = Settings(workers=2)
    found, skipped = sets(args.enrolment.split(","))
    for reason in skipped:
        log(f"skipped {reason}")
    speed = _speeds(args.speed)
    thresholds: dict[tuple[str, bool], dict[int, float]] = {}
    for m in models:
        for flip in (False, True) if m in flipped else (False,):
            impostor, genuine = dev_scores(settings, m, flip)
            thresholds[(m, flip)] = {
                g: precision.precision_threshold(impostor, genuine, g)
                for g in precision.GALLERY_SIZES
            }
            log(f"{m} flip={flip}: strong lead by gallery size {thresholds[(m, flip)]}")
    rows, cmc, det = [], {}, {}
    for spec in found:
        names = sorted(spec["identities"])
        labelled_files = [p for n in names for p in spec["identities"][n]]
        labels = [n for n in names for _ in spec["identities"][n]]
        started = time.perf_counter()
        labelled, distractors = (
            {m: embed_files(files, settings, [m], _progress(spec), mirrored=m in flipped)[m]
             for m in models}
            for files in (labelled_files, spec["distractors"])
        )  # fmt: skip
        left_out = None
        if spec["exclude"] is not None:
            names_out = excluded_files(spec["exclude"])
            left_out = np.array([p.name in names_out for p in spec["distractors"]], bool)
        log(f"{spec['dataset']}: embeddings ready in {time.perf_counter() - started:.0f}s")
        for lever in levers(models, flipped):
            outcome = wild.run(labelled, labels, distractors, lever, spec["enrolment"],
                               args.max_probes, left_out=left_out)  # fmt: skip
            key = (lever.models[0], lever.flip)
            threshold = thresholds[key][GALLERY_FOR_BANDS] if len(lever.models) == 1 else None
            row = {
                "model": " + ".join(lever.models),
                "levers": lever.levers,
                "dataset": spec["dataset"],
                **wild.summary(outcome, threshold),
                "strong_lead_calibrated_gallery": GALLERY_FOR_BANDS,
                "ingest_images_per_s": speed.get(_speed_key(lever)),
                "faces_not_detected": _misses(labelled, distractors, lever),
            }
            rows.append(row)
            label = f"{spec['dataset']}: {lever.label}"
            cmc[label] = np.array(outcome.row["cmc"])
            det[label] = outcome.det
            log(f"{label}: rank-1 {row['rank1']:.2%} rank-10 {row['rank10']:.2%} "
                f"FNIR@1e-2 {row['fnir_at_fpir_1e-2']:.2%} strong-lead precision "
                f"{row['strong_lead_precision']} ({row['strong_leads']})")  # fmt: skip
    plot_dir = RESULTS / "eval" / "wild"
    main_sets = {k: v for k, v in cmc.items() if "quality" not in k}
    plots.cmc_plot(main_sets, plot_dir / "wild-cmc.png", "CMC, in the wild, >= 10k distractors")
    plots.det_plot({k: v for k, v in det.items() if k in main_sets},
                   plot_dir / "wild-det.png", "DET, in the wild (rank 1)")  # fmt: skip
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "protocol": "one enrolled photo per identity, up to "
        f"{args.max_probes} other photos as probes, every distractor present",
        "skipped": skipped,
        "strong_lead_thresholds_by_gallery_size": {
            f"{m}{' flip' if f else ''}": {f"{g:,}": round(t, 4) for g, t in by.items()}
            for (m, f), by in thresholds.items()
        },
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    log(f"wrote {args.out}")


def _progress(spec: dict):
    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.time() - last[0] > 30 or done == total:
            last[0] = time.time()
            log(f"{spec['dataset']}: embedded {done}/{total}")

    return report


def _misses(labelled: dict[str, Embeddings], distractors: dict[str, Embeddings], lever) -> int:
    return sum(int((~labelled[m].found).sum() + (~distractors[m].found).sum())
               for m in lever.models[:1])  # fmt: skip


def _speed_key(lever: wild.Lever) -> str:
    return " + ".join(lever.models) + (" flip" if lever.flip else "")


def _speeds(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {r["variant"]: r["images_per_s"] for r in data.get("ingest", [])}


if __name__ == "__main__":
    main()
