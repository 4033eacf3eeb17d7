"""Faces → persons: clustering over the k-nearest-neighbour graph, full and incremental.

Pure functions over arrays (no catalog): the store and the benchmark both call
them. A face is a unit embedding with the image it came from (two faces of one
image are never one person: cannot-link), optionally a video track (faces of one
track are one person: must-link) and a quality score (below the floor a face is
never grouped). Label -1 means "unassigned".

Algorithms (docs/people.md compares them on LFW, AT&T and wild):
- "linkage": constrained single linkage guarded by the centroids. Edges of the
  graph at or above `threshold` are taken strongest first; two groups join only
  if no image has a face in both and their centroids are at least
  `centroid_threshold` alike, which stops the chains single linkage is known for.
- "components": the same without the centroid guard (plain connected components
  under cannot-link).
- "whispers": Chinese whispers on the same graph, then cannot-link split.
- "core": Immich's rule (DBSCAN-like): a face with at least `min_faces`
  neighbours above the threshold is a core face; core faces linked above the
  threshold form persons; other faces join their nearest core face's person.
The default is the one the measurement chose ("linkage").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import faiss
import numpy as np

ALGORITHMS = ("linkage", "components", "whispers", "core")
# Above this many faces the neighbour graph is built with an IVF index, not exactly.
EXACT_LIMIT = 50_000


@dataclass(frozen=True)
class Params:
    threshold: float  # cosine similarity of an edge of the graph
    centroid_threshold: float  # "linkage": least centroid similarity of two groups that join
    k: int = 20
    min_faces: int = 2  # a group becomes a person at this size
    quality_floor: float = 0.0
    algorithm: str = "linkage"


@dataclass
class Faces:
    """The faces to cluster, row by row."""

    vectors: np.ndarray  # (n, d) float32 unit rows
    images: np.ndarray  # (n,) int64: faces with the same value never share a person
    quality: np.ndarray | None = None  # (n,) float32
    tracks: np.ndarray | None = None  # (n,) int64, -1 for none: equal values are one person
    # (n,) int64, -1 for none: a person a human put the face with. Equal values are one
    # person, two different values never are.
    owners: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.vectors)


def build_index(vectors: np.ndarray) -> faiss.Index:
    """A FAISS inner-product index of `vectors` (row numbers are the ids): exact up to
    EXACT_LIMIT rows, IVF beyond (probing 16 of 4·√n lists)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = int(4 * np.sqrt(len(vectors)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(len(vectors), min(len(vectors), 40 * lists), False)])
        index.nprobe = 16
    index.add(vectors)
    return index


def knn(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, rows) of the k most similar rows of `vectors` for each query."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, len(vectors))
    if k < 1 or not len(queries):
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    return build_index(vectors).search(queries, k)


def edges(faces: Faces, params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, similarity) of the graph, i < j, each edge once, strongest first."""
    sims, rows = knn(faces.vectors, faces.vectors, params.k + 1)
    n = len(faces)
    i = np.repeat(np.arange(n), rows.shape[1])
    j, s = rows.ravel(), sims.ravel()
    keep = (j >= 0) & (i != j) & (s >= params.threshold)
    i, j, s = i[keep], j[keep], s[keep]
    a, b = np.minimum(i, j), np.maximum(i, j)
    key = a * n + b
    _, first = np.unique(key, return_index=True)
    a, b, s = a[first], b[first], s[first]
    order = np.argsort(-s, kind="stable")
    return a[order], b[order], s[order]


class _Groups:
    """Union-find with each group's images (cannot-link) and vector sum (centroid)."""

    def __init__(self, faces: Faces, refused: dict[int, set[int]] | None = None) -> None:
        n = len(faces)
        self.parent = np.arange(n)
        self.images: list[set[int] | None] = [{int(x)} for x in faces.images]
        self.sums = faces.vectors.astype(np.float64).copy()
        self.size = np.ones(n, np.int64)
        self.owner = (
            np.full(n, -1, np.int64)
            if faces.owners is None
            else faces.owners.astype(np.int64).copy()
        )
        # row → persons it must never join (a human said "not this person").
        self.refused: dict[int, set[int]] = refused or {}

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return int(root)

    def conflict(self, a: int, b: int) -> bool:
        oa, ob = int(self.owner[a]), int(self.owner[b])
        if oa >= 0 and ob >= 0 and oa != ob:
            return True
        if self.refused and (ob in self.refused.get(a, ()) or oa in self.refused.get(b, ())):
            return True
        small, large = sorted((self.images[a], self.images[b]), key=len)  # type: ignore[arg-type]
        return not small.isdisjoint(large)

    def centroid_similarity(self, a: int, b: int) -> float:
        x, y = self.sums[a], self.sums[b]
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12))

    def union(self, a: int, b: int) -> int:
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        self.sums[a] += self.sums[b]
        self.images[a] |= self.images[b]  # type: ignore[operator]
        self.images[b] = None
        if self.owner[a] < 0:
            self.owner[a] = self.owner[b]
        if b in self.refused:
            self.refused.setdefault(a, set()).update(self.refused.pop(b))
        return a


def cluster(faces: Faces, params: Params) -> np.ndarray:
    """A label per face: persons numbered from 0, -1 for faces left unassigned."""
    if params.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown clustering algorithm {params.algorithm!r}")
    n = len(faces)
    labels = -np.ones(n, np.int64)
    usable = np.ones(n, bool)
    if faces.quality is not None:
        usable = faces.quality >= params.quality_floor
    rows = np.flatnonzero(usable)
    if not len(rows):
        return labels
    sub = _take(faces, rows)
    if params.algorithm == "whispers":
        found = _whispers(sub, params)
    elif params.algorithm == "core":
        found = _core(sub, params)
    else:
        found = _linkage(sub, params, guard=params.algorithm == "linkage")
    labels[rows] = _persons(found, params.min_faces)
    return labels


def _must_link(groups: _Groups, faces: Faces) -> None:
    for values in (faces.tracks, faces.owners):
        if values is None:
            continue
        first: dict[int, int] = {}
        for row, value in enumerate(values.tolist()):
            if value < 0:
                continue
            if value in first:
                a, b = groups.find(first[value]), groups.find(row)
                if a != b:
                    groups.union(a, b)
            else:
                first[value] = row


def _linkage(faces: Faces, params: Params, guard: bool) -> np.ndarray:
    a, b, _ = edges(faces, params)
    return _link(faces, a, b, params, guard, None)


def cluster_edges(
    faces: Faces,
    a: np.ndarray,
    b: np.ndarray,
    s: np.ndarray,
    params: Params,
    refused: set[tuple[int, int]] | None = None,
    face_ids: np.ndarray | None = None,
) -> np.ndarray:
    """`cluster` over a neighbour graph computed before (rows a, b, similarity s, in
    any order, possibly twice): a recluster builds it in checkpointed chunks.
    `refused` holds (face id, owner) pairs that never join; `face_ids` names the rows."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = len(faces)
    keep = lo != hi
    _, first = np.unique(lo[keep] * n + hi[keep], return_index=True)
    lo, hi, s = lo[keep][first], hi[keep][first], s[keep][first]
    order = np.argsort(-s, kind="stable")
    by_row: dict[int, set[int]] = {}
    if refused and face_ids is not None:
        position = {int(f): r for r, f in enumerate(face_ids.tolist())}
        for face, person in refused:
            if face in position:
                by_row.setdefault(position[face], set()).add(int(person))
    if params.algorithm in ("whispers", "core"):
        groups = cluster(faces, replace(params, min_faces=1))
    else:
        groups = _link(faces, lo[order], hi[order], params, params.algorithm == "linkage", by_row)
    return _persons(groups, params.min_faces)


def _link(
    faces: Faces,
    a: np.ndarray,
    b: np.ndarray,
    params: Params,
    guard: bool,
    refused: dict[int, set[int]] | None,
) -> np.ndarray:
    groups = _Groups(faces, refused)
    _must_link(groups, faces)
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        x, y = groups.find(i), groups.find(j)
        if x == y or groups.conflict(x, y):
            continue
        if guard and groups.centroid_similarity(x, y) < params.centroid_threshold:
            continue
        groups.union(x, y)
    return np.array([groups.find(i) for i in range(len(faces))])


def _whispers(faces: Faces, params: Params, rounds: int = 20) -> np.ndarray:
    n = len(faces)
    a, b, s = edges(faces, params)
    neighbours: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for i, j, w in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
        neighbours[i].append((j, w))
        neighbours[j].append((i, w))
    label = np.arange(n)
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        changed = 0
        for node in rng.permutation(n).tolist():
            if not neighbours[node]:
                continue
            votes: dict[int, float] = {}
            for other, w in neighbours[node]:
                votes[int(label[other])] = votes.get(int(label[other]), 0.0) + w
            best = max(votes, key=votes.__getitem__)
            if best != label[node]:
                label[node] = best
                changed += 1
        if not changed:
            break
    return _split_conflicts(faces, label)


def _core(faces: Faces, params: Params) -> np.ndarray:
    n = len(faces)
    sims, rows = knn(faces.vectors, faces.vectors, params.k + 1)
    strong = (sims >= params.threshold) & (rows != np.arange(n)[:, None]) & (rows >= 0)
    core = strong.sum(1) >= params.min_faces
    groups = _Groups(faces)
    _must_link(groups, faces)
    a, b, _ = edges(faces, params)
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        if core[i] and core[j]:
            x, y = groups.find(i), groups.find(j)
            if x != y and not groups.conflict(x, y):
                groups.union(x, y)
    for i in np.flatnonzero(~core).tolist():
        for j, ok in zip(rows[i].tolist(), strong[i].tolist(), strict=True):
            if ok and core[j]:
                x, y = groups.find(j), groups.find(i)
                if x != y and not groups.conflict(x, y):
                    groups.union(x, y)
                break
    return np.array([groups.find(i) for i in range(n)])


def _split_conflicts(faces: Faces, label: np.ndarray) -> np.ndarray:
    """Within each group, a second face of one image starts a group of its own."""
    label = label.copy()
    seen: dict[tuple[int, int], int] = {}
    fresh = int(label.max()) + 1 if len(label) else 0
    for row in range(len(label)):
        key = (int(label[row]), int(faces.images[row]))
        if key in seen:
            label[row] = fresh
            fresh += 1
        else:
            seen[key] = row
    return label


def _persons(groups: np.ndarray, min_faces: int) -> np.ndarray:
    """Groups of at least `min_faces` faces numbered 0…; the rest -1."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    big = counts >= min_faces
    number = -np.ones(len(counts), np.int64)
    number[big] = np.arange(int(big.sum()))
    return number[inverse]


# incremental


@dataclass
class Assignment:
    """What an incremental step decided for the new faces, row by row."""

    person: np.ndarray  # (m,) int64: an existing person's label, or -1
    new_group: np.ndarray  # (m,) int64: a new person among the new and waiting faces, or -1
    joined_waiting: dict[int, int]  # waiting face row → new group


def assign(
    known: Faces,
    known_person: np.ndarray,
    new: Faces,
    params: Params,
    refused: set[tuple[int, int]] | None = None,
    index: faiss.Index | None = None,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> Assignment:
    """New faces join found persons or found new ones, without touching the others.

    `known`: the faces stored before, with their person (-1: waiting, not grouped
    yet). A new face joins the person of its most similar known face above the
    threshold, unless that person already has a face of its image, the centroid
    guard refuses, or `refused` holds (new row, person) — a human "not this person".
    New faces left over are clustered with the waiting faces they reach; groups of
    `min_faces` become new persons. `index`: a FAISS index of `known.vectors` (row
    numbers as ids) kept between steps; without it one is built. `neighbours`:
    (similarities, known rows, -1 padding) of each new face, best first, found
    elsewhere (the search index).
    """
    refused = refused or set()
    m = len(new)
    person = -np.ones(m, np.int64)
    usable = np.ones(m, bool) if new.quality is None else new.quality >= params.quality_floor
    if neighbours is not None:
        sims, rows = neighbours
    elif len(known) and usable.any():
        if index is None:
            sims, rows = knn(known.vectors, new.vectors, 2 * params.k)
        else:
            k = min(2 * params.k, int(index.ntotal))
            sims, rows = index.search(np.ascontiguousarray(new.vectors, np.float32), k)
    else:
        sims = np.zeros((m, 0), np.float32)
        rows = np.zeros((m, 0), np.int64)
    if (known_person >= 0).any() and usable.any():
        _join_persons(known, known_person, new, params, refused, person, usable, sims, rows)
    # Track mates of a face that joined follow it (must-link).
    if new.tracks is not None:
        by_track: dict[int, int] = {}
        for row in np.flatnonzero(person >= 0).tolist():
            if new.tracks[row] >= 0:
                by_track.setdefault(int(new.tracks[row]), int(person[row]))
        for row in range(m):
            track = int(new.tracks[row])
            if person[row] < 0 and track >= 0 and track in by_track:
                person[row] = by_track[track]
    left = np.flatnonzero((person < 0) & usable)
    new_group = -np.ones(m, np.int64)
    joined: dict[int, int] = {}
    if len(left):
        near = rows[left]
        ok = (sims[left] >= params.threshold) & (near >= 0)
        near = np.unique(near[ok])
        waiting = near[known_person[near] < 0] if len(near) else near
        if known.quality is not None and len(waiting):
            waiting = waiting[known.quality[waiting] >= params.quality_floor]
        reach = waiting.astype(np.int64)
        pool = Faces(
            np.concatenate([new.vectors[left], known.vectors[reach]]),
            np.concatenate([new.images[left], known.images[reach]]),
            None,
            None
            if new.tracks is None
            else np.concatenate([new.tracks[left], -np.ones(len(reach), np.int64)]),
        )
        labels = cluster(pool, params)
        new_group[left] = labels[: len(left)]
        for row, label in zip(reach.tolist(), labels[len(left) :].tolist(), strict=True):
            if label >= 0:
                joined[row] = label
    return Assignment(person, new_group, joined)


def _join_persons(
    known: Faces,
    known_person: np.ndarray,
    new: Faces,
    params: Params,
    refused: set[tuple[int, int]],
    person: np.ndarray,
    usable: np.ndarray,
    sims: np.ndarray,
    rows: np.ndarray,
) -> None:
    # Each person's rows, found once: by sorting the labels, not one scan per person.
    order = np.argsort(known_person, kind="stable")
    sorted_labels = known_person[order]
    taken: dict[int, set[int]] = {}
    centroids: dict[int, np.ndarray] = {}

    def members(label: int) -> np.ndarray:
        lo = np.searchsorted(sorted_labels, label, side="left")
        hi = np.searchsorted(sorted_labels, label, side="right")
        return order[lo:hi]

    for row in range(len(new)):
        if not usable[row]:
            continue
        for sim, at in zip(sims[row].tolist(), rows[row].tolist(), strict=True):
            if at < 0 or sim < params.threshold:
                break
            label = int(known_person[at])
            if label < 0 or (row, label) in refused:
                continue
            images = taken.get(label)
            if images is None:
                images = taken[label] = {int(x) for x in known.images[members(label)]}
            if int(new.images[row]) in images:
                continue
            if params.algorithm == "linkage":
                centre = centroids.get(label)
                if centre is None:
                    centre = known.vectors[members(label)].sum(0)
                    centre = centroids[label] = centre / (np.linalg.norm(centre) + 1e-12)
                if float(centre @ new.vectors[row]) < params.centroid_threshold:
                    continue
            person[row] = label
            images.add(int(new.images[row]))
            break


def incremental(
    faces: Faces, params: Params, batch: int, order: Sequence[int] | None = None
) -> np.ndarray:
    """Labels as if the faces had arrived `batch` at a time (in `order`): the
    benchmark's model of ingest, to compare with one full clustering."""
    n = len(faces)
    order_ = np.arange(n) if order is None else np.asarray(order)
    label = -np.ones(n, np.int64)
    seen = np.zeros(0, np.int64)
    next_label = 0
    for start in range(0, n, batch):
        rows = order_[start : start + batch]
        known = _take(faces, seen)
        step = assign(known, label[seen], _take(faces, rows), params)
        label[rows] = step.person
        fresh: dict[int, int] = {}
        for group in np.unique(step.new_group[step.new_group >= 0]).tolist():
            fresh[group] = next_label
            next_label += 1
        for row, group in zip(rows.tolist(), step.new_group.tolist(), strict=True):
            if group >= 0:
                label[row] = fresh[group]
        for at, group in step.joined_waiting.items():
            label[seen[at]] = fresh[group]
        seen = np.concatenate([seen, rows])
    return label


def _take(faces: Faces, rows: np.ndarray) -> Faces:
    return Faces(
        faces.vectors[rows],
        faces.images[rows],
        None if faces.quality is None else faces.quality[rows],
        None if faces.tracks is None else faces.tracks[rows],
        None if faces.owners is None else faces.owners[rows],
    )
