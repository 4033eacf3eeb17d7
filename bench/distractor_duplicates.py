"""Distractors that may be a gallery person: candidates and contact sheets for review.

Flags every distractor (LFW's one-image people and the extra folders) whose mean
similarity to an LFW person with two or more images reaches a threshold chosen on
LFW itself (see facesearch.evaluation.duplicates), and writes:

- candidates.csv: file, the person, the mean similarity, the person's image count;
- sheet-NN.png: each candidate beside four photos of the person, for review by eye;
- duplicates.json: the threshold, how it was chosen and the counts.

The reviewed list (bench/distractors/lfw-duplicates.csv) is written by a person;
`facesearch eval identify --exclude` leaves its files out of the distractors.

    PYTHONPATH=src python bench/distractor_duplicates.py \
        --gallery ../shared/data/lfw/images_deepfunneled --distractors ../shared/data/utkface
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np

from facesearch.config import Settings
from facesearch.evaluation.duplicates import best_person, leave_one_out, people_means
from facesearch.evaluation.embeddings import embed_files
from facesearch.evaluation.protocols import excluded_files, identities, image_files

ROWS_PER_SHEET = 12
TILE = 128
# Share of LFW images whose best mean similarity to another person may reach the
# threshold: 1 in 1,000, a handful of look-alikes among ~14,000 distractors.
LOOKALIKE_RATE = 1e-3
OUT = Path("bench/results/eval/distractor-duplicates")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=Path, required=True)
    parser.add_argument("--distractors", type=Path, action="append", default=[])
    parser.add_argument("--model", default="sface-2021dec")
    parser.add_argument(
        "--reviewed",
        type=Path,
        help="The reviewed list: also write control-hardest.txt, as many distractors as it "
        "confirms, the ones most like a gallery person among those it does not confirm.",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    people = identities(args.gallery)
    labelled = [(name, p) for name, files in people.items() for p in files]
    extra = [p for folder in args.distractors for p in image_files(folder)]
    paths = [p for _, p in labelled] + extra
    e = embed_files(paths, Settings(), [args.model], mirrored=False)[args.model]
    labels = [name for name, _ in labelled]
    n = len(labelled)
    vectors = e.plain

    same, other = leave_one_out(vectors[:n], e.found[:n], labels)
    threshold = float(np.quantile(other, 1 - LOOKALIKE_RATE))
    enrolled = people_means(vectors[:n], e.found[:n], labels, least=2)

    # Distractors: LFW people with one image, then the extra folders.
    singles = [i for i, (name, _) in enumerate(labelled) if len(people[name]) == 1]
    rows = np.array([i for i in [*singles, *range(n, len(paths))] if e.found[i]])
    who, score = best_person(vectors[rows], enrolled)
    flagged = np.argsort(-score)[: int((score >= threshold).sum())]

    if args.reviewed:
        confirmed = excluded_files(args.reviewed)
        names = [paths[r].name for r in rows]
        hardest = [names[k] for k in np.argsort(-score) if names[k] not in confirmed]
        control = hardest[: len(confirmed)]
        (args.out / "control-hardest.txt").write_text(
            f"# The {len(control)} distractors most like a gallery person (mean similarity)\n"
            f"# that the review did not confirm as that person: a control\n"
            + "".join(f"{name}\n" for name in control)
        )

    candidates = []
    for k in flagged:
        person = enrolled.names[who[k]]
        candidates.append({
            "file": paths[rows[k]].name,
            "person": person,
            "mean_similarity": round(float(score[k]), 4),
            "person_images": int(enrolled.counts[who[k]]),
            "path": str(paths[rows[k]]),
            "person_paths": [str(p) for p in people[person][:4]],
        })  # fmt: skip
    with (args.out / "candidates.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "person", "mean_similarity", "person_images"])
        for c in candidates:
            writer.writerow([c["file"], c["person"], c["mean_similarity"], c["person_images"]])
    # Sheets group each person's candidates together, which is how they are judged.
    by_person = sorted(candidates, key=lambda c: (c["person"], -c["mean_similarity"]))
    sheets = _sheets(by_person, args.out)
    report = {
        "model": args.model,
        "gallery": str(args.gallery),
        "distractor_folders": [str(d) for d in args.distractors],
        "rule": "mean similarity to an LFW person with >= 2 images at or above the threshold",
        "threshold": threshold,
        "threshold_from": (
            f"LFW leave-one-out: the {1 - LOOKALIKE_RATE:.1%} quantile of each image's best "
            "mean similarity to another person (images of people with >= 3 images)"
        ),
        "lfw_images_scored": len(same),
        "lfw_same_person_reaching_threshold": float((same >= threshold).mean()),
        "lfw_other_person_reaching_threshold": float((other >= threshold).mean()),
        "distractors_scored": len(rows),
        "candidates": len(candidates),
        "candidates_by_folder": _by_folder(candidates),
        "sheets": sheets,
    }
    (args.out / "duplicates.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "sheets"}, indent=2))


def _by_folder(candidates: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in candidates:
        folder = Path(c["path"]).parent.name
        counts[folder] = counts.get(folder, 0) + 1
    return counts


def _tile(path: str) -> np.ndarray:
    image = cv2.imread(path)
    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA)


def _sheets(candidates: list[dict], out: Path) -> list[str]:
    """Contact sheets: a candidate (left, red frame) and photos of the person it resembles."""
    names = []
    for s in range(0, len(candidates), ROWS_PER_SHEET):
        rows = []
        for c in candidates[s : s + ROWS_PER_SHEET]:
            left = cv2.copyMakeBorder(_tile(c["path"]), 3, 3, 3, 3, cv2.BORDER_CONSTANT,
                                      value=(0, 0, 255))  # fmt: skip
            left = cv2.resize(left, (TILE, TILE))
            tiles = [left] + [_tile(p) for p in c["person_paths"]]
            tiles += [np.zeros((TILE, TILE, 3), np.uint8)] * (5 - len(tiles))
            row = np.hstack(tiles)
            caption = np.full((24, row.shape[1], 3), 255, np.uint8)
            text = f"{c['file'][:38]} ~ {c['person']} {c['mean_similarity']:.3f}"
            cv2.putText(caption, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
            rows.append(np.vstack([caption, row]))
        name = f"sheet-{s // ROWS_PER_SHEET + 1:02d}.png"
        cv2.imwrite(str(out / name), np.vstack(rows))
        names.append(name)
    return names


if __name__ == "__main__":
    main()
