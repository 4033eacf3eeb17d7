"""Distractors that are in fact a gallery person: finding them for review by eye.

A web-collected distractor set (UTKFace) can hold photos of public figures who are
also enrolled from LFW; a search that ranks such a photo above the probe's own
gallery image is then counted as an error although it found the right person.

A distractor is flagged when its mean similarity to a gallery person's images
(the dot product with the mean of that person's unit embeddings) reaches a
threshold. The mean over several photos of the person is far steadier than one
photo's score, so a look-alike rarely reaches it. The threshold is read off LFW
itself: for each image of a person with three or more images, its mean similarity
to the person's other images (a true duplicate) and its highest mean similarity to
any other person (a look-alike). Flagged faces are only candidates; the list of
confirmed duplicates is made by a person looking at the photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 2048


@dataclass(frozen=True)
class People:
    names: list[str]
    means: np.ndarray  # (people, d) mean of each person's unit embeddings (not renormalised)
    counts: np.ndarray  # (people,) images behind each mean


def people_means(
    vectors: np.ndarray, found: np.ndarray, labels: list[str], least: int = 2
) -> People:
    """Per person with at least `least` detected faces, the mean of their embeddings."""
    rows: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        if found[i]:
            rows.setdefault(label, []).append(i)
    names = sorted(n for n, r in rows.items() if len(r) >= least)
    means = np.stack([vectors[rows[n]].mean(axis=0) for n in names]) if names else np.zeros(
        (0, vectors.shape[1]), vectors.dtype)  # fmt: skip
    return People(names, means, np.array([len(rows[n]) for n in names], np.int64))


def best_person(queries: np.ndarray, people: People) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index of the person it is most alike on average, and
    that mean similarity."""
    best = np.empty(len(queries), np.int64)
    score = np.empty(len(queries), np.float64)
    for start in range(0, len(queries), BLOCK):
        s = queries[start : start + BLOCK] @ people.means.T
        best[start : start + len(s)] = s.argmax(axis=1)
        score[start : start + len(s)] = s.max(axis=1)
    return best, score


def leave_one_out(
    vectors: np.ndarray, found: np.ndarray, labels: list[str], least: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """On a labelled set: for each image of a person with at least `least` faces, its
    mean similarity to the person's other images (`same`) and its highest mean
    similarity to any other person with at least `least - 1` faces (`other`)."""
    people = people_means(vectors, found, labels, least - 1)
    index = {n: k for k, n in enumerate(people.names)}
    rows = [i for i, label in enumerate(labels)
            if found[i] and label in index and people.counts[index[label]] >= least]  # fmt: skip
    same = np.empty(len(rows))
    other = np.empty(len(rows))
    for start in range(0, len(rows), BLOCK):
        chunk = rows[start : start + BLOCK]
        s = vectors[chunk] @ people.means.T
        own = np.array([index[labels[i]] for i in chunk])
        n = people.counts[own]
        at = np.arange(len(chunk))
        # The person's mean without the query itself: (n·mean - v)·v / (n - 1), v·v = 1.
        same[start : start + len(chunk)] = (n * s[at, own] - 1.0) / (n - 1)
        s[at, own] = -np.inf
        other[start : start + len(chunk)] = s.max(axis=1)
    return same, other
