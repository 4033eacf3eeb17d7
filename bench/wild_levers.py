"""Two score-side levers tried on SFace, measured on the in-the-wild protocol and on LFW.

Neither needs a new embedding, so both are checked on the cached embeddings of
bench/recognisers_wild.py, on the two sets at once (never tuned on one):

- `centred`: subtract the mean embedding of LFW DevTrain's images and renormalise
  (removes the direction every face shares).
- `hubness`: cross-domain similarity local scaling: each gallery face's score is
  lowered by half its mean similarity to its 10 nearest other gallery faces, so a
  face that resembles everyone ("hub") stops taking rank 1 from mates.

- `flip` (`--flip`): test-time flip, on the same enrolled photos and probes and a
  seeded draw of 10,000 distractors, the only rows embedded mirrored.

    PYTHONPATH=src nice -n 10 python bench/wild_levers.py [--flip]
Writes bench/results/wild_levers.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import recognisers_wild as rw

from facesearch.config import Settings
from facesearch.evaluation import metrics, wild
from facesearch.evaluation.embeddings import embed_files
from facesearch.evaluation.protocols import excluded_files, read_lfw_pairs
from facesearch.pipeline.embed import normalise

MODEL = "sface-2021dec"
K, ALPHA = 10, 0.5
FLIP_DISTRACTORS = 10_000


def hub_penalty(gallery: np.ndarray, k: int = K, block: int = 2048) -> np.ndarray:
    """Mean similarity of each gallery face to its k nearest other gallery faces."""
    out = np.empty(len(gallery), np.float32)
    for start in range(0, len(gallery), block):
        sim = gallery[start : start + block] @ gallery.T
        rows = np.arange(len(sim))
        sim[rows, rows + start] = -2.0
        out[start : start + block] = np.partition(sim, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def rank1(gallery: np.ndarray, probes: np.ndarray, mate: np.ndarray, alpha: float) -> float:
    """Rank-1 over enrolled faces followed by distractors (mates index the first rows)."""
    penalty = alpha * hub_penalty(gallery) if alpha else np.zeros(len(gallery), np.float32)
    best = np.concatenate(
        [(probes[s : s + 512] @ gallery.T - penalty).argmax(axis=1)
         for s in range(0, len(probes), 512)]
    )  # fmt: skip
    return float((best == mate).mean())


def flip_subset(spec: dict, settings: Settings, count: int = FLIP_DISTRACTORS):
    """The rows the flip comparison needs: every enrolled photo and probe of both
    enrolment rules, and a seeded draw of `count` usable distractors (the protocol's
    minimum), so that only these are embedded mirrored."""
    names = sorted(spec["identities"])
    files = [p for n in names for p in spec["identities"][n]]
    labels = [n for n in names for _ in spec["identities"][n]]
    lab = embed_files(files, settings, [MODEL], mirrored=False)[MODEL]
    dis = embed_files(spec["distractors"], settings, [MODEL], mirrored=False)[MODEL]
    out = excluded_files(spec["exclude"])
    usable = np.flatnonzero(dis.found & np.array([p.name not in out for p in spec["distractors"]]))
    drawn = np.sort(np.random.default_rng(0).permutation(usable)[:count])
    plans = {e: wild.plan(labels, lab.found, lab.quality, e, 3) for e in ("first", "hard")}
    rows = sorted({int(r) for p in plans.values() for r in (*p.gallery, *p.probes)})
    return files, rows, [spec["distractors"][i] for i in drawn], plans


def flip_rows(settings: Settings) -> list[dict]:
    """Rank-1 with and without test-time flip on the same enrolled photos, probes and
    10,000 distractors of the LFW wild protocol."""
    found, _ = rw.sets(["first"])
    spec = next(s for s in found if s["dataset"].startswith("lfw-wild"))
    files, rows, distractors, plans = flip_subset(spec, settings)
    position = {r: i for i, r in enumerate(rows)}
    lab = embed_files([files[r] for r in rows], settings, [MODEL], mirrored=True)[MODEL]
    dis = embed_files(distractors, settings, [MODEL], mirrored=True)[MODEL]
    out = []
    for enrolment, plan in plans.items():
        g = [position[int(r)] for r in plan.gallery]
        q = [position[int(r)] for r in plan.probes]
        for flip in (False, True):
            v, d = lab.vectors(flip), dis.vectors(flip)[dis.found]
            r1 = rank1(np.vstack([v[g], d]), v[q], plan.mate, 0.0)
            out.append({"dataset": f"lfw-wild-{enrolment}", "lever": "flip" if flip else "none",
                        "distractors": int(dis.found.sum()), "probes": len(q),
                        "rank1": round(r1, 5)})  # fmt: skip
            print(out[-1], file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flip", action="store_true",
                        help="also test-time flip (embeds the needed rows mirrored)")  # fmt: skip
    args = parser.parse_args()
    settings = Settings(workers=2)
    images = rw.DATA / "lfw" / "images_deepfunneled"
    dev = read_lfw_pairs(rw.DATA / "lfw" / "pairsDevTrain.txt", images)
    d = embed_files(dev.files, settings, [MODEL], mirrored=False)[MODEL]
    mean = d.plain[d.found].mean(axis=0)
    variants = {
        "none": (lambda v: v, 0.0),
        "centred": (lambda v: normalise(v - mean), 0.0),
        "hubness": (lambda v: v, ALPHA),
    }
    rows = []
    found, _ = rw.sets(["first", "hard"])
    for spec in found:
        if not spec["dataset"].startswith("lfw-wild"):
            continue
        names = sorted(spec["identities"])
        files = [p for n in names for p in spec["identities"][n]]
        labels = [n for n in names for _ in spec["identities"][n]]
        lab = embed_files(files, settings, [MODEL], mirrored=False)[MODEL]
        dis = embed_files(spec["distractors"], settings, [MODEL], mirrored=False)[MODEL]
        out = excluded_files(spec["exclude"])
        keep = dis.found & np.array([p.name not in out for p in spec["distractors"]])
        plan = wild.plan(labels, lab.found, lab.quality, spec["enrolment"], 3)
        for name, (transform, alpha) in variants.items():
            gallery = transform(np.vstack([lab.plain[plan.gallery], dis.plain[keep]]))
            r1 = rank1(gallery, transform(lab.plain[plan.probes]), plan.mate, alpha)
            rows.append({"dataset": spec["dataset"], "lever": name, "distractors": int(keep.sum()),
                         "probes": len(plan.probes), "rank1": round(r1, 5)})  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
    test = read_lfw_pairs(rw.DATA / "lfw" / "pairs.txt", images)
    t = embed_files(test.files, settings, [MODEL], mirrored=False)[MODEL]
    index = {p: i for i, p in enumerate(test.files)}
    a = np.array([index[p] for p in test.first])
    b = np.array([index[p] for p in test.second])
    same, folds = np.array(test.same), np.array(test.folds)
    for name, (transform, alpha) in variants.items():
        v = transform(t.plain)
        scores = (v[a] * v[b]).sum(axis=1)
        if alpha:
            # 1:1 has no gallery: each side is scaled against DevTrain's faces instead.
            cohort = transform(d.plain[d.found])
            r = np.partition(v @ cohort.T, -K, axis=1)[:, -K:].mean(axis=1)
            scores = scores - alpha * (r[a] + r[b])
        acc = metrics.kfold_accuracy(scores, same, folds)
        rows.append({"dataset": "lfw-10-fold", "lever": name, "pairs": len(same),
                     "accuracy": round(acc.mean, 5), "std": round(acc.std, 5)})  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    if args.flip:
        rows += flip_rows(settings)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "model": MODEL,
              "hubness": {"k": K, "alpha": ALPHA}, "rows": rows}  # fmt: skip
    (rw.RESULTS / "wild_levers.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
