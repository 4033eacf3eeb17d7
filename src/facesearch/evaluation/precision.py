"""How sure a top-1 result is, as a function of its score and the gallery's size.

A score that is convincing among a thousand faces is not among ten million: each
stranger in the gallery is one more chance of a false match. These functions turn
impostor and same-person scores of development data into the lowest score at which
the best result of a search is the right person with a given precision.
"""

from __future__ import annotations

import numpy as np

GALLERY_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)


def precision_threshold(
    impostor_scores: np.ndarray, genuine_scores: np.ndarray, gallery_size: int,
    precision: float = 0.99,
) -> float:  # fmt: skip
    """The lowest score at which a top-1 result is the right person with at least
    `precision`, in a gallery of `gallery_size` strangers plus the mate.

    A mated search whose best score is at least t is wrong when some stranger scores
    t or more; with n strangers that happens with probability 1 - (1 - FMR(t))^n,
    and it is right with about the true match rate TMR(t). So t is the lowest score
    from which on  wrong / (wrong + right) <= 1 - precision, with FMR from impostor
    pairs and TMR from same-person pairs of development data. The larger the
    gallery, the higher the score a strong lead needs.
    """
    impostors = np.sort(np.asarray(impostor_scores, np.float64))
    genuine = np.sort(np.asarray(genuine_scores, np.float64))
    # Every score where the impostor count changes, and a fine grid above the highest.
    candidates = np.unique(
        np.r_[impostors[-min(len(impostors), 100_000) :], np.linspace(impostors[-1], 1.0, 400)]
    )
    fmr = tail_fmr(impostors, candidates)
    tmr = 1.0 - np.searchsorted(genuine, candidates, "left") / len(genuine)
    wrong = -np.expm1(gallery_size * np.log1p(-np.minimum(fmr, 1 - 1e-12)))
    # Above the highest same-person score of the development data no search is
    # observed, so nothing there can pass or fail: the threshold is the lowest observed
    # score from which on every observed score passes, and out of reach (infinite) when
    # even the highest fails. Counting the unobserved scores as failing made every
    # threshold on real data infinite, where no same-person pair scores exactly 1.
    observed = tmr > 0
    ok = wrong * precision <= (1 - precision) * tmr
    bad = np.flatnonzero(~ok & observed)
    first_ok = 0 if not len(bad) else bad[-1] + 1
    if first_ok >= len(candidates) or not observed[first_ok]:
        return float("inf")
    return float(candidates[first_ok])


TAIL_MIN_COUNT = 20


def tail_fmr(impostors_sorted: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The share of impostor pairs at or above each score. Where fewer than 20 pairs are
    that high, the count is too small to trust, and log FMR is extended along the
    straight line fitted to the tail between 20 pairs and 1% of pairs (an impostor
    tail falls off about exponentially with the score)."""
    n = len(impostors_sorted)
    counts = n - np.searchsorted(impostors_sorted, scores, "left")
    fmr = counts / n
    top = impostors_sorted[::-1]
    ranks = np.unique(
        np.geomspace(TAIL_MIN_COUNT, max(n // 100, TAIL_MIN_COUNT + 1), 30).astype(int)
    )
    ranks = ranks[ranks < n]
    if len(ranks) < 3:
        return np.maximum(fmr, 1.0 / n)
    slope, intercept = np.polyfit(top[ranks], np.log10(ranks / n), 1)
    thin = counts < TAIL_MIN_COUNT
    fmr[thin] = np.minimum(10.0 ** (intercept + slope * scores[thin]), TAIL_MIN_COUNT / n)
    return fmr
