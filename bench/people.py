"""People benchmark: clustering faces into persons, against the true identities, and its cost.

1. Quality. LFW (all 13,233 images), AT&T (ORL) and wild (identities joined from
   the "Yes" pairs of master.csv and face-recognition-pivot.csv; photos in no pair
   are persons of their own, which may under-count wild's true matches). One face
   per image (the one nearest the centre, as the evaluation does). Every algorithm
   of people/cluster.py at each edge threshold, full and incremental (faces
   arriving in random batches of 500, as ingest commits them): pairwise precision
   and recall, BCubed F1, persons against true persons, the share left unassigned.
   The configured default (FACESEARCH_PEOPLE__…) is the row reported per dataset.
2. Search by person against single-photo search on LFW: for people with 4+
   images, one photo's ranking against the ranking by all of a person's other
   photos (max, and mean of the top 3), counting true matches in the top 20.
3. Cost. Synthetic face-like vectors (bench/index.py's model fitted to LFW) at
   each size: a full clustering's seconds and peak RSS, and the incremental cost
   of 1,000 new faces at that size.

Embeddings are computed once and cached (evaluation/embeddings.py) in --cache-dir
(default: a folder in the temporary directory; models are linked from the usual
cache). From the repo root:

    nice -n 10 python bench/people.py                   # quality + search, default sizes
    nice -n 10 python bench/people.py --sizes 100000 1000000

Results: bench/results/people.json and people.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from facesearch.config import PeopleSettings, Settings
from facesearch.evaluation.embeddings import embed_files
from facesearch.models.registry import get as get_model
from facesearch.people.cluster import (
    EXACT_LIMIT,
    Faces,
    Params,
    assign,
    build_index,
    cluster,
    incremental,
)
from facesearch.people.metrics import scores
from facesearch.people.search import person_scores
from facesearch.people.service import params_for, score_at

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DATA = Path(os.environ.get("FACESEARCH_DATA", REPO.parent / "shared" / "data"))
Row = dict[str, Any]
FMRS = (1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
KEPT: dict[str, list[Path]] = {}  # per dataset, the images a face was found in


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# datasets


def wild_labels(folder: Path, paths: list[Path]) -> list[str]:
    parent = {p.name: p.name for p in paths}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    for name in ("master.csv", "face-recognition-pivot.csv"):
        for row in csv.DictReader((folder / name).open()):
            row = {k.lower(): v for k, v in row.items()}
            x, y = Path(row["file_x"]).name, Path(row["file_y"]).name
            if row["decision"].strip().lower() == "yes" and x in parent and y in parent:
                parent[find(x)] = find(y)
    return [find(p.name) for p in paths]


def wild_pair_check(labels: np.ndarray, paths: list[Path], truth: np.ndarray) -> Row:
    """Wild's labels are pairs: of the grouped pairs that count against precision, how
    many are labelled "No" (a real error) and how many are labelled neither way."""
    no = set()
    for name in ("master.csv", "face-recognition-pivot.csv"):
        for row in csv.DictReader((DATA / "wild" / name).open()):
            row = {k.lower(): v for k, v in row.items()}
            if row["decision"].strip().lower() == "no":
                no.add(frozenset((Path(row["file_x"]).name, Path(row["file_y"]).name)))
    labelled_no = unlabelled = 0
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] >= 0 and labels[i] == labels[j] and truth[i] != truth[j]:
                if frozenset((paths[i].name, paths[j].name)) in no:
                    labelled_no += 1
                else:
                    unlabelled += 1
    return {"grouped_pairs_labelled_no": labelled_no, "grouped_pairs_unlabelled": unlabelled}


def dataset(name: str, limit: int | None = None) -> tuple[list[Path], list[str]]:
    if name == "lfw":
        paths = sorted((DATA / "lfw" / "images_deepfunneled").glob("*/*.jpg"))[:limit]
        return paths, [p.parent.name for p in paths]
    if name == "att_orl":
        paths = sorted((DATA / "att_orl").glob("s*/*.pgm"))
        return paths, [p.parent.name for p in paths]
    paths = sorted((DATA / "wild").glob("*.jpg"))
    return paths, wild_labels(DATA / "wild", paths)


def embeddings(
    name: str, model: str, cache_dir: Path, limit: int | None
) -> tuple[Faces, np.ndarray]:
    paths, labels = dataset(name, limit)
    models = cache_dir / "models"
    if not models.exists():
        models.parent.mkdir(parents=True, exist_ok=True)
        models.symlink_to(Settings().models_dir)
    settings = Settings(cache_dir=cache_dir, workers=1)
    started = time.perf_counter()
    got = embed_files(paths, settings, [model], mirrored=False)[model]
    log(f"{name}: {len(paths)} images embedded by {model} in {time.perf_counter() - started:.0f}s")
    keep = got.found
    KEPT[name] = [p for p, ok in zip(paths, keep.tolist(), strict=True) if ok]
    faces = Faces(got.plain[keep], np.arange(int(keep.sum())), got.quality[keep])
    return faces, np.array(labels)[keep]


# quality


def sweep(faces: Faces, truth: np.ndarray, base: Params, thresholds: list[float]) -> list[Row]:
    rows = []
    for algorithm in ("linkage", "components", "whispers", "core"):
        for threshold in thresholds:
            params = Params(
                threshold,
                threshold + (base.centroid_threshold - base.threshold),
                base.k,
                base.min_faces,
                base.quality_floor,
                algorithm,
            )
            started = time.perf_counter()
            labels = cluster(faces, params)
            row = {
                "algorithm": algorithm,
                "mode": "full",
                "threshold": round(threshold, 4),
                **scores(labels, truth),
                "seconds": time.perf_counter() - started,
            }
            rows.append(row)
            log(_line(row))
    return rows


def _line(row: Row) -> str:
    return (
        f"{row['algorithm']:10s} {row['mode']:11s} t={row['threshold']:.3f} "
        f"F1={row['bcubed_f1']:.4f} PP={row['pairwise_precision']:.4f} "
        f"PR={row['pairwise_recall']:.4f} persons={row['persons']}/{row['true_persons']} "
        f"unassigned={row['unassigned_share']:.3f}"
    )


def incremental_row(faces: Faces, truth: np.ndarray, params: Params, batch: int = 500) -> Row:
    order = np.random.default_rng(0).permutation(len(faces))
    started = time.perf_counter()
    labels = incremental(faces, params, batch, order)
    row = {
        "algorithm": params.algorithm,
        "mode": "incremental",
        "batch": batch,
        "threshold": round(params.threshold, 4),
        **scores(labels, truth),
        "seconds": time.perf_counter() - started,
    }
    log(_line(row))
    return row


def quality(
    names: list[str], model: str, cache_dir: Path, limit: int | None
) -> tuple[list[Row], list[Row], dict]:
    spec = get_model(model)
    people = PeopleSettings()
    base = params_for(spec, people)
    log(
        f"{model}: edge threshold {base.threshold:.4f} (FMR {people.edge_fmr:g}), centroid "
        f"{base.centroid_threshold:.4f}, quality floor {base.quality_floor}"
    )
    headline, detail = [], []
    vectors = {}
    for name in names:
        faces, truth = embeddings(name, model, cache_dir, limit if name == "lfw" else None)
        vectors[name] = (faces, truth)
        # The edge threshold at false match rates 1e-4 … 1e-6 of the model's calibration.
        thresholds = sorted(
            {round(score_at(spec, fmr, base.threshold), 4) for fmr in FMRS}
            | {round(base.threshold, 4)}
        )
        rows = sweep(faces, truth, base, thresholds)
        rows.append(incremental_row(faces, truth, base))
        for r in rows:
            r.update(dataset=name, model=model)
        detail += rows
        default = next(
            r
            for r in rows
            if r["mode"] == "full"
            and r["algorithm"] == base.algorithm
            and abs(r["threshold"] - round(base.threshold, 4)) < 1e-9
        )
        inc = rows[-1]
        extra: Row = {}
        if name == "wild":
            extra = wild_pair_check(cluster(faces, base), KEPT[name], truth)
        headline.append(
            {
                "dataset": name if limit is None or name != "lfw" else f"lfw[:{limit}]",
                "model": model,
                "algorithm": base.algorithm,
                "threshold": round(base.threshold, 4),
                "faces": default["faces"],
                "bcubed_f1": default["bcubed_f1"],
                "pairwise_precision": default["pairwise_precision"],
                "pairwise_recall": default["pairwise_recall"],
                "persons": default["persons"],
                "true_persons": default["true_persons"],
                "unassigned_share": default["unassigned_share"],
                **extra,
                "incremental": {
                    k: inc[k]
                    for k in (
                        "bcubed_f1",
                        "pairwise_precision",
                        "pairwise_recall",
                        "persons",
                        "unassigned_share",
                    )
                },
            }
        )
    return headline, detail, vectors


# search by person


def search_by_person(faces: Faces, truth: np.ndarray, top: int = 20, probes: int = 600) -> Row:
    """For persons with 4+ faces, half their faces (at least 2) are known and the rest
    are the true matches to find: how many of those are in the top `top` when ranking
    by one known photo, by the max over all known photos, by the mean of the top 3."""
    _, inverse, counts = np.unique(truth, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(0)
    chosen = rng.permutation(np.flatnonzero(counts >= 4))[:probes]
    totals = {"single": 0, "max": 0, "mean_top3": 0}
    possible = 0
    for person in chosen.tolist():
        rows = rng.permutation(np.flatnonzero(inverse == person))
        known = rows[: max(2, len(rows) // 2)]
        wanted = set(rows[len(known) :].tolist())
        possible += min(len(wanted), top)
        exclude = set(known.tolist())
        sims = faces.vectors @ faces.vectors[known].T  # (n, m)
        for how in totals:
            score = sims[:, 0] if how == "single" else person_scores(sims, how)
            score = score.copy()
            score[list(exclude)] = -np.inf
            best = np.argsort(-score)[:top]
            totals[how] += len(wanted & set(best.tolist()))
    return {
        "persons": len(chosen),
        "top": top,
        "true_matches_possible": possible,
        **{f"found_{how}": n for how, n in totals.items()},
        **{f"recall_{how}": n / possible for how, n in totals.items()},
    }


# cost


def cost(sizes: list[int], faces: Faces, truth: np.ndarray, params: Params) -> list[Row]:
    from index import FaceLikeVectors

    model = FaceLikeVectors(faces.vectors, truth)
    rows = []
    for size in sizes:
        identities = max(1, size // 10)
        vectors, who = model.sample_labelled(size, identities, seed=size)
        synthetic = Faces(vectors, np.arange(size), None)
        log(f"synthetic {size}: clustering")
        before = peak_rss_mb()
        started = time.perf_counter()
        labels = cluster(synthetic, params)
        full = time.perf_counter() - started
        peak = peak_rss_mb()
        found = scores(labels, who)
        # 1,000 new faces of the same population against all of them, clustered.
        arriving = np.random.default_rng(1).integers(0, identities, 1000)
        new_vectors = model.faces(model.centres(identities, size), arriving, seed=size + 99)
        new = Faces(new_vectors, np.arange(size, size + 1000), None)
        # Ingest keeps the neighbour index between batches: built once, then searched.
        started = time.perf_counter()
        index = build_index(vectors)
        index_seconds = time.perf_counter() - started
        started = time.perf_counter()
        assign(synthetic, labels, new, params, index=index)
        step = (time.perf_counter() - started) * 1000
        row = {
            "faces": size,
            "full_seconds": full,
            "peak_rss_mb": peak,
            "rss_before_mb": before,
            "incremental_ms_per_1000": step,
            "neighbours": "exact" if size <= EXACT_LIMIT else "IVF",
            "index_build_seconds": index_seconds,
            "bcubed_f1": found["bcubed_f1"],
            "pairwise_precision": found["pairwise_precision"],
        }
        log(f"synthetic {size}: {row}")
        rows.append(row)
    return rows


def write_markdown(result: Row, path: Path) -> None:
    lines = [
        "# People: clustering faces into persons",
        "",
        f"{result['when']}, {result['machine']}, commit {result['commit']}.",
        "",
        "| dataset | model | faces | BCubed F1 | pairwise P | pairwise R | persons | true "
        "| unassigned | incremental F1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["datasets"]:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['faces']} | {r['bcubed_f1']:.4f} | "
            f"{r['pairwise_precision']:.4f} | {r['pairwise_recall']:.4f} | {r['persons']} | "
            f"{r['true_persons']} | {r['unassigned_share']:.3f} | "
            f"{r['incremental']['bcubed_f1']:.4f} |"
        )
    lines += [
        "",
        "## Every algorithm and threshold",
        "",
        "| dataset | model | algorithm | mode | threshold | BCubed F1 | pairwise P | "
        "pairwise R | persons | unassigned |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["sweep"]:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['algorithm']} | {r['mode']} | "
            f"{r['threshold']:.3f} | {r['bcubed_f1']:.4f} | {r['pairwise_precision']:.4f} | "
            f"{r['pairwise_recall']:.4f} | {r['persons']}/{r['true_persons']} | "
            f"{r['unassigned_share']:.3f} |"
        )
    if result.get("search_by_person"):
        s = result["search_by_person"]
        lines += [
            "",
            "## Search by person (LFW)",
            "",
            f"{s['persons']} persons with 4+ photos; half their photos known, the rest to "
            f"find in the top {s['top']} of all {result['datasets'][0]['faces']} faces.",
            "",
            "| ranking | true matches found | recall |",
            "|---|---|---|",
        ]
        for how in ("single", "max", "mean_top3"):
            lines.append(
                f"| {how} | {s[f'found_{how}']} / {s['true_matches_possible']} | "
                f"{s[f'recall_{how}']:.4f} |"
            )
    if result.get("scale"):
        lines += [
            "",
            "## Cost (synthetic, face-like)",
            "",
            "| faces | full clustering s | peak RSS MB | incremental ms / 1,000 |",
            "|---|---|---|---|",
        ]
        for r in result["scale"]:
            lines.append(
                f"| {r['faces']} | {r['full_seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                f"{r['incremental_ms_per_1000']:.0f} |"
            )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["lfw", "att_orl", "wild"])
    parser.add_argument("--models", nargs="+", default=["sface-2021dec"])
    parser.add_argument("--lfw-limit", type=int, default=None, help="first N LFW images only")
    parser.add_argument("--sizes", nargs="*", type=int, default=[20000, 50000, 100000])
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "facesearch-people-bench"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "people.json")
    parser.add_argument(
        "--scale-only",
        action="store_true",
        help="measure only the cost, keeping the quality figures of --out",
    )
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    result: Row = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": commit,
        "datasets": [],
        "sweep": [],
    }
    first_vectors = None
    if args.scale_only:
        kept = json.loads(args.out.read_text())
        result.update({k: v for k, v in kept.items() if k not in ("scale", "scale_headline")})
        model = args.models[0]
        faces, truth = embeddings("lfw", model, args.cache_dir, args.lfw_limit)
        first_vectors = (model, faces, truth)
    for model in [] if args.scale_only else args.models:
        headline, detail, vectors = quality(args.datasets, model, args.cache_dir, args.lfw_limit)
        result["datasets"] += headline
        result["sweep"] += detail
        if first_vectors is None and "lfw" in vectors:
            first_vectors = (model, *vectors["lfw"])
    if first_vectors is not None:
        model, faces, truth = first_vectors
        if not args.scale_only:
            result["search_by_person"] = {"model": model, **search_by_person(faces, truth)}
            log(f"search by person: {result['search_by_person']}")
        if args.sizes:
            params = params_for(get_model(model), PeopleSettings())
            result["scale"] = cost(args.sizes, faces, truth, params)
            biggest = result["scale"][-1]
            result["scale_headline"] = {
                k: biggest[k]
                for k in ("faces", "full_seconds", "peak_rss_mb", "incremental_ms_per_1000")
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
