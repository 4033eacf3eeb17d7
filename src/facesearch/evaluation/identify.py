"""1:N identification: closed-set rank-k hit rates and open-set FNIR at FPIR, as the
gallery grows with distractors.

Protocol (LFW's, applied to any labelled folder): of each person with two or
more images, the first image with a detected face goes in the gallery and the
others are probes. People with one image join the distractors. Distractors are
added to the gallery in a fixed, seeded order (0, 1k, 5k, … all).

Open set: a search is a false alarm when anything scores at or above the
threshold although the person is not enrolled. Non-mated searches are the same
probes searched against the gallery with their own mate taken out, so every
probe serves both ways and the gallery stays the same size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics

MAX_RANK = 20
FPIRS = (1e-2, 1e-3)
BLOCK = 2048


@dataclass
class Split:
    gallery: np.ndarray  # (people, d)
    probes: np.ndarray  # (probes, d)
    mate: np.ndarray  # (probes,) gallery row of each probe's person
    probe_found: np.ndarray  # (probes,) bool
    distractors: np.ndarray  # (n, d), in the order they are added
    people: int


def split(
    vectors: np.ndarray, found: np.ndarray, labels: list[str], distractors: np.ndarray,
    seed: int = 0, enrollable: np.ndarray | None = None,
) -> Split:  # fmt: skip
    """Gallery and probes from labelled rows; one-image people go to the distractors.
    `enrollable` (default: `found`) marks the faces good enough to enrol."""
    enrollable = found if enrollable is None else enrollable
    by_person: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_person.setdefault(label, []).append(i)
    gallery, probes, mate, singles = [], [], [], []
    for rows in by_person.values():
        enrolled = [r for r in rows if enrollable[r]]
        if len(rows) < 2 or not enrolled:
            singles.extend(r for r in rows if enrollable[r])
            continue
        g = enrolled[0]
        gallery.append(g)
        for r in rows:
            if r != g:
                probes.append(r)
                mate.append(len(gallery) - 1)
    pool = np.concatenate([vectors[singles], distractors]) if len(distractors) else vectors[singles]
    order = np.random.default_rng(seed).permutation(len(pool))
    return Split(
        gallery=vectors[gallery],
        probes=vectors[probes],
        mate=np.array(mate, dtype=np.int64),
        probe_found=found[probes],
        distractors=pool[order],
        people=len(gallery),
    )


def identify(data: Split, counts: list[int]) -> list[dict]:
    """Results at each distractor count (counts beyond what exists are clipped)."""
    sim = data.probes @ data.gallery.T
    n = len(data.probes)
    mate_score = sim[np.arange(n), data.mate]
    mate_score = np.where(data.probe_found, mate_score, -np.inf)
    sim[np.arange(n), data.mate] = -np.inf
    other_best = sim.max(axis=1) if sim.shape[1] > 1 else np.full(n, -np.inf)
    other_ahead = (sim >= mate_score[:, None]).sum(axis=1)
    del sim
    counts = sorted({min(c, len(data.distractors)) for c in counts})
    results = []
    distractor_best = np.full(n, -np.inf)
    distractor_ahead = np.zeros(n, dtype=np.int64)
    done = 0
    for count in counts:
        while done < count:
            block = data.distractors[done : min(count, done + BLOCK)]
            s = data.probes @ block.T
            distractor_best = np.maximum(distractor_best, s.max(axis=1))
            distractor_ahead += (s >= mate_score[:, None]).sum(axis=1)
            done += len(block)
        rank = 1 + other_ahead + distractor_ahead
        rank = np.where(data.probe_found, rank, np.iinfo(np.int64).max)
        nonmated_top = np.maximum(other_best, distractor_best)[data.probe_found]
        row = {
            "distractors": count,
            "gallery_size": data.people + count,
            "probes": n,
            "probes_without_a_face": int((~data.probe_found).sum()),
            "rank1": float((rank <= 1).mean()),
            "rank10": float((rank <= 10).mean()),
            "cmc": metrics.cmc(rank, MAX_RANK).tolist(),
            "fnir_at_fpir": {},
        }
        for fpir in FPIRS:
            t = metrics.fpir_threshold(nonmated_top, fpir)
            row["fnir_at_fpir"][f"{fpir:g}"] = {
                "fnir": metrics.fnir_at_threshold(mate_score, rank, t),
                "threshold": t,
            }
        row["_det"] = metrics.det_curve(mate_score, rank, nonmated_top)
        results.append(row)
    return results
