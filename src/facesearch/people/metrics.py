"""How a clustering compares with the true identities: pairwise and BCubed figures.

Unassigned faces (label -1) count as persons of their own: leaving a face out
never merges two people, but it loses recall.
"""

from __future__ import annotations

import numpy as np


def _singletons(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, np.int64).copy()
    lonely = labels < 0
    labels[lonely] = labels.max(initial=0) + 1 + np.arange(int(lonely.sum()))
    return labels


def _pairs(counts: np.ndarray) -> int:
    return int((counts * (counts - 1) // 2).sum())


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    """Pairwise precision and recall, BCubed precision, recall and F1, person counts."""
    predicted = np.asarray(predicted)
    assigned = predicted >= 0
    p = _singletons(predicted)
    _, t = np.unique(np.asarray(truth), return_inverse=True)
    _, p = np.unique(p, return_inverse=True)
    joint = p.astype(np.int64) * (t.max() + 1) + t
    _, joint_inverse, joint_counts = np.unique(joint, return_inverse=True, return_counts=True)
    p_counts = np.bincount(p)
    t_counts = np.bincount(t)
    together = _pairs(joint_counts)
    predicted_pairs = _pairs(p_counts)
    true_pairs = _pairs(t_counts)
    # BCubed: per face, the share of its predicted group that is its person (precision)
    # and the share of its person that is in its predicted group (recall).
    shared = joint_counts[joint_inverse].astype(np.float64)
    precision = float(np.mean(shared / p_counts[p]))
    recall = float(np.mean(shared / t_counts[t]))
    return {
        "faces": len(predicted),
        "pairwise_precision": together / predicted_pairs if predicted_pairs else 1.0,
        "pairwise_recall": together / true_pairs if true_pairs else 1.0,
        "bcubed_precision": precision,
        "bcubed_recall": recall,
        "bcubed_f1": 2 * precision * recall / (precision + recall),
        "persons": len(np.unique(predicted[assigned])),
        "true_persons": len(t_counts),
        "true_persons_with_several": int((t_counts >= 2).sum()),
        "unassigned_share": float(1.0 - assigned.mean()) if len(predicted) else 0.0,
    }
