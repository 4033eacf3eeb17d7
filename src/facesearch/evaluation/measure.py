"""The evaluations `facesearch eval` runs, as functions bench scripts can call too.

Each one embeds what it needs through `embed` (the command line passes one that
shows progress; `embedder` makes a quiet one), measures, writes its JSON report
and plots under `output`, and returns what was measured for the caller to show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import FacesearchError
from ..models.registry import get as get_model
from . import calibration as calib
from . import demographics as demo
from . import identify as ident
from . import plots
from .embeddings import Embeddings, embed_files
from .protocols import Pairs, excluded_files, identities, image_files, read_pairs
from .report import file_digest, write_report
from .verify import Variant, quality_effect, quality_effect_all_pairs, verify

# (image files, recognisers, what they are for a progress line) -> embeddings per recogniser
Embed = Callable[[list[Path], list[str], str], dict[str, Embeddings]]


def embedder(settings: Settings, mirrored: bool, use_cache: bool = True) -> Embed:
    """An `Embed` without progress output (for scripts)."""
    return lambda files, models, what: embed_files(
        files, settings, models, None, mirrored, use_cache
    )


def recognisers(settings: Settings, models: list[str] | None) -> list[str]:
    """The recognisers to measure: `models`, or the configured one."""
    names = models or [settings.embedder]
    for name in names:
        if get_model(name).task != "embed":
            raise FacesearchError(f"{name} is not a recogniser")
    return names


def variants(models: list[str], flip: bool) -> list[Variant]:
    found = [Variant((m,)) for m in models]
    if flip:
        found += [Variant((m,), True) for m in models]
    if len(models) > 1:
        found.append(Variant(tuple(models)))
        if flip:
            found.append(Variant(tuple(models), True))
    return found


def first_per_fold(pairs: Pairs, per_fold: int | None) -> Pairs:
    """The first `per_fold` matched and mismatched pairs of every fold."""
    if not per_fold:
        return pairs
    keep: list[int] = []
    seen: dict[tuple[int, bool], int] = {}
    for i, (fold, same) in enumerate(zip(pairs.folds, pairs.same, strict=True)):
        if seen.get((fold, same), 0) < per_fold:
            seen[(fold, same)] = seen.get((fold, same), 0) + 1
            keep.append(i)
    return Pairs(
        [pairs.first[i] for i in keep],
        [pairs.second[i] for i in keep],
        [pairs.same[i] for i in keep],
        [pairs.folds[i] for i in keep],
    )


@dataclass(frozen=True)
class Measured:
    """What an evaluation found: report rows, the JSON report and the plots written."""

    rows: list[dict]
    report: Path
    plots: list[Path]
    size: int = 0  # pairs used (verification) or people enrolled (identification)


def verification(
    settings: Settings, embed: Embed, pairs_file: Path, images: Path | None,
    models: list[str], flip: bool, per_fold: int | None, output: Path,
) -> Measured:  # fmt: skip
    """Pair verification: 10-fold accuracy, ROC AUC, TAR at FAR, EER and a ROC plot."""
    pairs = first_per_fold(read_pairs(pairs_file, images), per_fold)
    embeddings = embed(pairs.files, models, "pairs")
    results = [verify(pairs, embeddings, v) for v in variants(models, flip)]
    png = plots.roc_plot(
        {r["variant"]: r.pop("_curve") for r in results},
        output / "verify-roc.png",
        f"ROC, {pairs_file.name}",
    )
    cal = calib.load(models[0], False)
    if cal is not None:
        # What leaving out low-quality faces does at the "possible lead" threshold.
        quality = quality_effect(
            pairs, embeddings, Variant((models[0],)), cal.thresholds["possible lead"]
        )
        quality_all = quality_effect_all_pairs(embeddings[models[0]], False, cal.thresholds)
    else:
        quality = quality_all = None
    for r in results:
        r.pop("_scores")
    body = {
        "data": {
            "pairs": str(pairs_file),
            "pairs_sha256": file_digest(pairs_file),
            "pairs_used": len(pairs),
            "per_fold": per_fold,
            "images": len(pairs.files),
        },
        "results": results,
        "quality_effect_at_possible_lead": quality,
        "quality_effect_all_impostor_pairs": quality_all,
        "plots": [png.name],
    }
    path = write_report("verify", body, settings, models, output / "verify.json")
    return Measured(results, path, [png], len(pairs))


def identification(
    settings: Settings, embed: Embed, gallery: Path, distractors: list[Path], counts: str,
    models: list[str], flip: bool, min_quality: float, exclude: Path | None, output: Path,
) -> Measured:  # fmt: skip
    """Closed-set rank-1/rank-10 and open-set FNIR at FPIR as distractors are added to
    the gallery (the first image of each person enrolled); CMC and DET plots."""
    people = identities(gallery)
    labelled = [(name, p) for name, files in people.items() for p in files]
    extra = [p for folder in distractors for p in image_files(folder)]
    all_paths = [p for _, p in labelled] + extra
    embeddings = embed(all_paths, models, "gallery, probes and distractors")
    wanted = [10**9 if c.strip() == "all" else int(c) for c in counts.split(",")]
    # Only distractors are left out: a gallery person's own images stay.
    names = excluded_files(exclude) if exclude else set()
    multi = {name for name, files in people.items() if len(files) > 1}
    left_out = np.array([p.name in names and not (i < len(labelled) and labelled[i][0] in multi)
                         for i, p in enumerate(all_paths)], bool)  # fmt: skip
    report_rows, cmc_curves, det_curves = [], {}, {}
    enrolled = 0
    for variant in [Variant((m,), flip) for m in models]:
        e = embeddings[variant.models[0]]
        vectors = e.vectors(variant.flip)
        n = len(labelled)
        enrollable = e.found & (e.quality >= min_quality) & ~left_out
        extra_rows = np.flatnonzero(enrollable[n:]) + n
        data = ident.split(
            vectors[:n],
            e.found[:n],
            [name for name, _ in labelled],
            vectors[extra_rows],
            enrollable=enrollable[:n],
        )
        enrolled = data.people
        for row in ident.identify(data, wanted):
            label = f"{variant.label}, {row['distractors']:,} distractors"
            cmc_curves[label] = np.array(row["cmc"])
            det_curves[label] = row.pop("_det")
            report_rows.append({"variant": variant.label, **row})
    pngs = [
        plots.cmc_plot(cmc_curves, output / "identify-cmc.png", "CMC, closed set"),
        plots.det_plot(det_curves, output / "identify-det.png", "DET, open set (rank 1)"),
    ]
    body = {
        "data": {
            "gallery": str(gallery),
            "distractor_folders": [str(d) for d in distractors],
            "people": len(people),
            "min_quality": min_quality,
            "images": len(all_paths),
            "excluded": {
                "list": str(exclude),
                "sha256": file_digest(exclude),
                "distractors_left_out": int(left_out.sum()),
            }
            if exclude
            else None,
        },
        "results": report_rows,
        "plots": [p.name for p in pngs],
    }
    path = write_report("identify", body, settings, models, output / "identify.json")
    return Measured(report_rows, path, pngs, enrolled)


@dataclass(frozen=True)
class GroupRates:
    """False match rates per demographic group at the calibrated band thresholds."""

    thresholds: dict[str, float]
    by: dict[str, dict]  # "gender" and "race": groups and the worst-to-best ratio
    report: Path


def demographics(
    settings: Settings, embed: Embed, images: Path, model: str, flip: bool,
    min_quality: float, ages: str | None, output: Path,
) -> GroupRates:  # fmt: skip
    """False match rate per gender and race group on UTKFace impostor pairs."""
    cal = calib.load(model, flip)
    if cal is None:
        raise FacesearchError(
            f"{model}{' with flip' if flip else ''} has no calibration; "
            "run facesearch eval calibrate first"
        )
    files = image_files(images)
    labelled = [(p, demo.utkface_labels(p)) for p in files]
    low, high = age_range(ages)
    kept = [(p, lab) for p, lab in labelled if lab is not None and low <= lab["age"] <= high]
    if not kept:
        raise FacesearchError(f"no file in {images} is named like UTKFace (age_gender_race_…)")
    e = embed([p for p, _ in kept], [model], "faces")[model]
    ok = e.found & (e.quality >= min_quality)
    vectors = e.vectors(flip)
    genders = np.array([lab["gender"] for _, lab in kept])
    races = np.array([lab["race"] for _, lab in kept])
    thresholds = {band: cal.thresholds[band] for band, _ in calib.BANDS}
    by_gender = demo.group_rates(
        vectors, {g: ok & (genders == g) for g in demo.GENDERS.values()}, thresholds
    )
    by_race = demo.group_rates(
        vectors, {r: ok & (races == r) for r in demo.RACES.values()}, thresholds
    )
    body = {
        "data": {
            "images": str(images),
            "files": len(files),
            "labelled": len(kept),
            "faces_used": int(ok.sum()),
            "min_quality": min_quality,
            "ages": [low, high],
        },
        "thresholds": thresholds,
        "calibration": {"model": cal.model, "flip": cal.flip, "data": cal.meta.get("data")},
        "gender": by_gender,
        "race": by_race,
    }
    path = write_report("demographics", body, settings, [model], output / "demographics.json")
    return GroupRates(thresholds, {"gender": by_gender, "race": by_race}, path)


def age_range(ages: str | None) -> tuple[int, int]:
    if not ages:
        return 0, 1000
    try:
        low, high = (int(v) for v in ages.split("-"))
    except ValueError:
        raise FacesearchError(f"--ages {ages!r}: expected two ages like 18-60") from None
    return low, high


def calibrate(
    embed: Embed, pairs_file: Path, images: Path | None, model: str, flip: bool, output: Path
) -> tuple[calib.Calibration, Path]:
    """Fit score -> estimated false match rate and the band thresholds on every pair of
    images of two different people in a development list; saved under `output`."""
    pairs = read_pairs(pairs_file, images)
    files = pairs.files
    e = embed(files, [model], "development images")[model]
    keep = np.flatnonzero(e.found)
    vectors = e.vectors(flip)[keep]
    people = np.array([files[i].parent.name for i in keep])
    impostor, genuine = all_pair_scores(vectors, people)
    data = (
        f"{pairs_file.name}: all {len(impostor):,} pairs of images of two different people "
        f"and {len(genuine):,} of the same person, among {len(keep):,} images of "
        f"{len(set(people)):,} people"
    )
    fitted = calib.fit(model, get_model(model).version, flip, impostor, genuine, data)
    return fitted, calib.save(fitted, output)


def all_pair_scores(vectors: np.ndarray, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every unordered pair of rows, split into different and same person."""
    impostor, genuine = [], []
    for start in range(0, len(vectors), 1024):
        s = vectors[start : start + 1024] @ vectors[start:].T
        rows = np.arange(len(s))[:, None]
        upper = np.arange(s.shape[1])[None, :] > rows
        same = people[start : start + 1024, None] == people[None, start:]
        impostor.append(s[upper & ~same])
        genuine.append(s[upper & same])
    return np.concatenate(impostor), np.concatenate(genuine)
