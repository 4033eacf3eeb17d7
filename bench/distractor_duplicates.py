"""Distractors that may be a gallery person: candidates and contact sheets for review.

UTKFace was collected from the web and holds photos of public figures who are also
LFW gallery people; LFW itself has a few people under two names. A search that ranks
such a photo above the probe's own gallery image is counted as an error although it
found the right person, and a search for someone "not enrolled" that finds their
UTKFace photo is counted as a false alarm. Two rules flag candidates; a person
decides, by looking at the photos, which are the same person:

1. the distractor's mean similarity to an LFW person with two or more images reaches
   a threshold read off LFW itself (facesearch.evaluation.duplicates): candidates.csv;
2. (with --reviewed, after the first review is applied) the distractor outscores a
   probe's own gallery image at rank 1: candidates-rank1.csv.

Each candidate is drawn beside photos of the person on contact sheets (written
outside the repository, --sheets: they are dataset images). The verdicts go into
bench/distractors/lfw-duplicates.csv; `facesearch eval identify --exclude` leaves
the rows with verdict `same` out of the distractors. With --reviewed the script also
writes control-hardest.txt: as many distractors as the review confirmed, those most
like a gallery person among the ones it did not confirm, to show what removing that
many hard distractors alone would do.

    PYTHONPATH=src python bench/distractor_duplicates.py \\
        --gallery ../shared/data/lfw/images_deepfunneled --distractors ../shared/data/utkface \\
        --reviewed bench/distractors/lfw-duplicates.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from facesearch.config import Settings
from facesearch.evaluation.duplicates import People, best_person, leave_one_out, people_means
from facesearch.evaluation.embeddings import embed_files
from facesearch.evaluation.protocols import excluded_files, identities, image_files

ROWS_PER_SHEET = 12
TILE = 128
# Share of LFW images whose best mean similarity to another person may reach the
# threshold: 1 in 1,000, a handful of look-alikes among ~14,000 distractors.
LOOKALIKE_RATE = 1e-3
OUT = Path("bench/results/eval/distractor-duplicates")
SHEETS = Path(tempfile.gettempdir()) / "facesearch-duplicate-sheets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=Path, required=True)
    parser.add_argument("--distractors", type=Path, action="append", default=[])
    parser.add_argument("--model", default="sface-2021dec")
    parser.add_argument("--reviewed", type=Path, help="The reviewed list (second pass).")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--sheets", type=Path, default=SHEETS, help="Folder for contact sheets.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.sheets.mkdir(parents=True, exist_ok=True)

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
    first = [_candidate(paths, people, enrolled, rows[k], who[k], score[k]) for k in flagged]
    _write(first, args.out / "candidates.csv", args.sheets / "mean-similarity")
    report = {
        "model": args.model,
        "gallery": str(args.gallery),
        "distractor_folders": [str(d) for d in args.distractors],
        "distractors_scored": len(rows),
        "rule_1": "mean similarity to an LFW person with >= 2 images at or above the threshold",
        "threshold": threshold,
        "threshold_from": (
            f"LFW leave-one-out: the {1 - LOOKALIKE_RATE:.1%} quantile of each image's best "
            "mean similarity to another person (images of people with >= 3 images)"
        ),
        "lfw_images_scored": len(same),
        "lfw_same_person_reaching_threshold": float((same >= threshold).mean()),
        "lfw_other_person_reaching_threshold": float((other >= threshold).mean()),
        "candidates_rule_1": len(first),
    }
    if args.reviewed:
        confirmed = excluded_files(args.reviewed)
        kept = np.array([paths[r].name not in confirmed for r in rows])
        second = _rank1_thieves(vectors, e.found, labelled, rows[kept])
        index = {name: k for k, name in enumerate(enrolled.names)}
        for c in second:
            row, k = c.pop("row"), index[c["probe_person"]]
            c.update(_candidate(paths, people, enrolled, row, k, enrolled.means[k] @ vectors[row]))
            # The probe it took rank 1 from first, then the person's other photos.
            c["shown"] = [
                c["probe"],
                *(str(p) for p in people[c["person"]] if str(p) != c["probe"]),
            ][:4]
        _write(second, args.out / "candidates-rank1.csv", args.sheets / "rank1")
        names = [paths[r].name for r in rows]
        hardest = [names[k] for k in np.argsort(-score) if names[k] not in confirmed]
        control = hardest[: len(confirmed)]
        (args.out / "control-hardest.txt").write_text(
            f"# The {len(control)} distractors most like a gallery person (mean similarity)\n"
            "# that the review did not confirm as that person: a control\n"
            + "".join(f"{name}\n" for name in control)
        )
        report |= {
            "rule_2": "outscores a probe's own gallery image at rank 1, once the distractors "
            f"confirmed in {args.reviewed.name} are left out",
            "candidates_rule_2": len(second),
            "reviewed_list": str(args.reviewed),
            "confirmed_same_person": len(confirmed),
        }
    (args.out / "duplicates.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"contact sheets: {args.sheets}")


def _candidate(
    paths: list[Path], people: dict, enrolled: People, row: int, person: int, score: float
) -> dict:
    name = enrolled.names[person]
    return {
        "file": paths[row].name,
        "person": name,
        "mean_similarity": round(float(score), 4),
        "person_images": int(enrolled.counts[person]),
        "path": str(paths[row]),
        "shown": [str(p) for p in people[name][:4]],
    }


def _rank1_thieves(
    vectors: np.ndarray, found: np.ndarray, labelled: list, distractor_rows: np.ndarray
) -> list[dict]:
    """Distractors that outscore a probe's own gallery image (and every other gallery
    person) in LFW's identification protocol: the first image of a person is enrolled."""
    rows_of: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(labelled):
        if found[i]:
            rows_of.setdefault(name, []).append(i)
    gallery = {name: rows[0] for name, rows in rows_of.items() if len(rows) >= 2}
    names = list(gallery)
    g = vectors[[gallery[name] for name in names]]
    probes = [(i, k) for k, name in enumerate(names) for i in rows_of[name][1:]]
    p = vectors[[i for i, _ in probes]]
    mate = np.array([k for _, k in probes])
    s = p @ g.T
    at = np.arange(len(p))
    mate_score = s[at, mate].copy()
    s[at, mate] = -np.inf
    d = p @ vectors[distractor_rows].T
    best, best_score = d.argmax(axis=1), d.max(axis=1)
    lost = (best_score >= mate_score) & (s.max(axis=1) < mate_score)
    found_by: dict[int, dict] = {}
    for q in np.flatnonzero(lost):
        row = int(distractor_rows[best[q]])
        c = found_by.setdefault(row, {"row": row, "probes_beaten": 0})
        c["probes_beaten"] += 1
        c["probe_person"] = names[mate[q]]  # a distractor beats one person's probes
        c["probe"] = str(labelled[probes[q][0]][1])
        c["probe_score"] = round(float(best_score[q]), 4)
        c["mate_score"] = round(float(mate_score[q]), 4)
    return sorted(found_by.values(), key=lambda c: (c["probe_person"], -c["probe_score"]))


def _write(candidates: list[dict], table: Path, sheets: Path) -> None:
    columns = ["file", "person", "mean_similarity", "person_images"]
    if candidates and "probe" in candidates[0]:
        columns += ["probe", "probe_score", "mate_score", "probes_beaten"]
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for c in candidates:
            writer.writerow([Path(c[k]).name if k == "probe" else c[k] for k in columns])
    sheets.mkdir(parents=True, exist_ok=True)
    # Sheets group each person's candidates together, which is how they are judged.
    by_person = sorted(candidates, key=lambda c: (c["person"], -c["mean_similarity"]))
    for s in range(0, len(by_person), ROWS_PER_SHEET):
        picture = np.vstack([_row(c) for c in by_person[s : s + ROWS_PER_SHEET]])
        cv2.imwrite(str(sheets / f"sheet-{s // ROWS_PER_SHEET + 1:02d}.png"), picture)


def _tile(path: str) -> np.ndarray:
    return cv2.resize(cv2.imread(path), (TILE, TILE), interpolation=cv2.INTER_AREA)


def _row(c: dict) -> np.ndarray:
    """A candidate (left, red frame) and photos of the person it may be."""
    left = cv2.copyMakeBorder(_tile(c["path"]), 3, 3, 3, 3, cv2.BORDER_CONSTANT,
                              value=(0, 0, 255))  # fmt: skip
    tiles = [cv2.resize(left, (TILE, TILE))] + [_tile(p) for p in c["shown"]]
    tiles += [np.zeros((TILE, TILE, 3), np.uint8)] * (5 - len(tiles))
    row = np.hstack(tiles)
    caption = np.full((24, row.shape[1], 3), 255, np.uint8)
    text = f"{c['file'][:38]} ~ {c['person']} {c['mean_similarity']:.3f}"
    cv2.putText(caption, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return np.vstack([caption, row])


if __name__ == "__main__":
    main()
