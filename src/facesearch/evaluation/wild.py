"""The in-the-wild identification protocol: one enrolled photo per person, a few other
photos of each as probes, and at least 10,000 faces of other people as distractors.

This is how a user meets the search: a person is known from one photo, and photos
of them taken elsewhere are searched among many strangers. Two enrolment rules:

- `first`: the first photo (by file name) with a detected face is enrolled, the
  next `max_probes` are probes. Deterministic and unbiased by the model.
- `hard`: the photo of the highest face quality is enrolled and the `max_probes`
  photos of the lowest quality are probes (blur, small faces, turned heads).

Scores of a fusion are the mean of each model's z-scores against strangers (its
calibration's impostor mean and spread, fitted on LFW DevTrain), which ranks as a
dot product of concatenated, scaled vectors, so the same search code serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from . import identify as ident
from .embeddings import Embeddings
from .verify import fusion_scale

Enrolment = Literal["first", "hard"]
MIN_DISTRACTORS = 10_000


@dataclass(frozen=True)
class Lever:
    """How faces are scored: one model or a fusion, with or without test-time flip,
    with or without a minimum face quality for enrolment."""

    models: tuple[str, ...]
    flip: bool = False
    min_quality: float = 0.0

    @property
    def label(self) -> str:
        parts = [" + ".join(self.models)]
        if len(self.models) > 1:
            parts = ["fusion " + parts[0]]
        if self.flip:
            parts.append("flip")
        if self.min_quality:
            parts.append(f"enrol quality >= {self.min_quality:g}")
        return ", ".join(parts)

    @property
    def levers(self) -> list[str]:
        out = ["fusion"] if len(self.models) > 1 else []
        out += ["flip"] if self.flip else []
        out += [f"min_quality={self.min_quality:g}"] if self.min_quality else []
        return out or ["none"]


@dataclass
class Plan:
    """Rows (into the labelled embeddings) of the enrolled photo and probes."""

    gallery: np.ndarray  # (people,)
    probes: np.ndarray  # (probes,)
    mate: np.ndarray  # (probes,) index into gallery


def plan(
    labels: list[str], found: np.ndarray, quality: np.ndarray, enrolment: Enrolment,
    max_probes: int = 3,
) -> Plan:  # fmt: skip
    """Who is enrolled with which photo, and which photos search for them. Photos with
    no detected face are neither enrolled nor probes (the detector's misses are
    reported separately); people with fewer than two usable photos are left out."""
    by_person: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if found[i]:
            by_person.setdefault(label, []).append(i)
    gallery, probes, mate = [], [], []
    for name in sorted(by_person):
        rows = by_person[name]
        if len(rows) < 2:
            continue
        if enrolment == "first":
            enrolled, rest = rows[0], rows[1:]
        else:
            # Stable sort: among equal qualities the file order decides.
            ordered = sorted(rows, key=lambda r: -float(quality[r]))
            enrolled, rest = ordered[0], ordered[1:][::-1]
        chosen = rest[:max_probes] if max_probes else rest
        gallery.append(enrolled)
        probes.extend(chosen)
        mate.extend([len(gallery) - 1] * len(chosen))
    return Plan(np.array(gallery, np.int64), np.array(probes, np.int64), np.array(mate, np.int64))


def lever_vectors(
    embeddings: dict[str, Embeddings], lever: Lever
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(probe-side vectors, gallery-side vectors, found, quality) of every row for `lever`:
    for one model both sides are its unit vectors; for a fusion the probe side is
    scaled by each model's impostor spread, so a dot product is the summed z-score
    (up to a constant, which changes no ranking and no threshold's order)."""
    parts_probe, parts_gallery = [], []
    found: np.ndarray | None = None
    fused = len(lever.models) > 1
    for model in lever.models:
        e = embeddings[model]
        v = e.vectors(lever.flip)
        scale = 1.0
        if fused:
            _, std, _ = fusion_scale(e, lever.flip)
            scale = 1.0 / (std * len(lever.models))
        parts_probe.append(v * np.float32(scale))
        parts_gallery.append(v)
        found = e.found if found is None else found & e.found
    first = embeddings[lever.models[0]]
    assert found is not None
    return np.hstack(parts_probe), np.hstack(parts_gallery), found, first.quality


def offset(embeddings: dict[str, Embeddings], lever: Lever) -> float:
    """What to subtract from a fusion's dot product to get the mean z-score."""
    if len(lever.models) == 1:
        return 0.0
    means = [fusion_scale(embeddings[m], lever.flip) for m in lever.models]
    return float(sum(mean / std for mean, std, _ in means) / len(lever.models))


@dataclass
class Outcome:
    row: dict  # rank-1, rank-10, FNIR at FPIR, CMC (from identify.identify)
    det: tuple[np.ndarray, np.ndarray]
    top1_score: np.ndarray  # (probes,) best score of each mated search
    top1_correct: np.ndarray  # (probes,) bool: the best is the mate


def run(
    labelled: dict[str, Embeddings], labels: list[str], distractors: dict[str, Embeddings],
    lever: Lever, enrolment: Enrolment, max_probes: int = 3, distractor_count: int | None = None,
    left_out: np.ndarray | None = None, seed: int = 0,
) -> Outcome:  # fmt: skip
    """One protocol run. `left_out` marks distractor rows never to enrol (reviewed
    duplicates of gallery people); `distractor_count` draws that many (seeded)."""
    probe_side, gallery_side, found, quality = lever_vectors(labelled, lever)
    d_probe, d_gallery, d_found, d_quality = lever_vectors(distractors, lever)
    del d_probe
    usable = d_found & (d_quality >= lever.min_quality)
    if left_out is not None:
        usable &= ~left_out
    pool = d_gallery[usable]
    order = np.random.default_rng(seed).permutation(len(pool))
    if distractor_count is not None:
        order = order[:distractor_count]
    p = plan(labels, found, quality, enrolment, max_probes)
    if lever.min_quality:
        # Enrolment below the minimum is refused; such a person is searched for but
        # has no gallery photo of their own, so every one of their probes misses.
        keep = quality[p.gallery] >= lever.min_quality
        enrolled = np.flatnonzero(keep)
        remap = np.full(len(p.gallery), -1)
        remap[enrolled] = np.arange(len(enrolled))
        mated = keep[p.mate]
        missing = int((~mated).sum())
        unenrolled_probes = p.probes[~mated]
        p = Plan(p.gallery[enrolled], p.probes[mated], remap[p.mate[mated]])
    else:
        missing = 0
    split = ident.Split(
        gallery=gallery_side[p.gallery],
        probes=probe_side[p.probes],
        mate=p.mate,
        probe_found=np.ones(len(p.probes), bool),
        distractors=pool[order],
        people=len(p.gallery),
    )
    (row,) = ident.identify(split, [len(order)])
    det = row.pop("_det")
    top = np.full(len(p.probes), -np.inf)
    for start in range(0, len(split.distractors), ident.BLOCK):
        block = split.distractors[start : start + ident.BLOCK]
        top = np.maximum(top, (split.probes @ block.T).max(axis=1))
    gallery_scores = split.probes @ split.gallery.T
    best_gallery = gallery_scores.argmax(axis=1)
    top_gallery = gallery_scores.max(axis=1)
    # Ties count against the mate, as in identify.identify.
    correct = (best_gallery == split.mate) & (top_gallery > top)
    top = np.maximum(top, top_gallery) - offset(labelled, lever)
    if missing:
        row = _with_unenrolled(row, missing)
        # Their best result is always a wrong person; its score decides whether it is
        # shown as a strong lead.
        lost = probe_side[unenrolled_probes]
        lost_top = (lost @ split.gallery.T).max(axis=1) if len(split.gallery) else -np.inf
        for start in range(0, len(split.distractors), ident.BLOCK):
            block = split.distractors[start : start + ident.BLOCK]
            lost_top = np.maximum(lost_top, (lost @ block.T).max(axis=1))
        top = np.r_[top, lost_top - offset(labelled, lever)]
        correct = np.r_[correct, np.zeros(missing, bool)]
    row["identities"] = len(p.gallery)
    return Outcome(row, det, top, correct)


def _with_unenrolled(row: dict, missing: int) -> dict:
    """Counts probes of people whose enrolment photo was refused as misses at every rank."""
    n = row["probes"]
    total = n + missing
    share = n / total
    out = dict(row)
    out["probes"] = total
    out["probes_of_unenrolled_people"] = missing
    out["rank1"] = row["rank1"] * share
    out["rank10"] = row["rank10"] * share
    out["cmc"] = [c * share for c in row["cmc"]]
    out["fnir_at_fpir"] = {
        k: {**v, "fnir": 1 - (1 - v["fnir"]) * share} for k, v in row["fnir_at_fpir"].items()
    }
    return out


def strong_lead_precision(outcome: Outcome, threshold: float) -> tuple[float, int]:
    """Share of mated searches whose best result scores at least `threshold` that put the
    right person first, and how many such searches there were."""
    strong = outcome.top1_score >= threshold
    count = int(strong.sum())
    if not count:
        return float("nan"), 0
    return float(outcome.top1_correct[strong].mean()), count


def summary(outcome: Outcome, threshold: float | None) -> dict:
    row = outcome.row
    precision, strong = (
        strong_lead_precision(outcome, threshold) if threshold is not None else (None, 0)
    )
    return {
        "identities": row["identities"],
        "distractors": row["distractors"],
        "gallery_size": row["gallery_size"],
        "probes": row["probes"],
        "rank1": row["rank1"],
        "rank10": row["rank10"],
        "fnir_at_fpir_1e-2": row["fnir_at_fpir"]["0.01"]["fnir"],
        "fnir_at_fpir_1e-3": row["fnir_at_fpir"]["0.001"]["fnir"],
        "strong_lead_threshold": threshold,
        "strong_lead_precision": precision,
        "strong_leads": strong,
    }
