"""Accuracy metrics as plain NumPy functions of scores and ground truth.

Conventions: a higher score means more alike, and a pair is called a match
when its score is at or above the threshold. Every function is checked against
hand-computed examples in tests/unit/test_metrics.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roc:
    fpr: np.ndarray  # false match rate at each threshold, rising
    tpr: np.ndarray  # true match rate at each threshold
    thresholds: np.ndarray  # falling; the first is +inf (nothing accepted)


def roc(scores: np.ndarray, same: np.ndarray) -> Roc:
    """The ROC with one point per distinct score."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    # The last index of each run of equal scores: ties are accepted together.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    positives, negatives = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return Roc(
        fpr=np.r_[0.0, fp / negatives],
        tpr=np.r_[0.0, tp / positives],
        thresholds=np.r_[np.inf, s[last]],
    )


def auc(curve: Roc) -> float:
    """Area under the ROC (trapezoids)."""
    return float(np.trapezoid(curve.tpr, curve.fpr))


def tar_at_far(curve: Roc, far: float) -> tuple[float, float]:
    """The highest true accept rate whose false accept rate is at most `far`, and the
    threshold that gives it."""
    allowed = np.flatnonzero(curve.fpr <= far)
    best = allowed[np.argmax(curve.tpr[allowed])]
    return float(curve.tpr[best]), float(curve.thresholds[best])


def eer(curve: Roc) -> float:
    """Equal error rate: where the false match rate meets the false non-match rate,
    interpolated linearly between the two ROC points around the crossing."""
    fnr = 1.0 - curve.tpr
    gap = curve.fpr - fnr  # rises from -1 to +1
    i = int(np.searchsorted(gap, 0.0))
    if i == 0:
        return float(curve.fpr[0])
    g0, g1 = gap[i - 1], gap[i]
    w = 0.0 if g1 == g0 else -g0 / (g1 - g0)
    return float(curve.fpr[i - 1] + w * (curve.fpr[i] - curve.fpr[i - 1]))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs: the midpoint of the
    best gap between consecutive distinct scores."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    distinct = np.unique(scores)
    candidates = np.r_[distinct[0] - 1e-6, (distinct[:-1] + distinct[1:]) / 2, distinct[-1] + 1e-6]
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    # Correct decisions at t: positives >= t plus negatives < t.
    correct = (len(pos) - np.searchsorted(pos, candidates, "left")) + np.searchsorted(
        neg, candidates, "left"
    )
    return float(candidates[int(np.argmax(correct))])


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(((np.asarray(scores) >= threshold) == np.asarray(same, bool)).mean())


@dataclass(frozen=True)
class FoldAccuracy:
    mean: float
    std: float  # sample standard deviation over folds
    standard_error: float  # std / sqrt(folds), as LFW's protocol reports it
    per_fold: list[float]
    thresholds: list[float]


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> FoldAccuracy:
    """LFW's protocol: each fold is scored at the threshold best on all other folds."""
    scores, same, folds = np.asarray(scores), np.asarray(same, bool), np.asarray(folds)
    per_fold, thresholds = [], []
    for k in np.unique(folds):
        train = folds != k
        t = best_threshold(scores[train], same[train])
        thresholds.append(t)
        per_fold.append(accuracy(scores[~train], same[~train], t))
    values = np.array(per_fold)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return FoldAccuracy(float(values.mean()), std, std / np.sqrt(len(values)), per_fold, thresholds)


def ranks(similarity: np.ndarray, mate: np.ndarray) -> np.ndarray:
    """The 1-based rank of each probe's mate among all gallery entries (ties count
    against the mate). `similarity` is probes x gallery, `mate` the mate's column."""
    mated = similarity[np.arange(len(mate)), mate]
    return (similarity >= mated[:, None]).sum(axis=1)


def cmc(rank: np.ndarray, max_rank: int) -> np.ndarray:
    """Hit rate at ranks 1..max_rank: the share of probes whose mate is at that rank or better."""
    rank = np.asarray(rank)
    return np.array([(rank <= k).mean() for k in range(1, max_rank + 1)])


def fpir_threshold(nonmated_top: np.ndarray, fpir: float) -> float:
    """The lowest threshold at which at most a share `fpir` of non-mated searches
    return any candidate (their best score is at or above it)."""
    top = np.sort(np.asarray(nonmated_top, np.float64))[::-1]
    allowed = int(np.floor(fpir * len(top)))  # searches that may raise a false alarm
    if allowed >= len(top):
        return float(-np.inf)
    # Strictly above the (allowed+1)-th best non-mated score.
    return float(np.nextafter(top[allowed], np.inf))


def fnir_at_threshold(mate_score: np.ndarray, rank: np.ndarray, threshold: float) -> float:
    """Share of mated searches whose mate is not returned at rank 1 with a score at or
    above the threshold (NIST FRVT 1:N's FNIR at R = 1)."""
    hit = (np.asarray(rank) == 1) & (np.asarray(mate_score) >= threshold)
    return float(1.0 - hit.mean())


def det_curve(
    mate_score: np.ndarray, rank: np.ndarray, nonmated_top: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) over every threshold given by the non-mated scores."""
    thresholds = np.sort(np.asarray(nonmated_top, np.float64))[::-1]
    fpir = np.arange(1, len(thresholds) + 1) / len(thresholds)
    fnir = np.array([fnir_at_threshold(mate_score, rank, t) for t in thresholds])
    return fpir, fnir


def false_match_rate(impostor_scores: np.ndarray, threshold: float) -> float:
    scores = np.asarray(impostor_scores)
    return float((scores >= threshold).mean()) if len(scores) else float("nan")


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float) -> float:
    """The lowest threshold whose false match rate on these impostors is at most `fmr`."""
    return fpir_threshold(impostor_scores, fmr)
