"""What lies behind the false match rate differences between UTKFace race groups (adults).

For adults (18 to 60) of each race group, the false match rate at the "strong lead"
threshold on all within-group pairs, split four ways to test candidate causes:

- same-person pairs: UTKFace has no identities and is taken as one photo per person,
  but it holds several photos of some public figures. Pairs scoring at or above 0.6
  are counted apart: on LFW DevTrain fewer than 1 in 1,000,000 pairs of strangers
  score that high, so nearly all such pairs are one person twice;
- age mix: only ages 25 to 45;
- gender mix: women and men apart;
- image detail: only photos whose JPEG file is above the median size (the 200x200
  crops of blurred or upscaled sources compress smaller);
- quality: faces of quality at least 0.9.

    PYTHONPATH=src python bench/demographic_causes.py --images ../shared/data/utkface
Writes bench/results/eval/demographic-causes.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facesearch.config import Settings
from facesearch.evaluation import calibration
from facesearch.evaluation.demographics import RACES, utkface_labels
from facesearch.evaluation.embeddings import embed_files
from facesearch.evaluation.protocols import image_files

SAME_PERSON = 0.6
OUT = Path(__file__).resolve().parent / "results" / "eval" / "demographic-causes.json"


def rates(vectors: np.ndarray, threshold: float) -> dict:
    """Pairs, false matches, and how many of those score >= SAME_PERSON."""
    s = (vectors @ vectors.T)[np.triu_indices(len(vectors), 1)]
    above = s >= threshold
    likely_same = s >= SAME_PERSON
    pairs = len(s)
    return {
        "faces": len(vectors),
        "pairs": pairs,
        "false_matches": int(above.sum()),
        "fmr": float(above.mean()) if pairs else None,
        "pairs_at_or_above_0.6": int(likely_same.sum()),
        "fmr_without_those": float((above & ~likely_same).mean()) if pairs else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--model", default="sface-2021dec")
    args = parser.parse_args()
    files = image_files(args.images)
    labels = [utkface_labels(p) for p in files]
    rows = [i for i, lab in enumerate(labels) if lab and 18 <= lab["age"] <= 60]
    paths = [files[i] for i in rows]
    e = embed_files(paths, Settings(), [args.model], mirrored=False)[args.model]
    threshold = calibration.load(args.model, False).thresholds["strong lead"]
    race = np.array([labels[i]["race"] for i in rows])
    age = np.array([labels[i]["age"] for i in rows])
    gender = np.array([labels[i]["gender"] for i in rows])
    size = np.array([p.stat().st_size for p in paths])
    detailed = size >= np.median(size)
    splits = {
        "adults 18-60": np.ones(len(rows), bool),
        "ages 25-45": (age >= 25) & (age <= 45),
        "women": gender == "female",
        "men": gender == "male",
        "file above median size": detailed,
        "quality >= 0.9": e.quality >= 0.9,
    }
    report: dict = {
        "model": args.model,
        "threshold": threshold,
        "band": "strong lead",
        "same_person_score": SAME_PERSON,
        "groups": {},
    }
    for group in RACES.values():
        in_group = e.found & (race == group)
        report["groups"][group] = {
            "women_share": float((gender[in_group] == "female").mean()),
            "median_age": float(np.median(age[in_group])),
            **{name: rates(e.plain[in_group & m], threshold) for name, m in splits.items()},
        }
    report["ratio_worst_to_best"] = {}
    for name in splits:
        for key in ("fmr", "fmr_without_those"):
            values = {g: v[name][key] for g, v in report["groups"].items() if v[name][key]}
            worst, best = max(values, key=values.get), min(values, key=values.get)
            report["ratio_worst_to_best"][f"{name}, {key}"] = {
                "worst": worst, "best": best, "ratio": values[worst] / values[best]
            }  # fmt: skip
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    for name in splits:
        cells = [
            f"{g} {v[name]['fmr']:.1e}/{v[name]['fmr_without_those']:.1e}"
            for g, v in report["groups"].items()
        ]
        print(f"{name:24s}", *cells)
    for k, v in report["ratio_worst_to_best"].items():
        print(f"{k:40s} {v['worst']}/{v['best']} {v['ratio']:.1f}")


if __name__ == "__main__":
    main()
