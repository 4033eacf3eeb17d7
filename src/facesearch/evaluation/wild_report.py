"""`facesearch eval identify --protocol wild`: the protocol of wild.py on given folders,
one report row per variant, with CMC and DET plots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import Settings
from . import calibration, plots, wild
from .embeddings import Embeddings
from .protocols import excluded_files, identities, image_files
from .report import file_digest, write_report

Embed = Callable[[list[Path], str], dict[str, Embeddings]]


def identify_wild(
    settings: Settings, models: list[str], flip: bool, gallery: Path, distractor_folders:
    list[Path], exclude: Path | None, enrolment: str, max_probes: int, min_quality: float,
    output: Path, use_cache: bool, embed: Embed,
) -> list[dict]:  # fmt: skip
    if enrolment not in ("first", "hard"):
        raise ValueError(f"unknown enrolment {enrolment!r}")
    people = identities(gallery)
    names = sorted(people)
    files = [p for n in names for p in people[n]]
    labels = [n for n in names for _ in people[n]]
    extra = [p for folder in distractor_folders for p in image_files(folder)]
    # People with one photo cannot be searched for: they are distractors.
    singles = {n for n in names if len(people[n]) == 1}
    pool = [p for n, p in zip(labels, files, strict=True) if n in singles] + extra
    clock = time.perf_counter()
    labelled = embed(files, "enrolled photos and probes")
    distractors = embed(pool, "distractors")
    seconds = time.perf_counter() - clock
    left_out = None
    if exclude is not None:
        out_names = excluded_files(exclude)
        left_out = np.array([p.name in out_names for p in pool], bool)
    levers = [wild.Lever((m,), flip, min_quality) for m in models]
    if len(models) > 1:
        levers.append(wild.Lever(tuple(models), flip, min_quality))
    rows, cmc, det = [], {}, {}
    for lever in levers:
        outcome = wild.run(labelled, labels, distractors, lever, enrolment,  # type: ignore[arg-type]
                           max_probes, left_out=left_out)  # fmt: skip
        cal = calibration.load(lever.models[0], flip) if len(lever.models) == 1 else None
        threshold = cal.thresholds["strong lead"] if cal else None
        row = {"variant": lever.label, **wild.summary(outcome, threshold),
               "strong_lead_calibrated_gallery": cal.gallery_size if cal else None}  # fmt: skip
        rows.append(row)
        cmc[lever.label] = np.array(outcome.row["cmc"])
        det[lever.label] = outcome.det
    pngs = [
        plots.cmc_plot(cmc, output / "identify-wild-cmc.png", "CMC, in the wild"),
        plots.det_plot(det, output / "identify-wild-det.png", "DET, in the wild (rank 1)"),
    ]
    body = {
        "protocol": f"wild: one enrolled photo ({enrolment}), up to {max_probes} probes each",
        "data": {
            "gallery": str(gallery), "distractor_folders": [str(d) for d in distractor_folders],
            "images": len(files) + len(pool),
            "excluded": {"list": str(exclude), "sha256": file_digest(exclude),
                         "distractors_left_out": int(left_out.sum())}
            if exclude and left_out is not None else None,
        },
        "embedding_seconds": round(seconds, 1),
        "embedding_cache": use_cache,
        "results": rows,
        "plots": [p.name for p in pngs],
    }  # fmt: skip
    write_report("identify-wild", body, settings, models, output / "identify-wild.json")
    return rows
