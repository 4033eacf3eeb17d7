"""1:1 verification on labelled pairs: k-fold accuracy, ROC, TAR at FAR, EER."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import calibration, metrics
from .embeddings import Embeddings
from .protocols import Pairs

FARS = (1e-2, 1e-3)
# A pair where either face was not detected gets this score: it counts as a
# "different people" decision, as an operator would see it.
NO_FACE = -1.0


@dataclass(frozen=True)
class Variant:
    """How a pair is scored: one model, or a fusion of several; with or without flip."""

    models: tuple[str, ...]
    flip: bool = False

    @property
    def label(self) -> str:
        return " + ".join(self.models) + (" (flip)" if self.flip else "")


def pair_scores(
    pairs: Pairs, embeddings: dict[str, Embeddings], variant: Variant
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each pair and whether both faces were found. A fusion of
    several models is the mean of their z-normalised scores (see `fusion_scale`)."""
    total = np.zeros(len(pairs))
    both = np.ones(len(pairs), bool)
    fused = len(variant.models) > 1
    for model in variant.models:
        e = embeddings[model]
        row = {p: i for i, p in enumerate(e.paths)}
        a = np.array([row[p] for p in pairs.first])
        b = np.array([row[p] for p in pairs.second])
        vectors = e.vectors(variant.flip)
        scores = np.einsum("ij,ij->i", vectors[a], vectors[b])
        if fused:
            mean, std, _ = fusion_scale(e, variant.flip)
            scores = (scores - mean) / std
        total += scores
        both &= e.found[a] & e.found[b]
    scores = total / len(variant.models)
    return np.where(both, scores, NO_FACE), both


def fusion_scale(e: Embeddings, flip: bool) -> tuple[float, float, str]:
    """Mean and spread of a model's scores between strangers, and where they come from:
    the model's calibration on development data (LFW DevTrain) where it records them,
    so that no figure of the evaluated pairs shapes the fusion; else `impostor_stats`."""
    cal = calibration.load(e.model, flip)
    if cal is not None and "impostor_mean" in cal.meta:
        data = str(cal.meta.get("data", "")).split(":")[0]
        return float(cal.meta["impostor_mean"]), float(cal.meta["impostor_std"]), data
    mean, std = impostor_stats(e, flip)
    return mean, std, "pairs of different people among the evaluated images"


def impostor_stats(e: Embeddings, flip: bool, samples: int = 200_000) -> tuple[float, float]:
    """Mean and spread of a model's scores between images of two different people
    (folder = person), from a seeded sample of such pairs among the evaluated images.
    Models' raw cosines live on different scales (dlib's strangers score about 0.8,
    SFace's about 0.1), so a fusion puts them on one scale first."""
    rows = np.flatnonzero(e.found)
    people = np.array([e.paths[i].parent.name for i in rows])
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(rows), samples), rng.integers(0, len(rows), samples)
    keep = people[a] != people[b]
    vectors = e.vectors(flip)
    scores = np.einsum("ij,ij->i", vectors[rows[a[keep]]], vectors[rows[b[keep]]])
    return float(scores.mean()), float(scores.std())


def verify(pairs: Pairs, embeddings: dict[str, Embeddings], variant: Variant) -> dict:
    scores, found = pair_scores(pairs, embeddings, variant)
    same = np.array(pairs.same)
    folds = np.array(pairs.folds)
    curve = metrics.roc(scores, same)
    result: dict = {
        "variant": variant.label,
        "pairs": len(pairs),
        "matched_pairs": int(same.sum()),
        "pairs_without_a_face": int((~found).sum()),
    }
    if len(np.unique(folds)) > 1:
        k = metrics.kfold_accuracy(scores, same, folds)
        result["kfold"] = {
            "folds": len(k.per_fold),
            "accuracy_mean": k.mean,
            "accuracy_std": k.std,
            "accuracy_standard_error": k.standard_error,
            "per_fold": k.per_fold,
            "thresholds": k.thresholds,
        }
    else:
        t = metrics.best_threshold(scores, same)
        result["best_threshold"] = {"threshold": t, "accuracy": metrics.accuracy(scores, same, t)}
    result["auc"] = metrics.auc(curve)
    result["eer"] = metrics.eer(curve)
    result["tar_at_far"] = {}
    for far in FARS:
        tar, threshold = metrics.tar_at_far(curve, far)
        result["tar_at_far"][f"{far:g}"] = {"tar": tar, "threshold": threshold}
    if len(variant.models) > 1:
        result["fusion_scale"] = {}
        for model in variant.models:
            mean, std, source = fusion_scale(embeddings[model], variant.flip)
            result["fusion_scale"][model] = {"mean": mean, "std": std, "from": source}
    result["_curve"] = (curve.fpr, curve.tpr)
    result["_scores"] = scores
    return result


def quality_effect(
    pairs: Pairs,
    embeddings: dict[str, Embeddings],
    variant: Variant,
    threshold: float,
    minimums: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8),
) -> list[dict]:
    """False match and non-match rates at `threshold` when pairs with a face below each
    quality minimum are left out (the lower of the two faces' quality decides)."""
    scores, _ = pair_scores(pairs, embeddings, variant)
    same = np.array(pairs.same)
    quality = np.ones(len(pairs))
    for model in variant.models:
        e = embeddings[model]
        row = {p: i for i, p in enumerate(e.paths)}
        qa = e.quality[[row[p] for p in pairs.first]]
        qb = e.quality[[row[p] for p in pairs.second]]
        quality = np.minimum(quality, np.minimum(qa, qb))
    out = []
    for minimum in minimums:
        keep = quality >= minimum
        genuine, impostor = scores[keep & same], scores[keep & ~same]
        out.append({
            "min_quality": minimum,
            "pairs_kept": int(keep.sum()),
            "share_kept": float(keep.mean()),
            "false_match_rate": metrics.false_match_rate(impostor, threshold),
            "false_matches": int((impostor >= threshold).sum()),
            "false_non_match_rate": float((genuine < threshold).mean()) if len(genuine) else None,
        })  # fmt: skip
    return out


def quality_effect_all_pairs(
    e: Embeddings,
    flip: bool,
    thresholds: dict[str, float],
    minimums: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9),
    block: int = 1024,
) -> list[dict]:
    """False match rates over every pair of images of two different people (folder =
    person) among the evaluated images, when faces below each quality minimum are left
    out. A pair list's few thousand impostor pairs cannot show a rate of 1e-4; all
    pairs of its images (millions) can."""
    rows = np.flatnonzero(e.found)
    vectors = e.vectors(flip)[rows]
    quality = e.quality[rows]
    people = np.unique([e.paths[i].parent.name for i in rows], return_inverse=True)[1]
    names = list(thresholds)
    cuts = np.array([thresholds[n] for n in names])
    pairs = np.zeros(len(minimums), np.int64)
    above = np.zeros((len(minimums), len(names)), np.int64)
    for start in range(0, len(rows), block):
        s = vectors[start : start + block] @ vectors[start:].T
        upper = np.arange(s.shape[1])[None, :] > np.arange(len(s))[:, None]
        different = people[start : start + block, None] != people[None, start:]
        worse = np.minimum(quality[start : start + block, None], quality[None, start:])
        keep = upper & different
        s, worse = s[keep], worse[keep]
        for k, minimum in enumerate(minimums):
            kept = s[worse >= minimum]
            pairs[k] += len(kept)
            above[k] += (kept[:, None] >= cuts[None, :]).sum(axis=0)
    return [
        {
            "min_quality": minimum,
            "images_kept": int((quality >= minimum).sum()),
            "impostor_pairs": int(pairs[k]),
            **{
                n: {
                    "false_matches": int(above[k, j]),
                    "fmr": float(above[k, j] / pairs[k]) if pairs[k] else None,
                }
                for j, n in enumerate(names)
            },
        }
        for k, minimum in enumerate(minimums)
    ]
