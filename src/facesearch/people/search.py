"""Search by person: stored faces ranked against all of a person's faces at once.

A person's photos vary (pose, age, light); a face that resembles any one of them
well is a lead. "max" takes each stored face's best score against the person's
faces; "mean_top3" the mean of its three best, which one lucky look-alike photo
moves less. bench/people.py measures both against single-photo search.
"""

from __future__ import annotations

import numpy as np

HOW = ("max", "mean_top3")


def person_scores(similarities: np.ndarray, how: str = "max") -> np.ndarray:
    """(n, m) similarities of n faces to a person's m faces → one score per face."""
    if how not in HOW:
        raise ValueError(f"unknown person ranking {how!r}")
    if similarities.shape[1] == 0:
        return np.full(similarities.shape[0], -np.inf, np.float32)
    if how == "max":
        return similarities.max(axis=1)
    k = min(3, similarities.shape[1])
    top = -np.partition(-similarities, k - 1, axis=1)[:, :k]
    return top.mean(axis=1)
