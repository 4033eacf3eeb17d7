"""False match rates per demographic group on impostor pairs.

UTKFace labels each image in its file name (`age_gender_race_date.jpg...`) and
has no identity labels; every pair of two images is taken as two different
people (the dataset has one image per person for nearly everyone). Pairs are
formed within a group, as NIST's demographic tests do, because a look-alike of
the same sex and origin is the case that matters.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

GENDERS = {0: "male", 1: "female"}
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Other"}
NAME = re.compile(r"^(\d+)_(\d)_(\d)_")
BLOCK = 2048


def utkface_labels(path: Path) -> dict | None:
    """Age, gender and race from a UTKFace file name; None when the name lacks them."""
    match = NAME.match(path.name)
    if not match or int(match[2]) not in GENDERS or int(match[3]) not in RACES:
        return None
    return {"age": int(match[1]), "gender": GENDERS[int(match[2])], "race": RACES[int(match[3])]}


def impostor_counts(vectors: np.ndarray, thresholds: list[float]) -> tuple[int, list[int]]:
    """Pairs among the rows (each unordered pair once) and how many score at or above
    each threshold."""
    n = len(vectors)
    above = [0] * len(thresholds)
    for start in range(0, n, BLOCK):
        s = vectors[start : start + BLOCK] @ vectors[start:].T
        # Keep each pair once: columns after the row's own index.
        rows = np.arange(len(s))[:, None]
        cols = np.arange(s.shape[1])[None, :]
        upper = s[cols > rows]
        for k, t in enumerate(thresholds):
            above[k] += int((upper >= t).sum())
    return n * (n - 1) // 2, above


def group_rates(
    vectors: np.ndarray, groups: dict[str, np.ndarray], thresholds: dict[str, float]
) -> dict:
    """Per group, per named threshold: impostor pairs, false matches and the rate;
    then the worst-to-best ratio of the rates."""
    names = list(thresholds)
    out: dict = {"groups": {}, "ratio_worst_to_best": {}}
    for group, mask in groups.items():
        pairs, above = impostor_counts(vectors[mask], [thresholds[n] for n in names])
        out["groups"][group] = {
            "images": int(mask.sum()),
            "impostor_pairs": pairs,
            **{n: {"false_matches": a, "fmr": a / pairs if pairs else None}
               for n, a in zip(names, above, strict=True)},
        }  # fmt: skip
    for n in names:
        rates = {g: v[n]["fmr"] for g, v in out["groups"].items() if v[n]["fmr"] is not None}
        if not rates:
            continue
        worst = max(rates, key=rates.__getitem__)
        best = min(rates, key=rates.__getitem__)
        out["ratio_worst_to_best"][n] = {
            "worst": worst,
            "best": best,
            "ratio": rates[worst] / rates[best] if rates[best] > 0 else None,
        }
    return out
