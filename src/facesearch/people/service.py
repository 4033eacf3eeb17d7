"""Clustering an organisation's faces into persons: after each ingest batch, and in full.

`People.update` is the incremental step: faces stored since the last step join
found persons or found new ones, and nothing else moves. `People.recluster`
clusters all of an organisation's faces again (after a model change, or to take
up faces that waited too long): its neighbour graph is checkpointed in the data
folder chunk by chunk, so a recluster that is stopped resumes where it stopped.
Pinned faces (a human put them there) stay with their person and two persons'
pinned faces are never joined; refused pairs ("not this person") never join.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..config import PeopleSettings
from ..evaluation import calibration
from ..models.registry import ModelSpec
from ..store.catalog import Catalog
from ..store.people import ClusterInput, PeopleStore
from .cluster import Faces, Params, assign, cluster_edges, knn

CHUNK = 5000
Progress = Callable[[str, int, int], None]


def score_at(spec: ModelSpec, fmr: float, fallback: float) -> float:
    """The recogniser's score at false match rate `fmr`, from its calibration."""
    cal = calibration.for_model(spec, False)
    if cal is None:
        return fallback
    # fmrs fall as scores rise; interpolate log(fmr) → score.
    logs = np.log10(np.maximum(cal.fmrs, 1e-300))
    target = np.log10(fmr)
    if target <= logs[-1]:
        return float(cal.scores[-1])
    return float(np.interp(-target, -logs, cal.scores))


def threshold_for(spec: ModelSpec, settings: PeopleSettings) -> float:
    """The edge threshold: set explicitly, or the model's score at `edge_fmr`."""
    if settings.threshold is not None:
        return settings.threshold
    return score_at(spec, settings.edge_fmr, 0.5)


def centroid_threshold_for(spec: ModelSpec, settings: PeopleSettings) -> float:
    if settings.centroid_threshold is not None:
        return settings.centroid_threshold
    return score_at(spec, settings.centroid_fmr, 0.6)


def params_for(spec: ModelSpec, settings: PeopleSettings) -> Params:
    threshold = threshold_for(spec, settings)
    return Params(
        threshold=threshold,
        centroid_threshold=centroid_threshold_for(spec, settings),
        k=settings.neighbours,
        min_faces=settings.min_faces,
        quality_floor=settings.quality_floor,
        algorithm=settings.algorithm,
    )


Nearest = Callable[[np.ndarray, int, list[int], int], tuple[np.ndarray, np.ndarray]]
# Candidates the search index re-ranks per neighbour for the people step: on the serving
# benchmark's 1M faces, 10 kept 99.3% of the above-threshold top-20 neighbours that the
# search default (50) finds, at a fifth of the time (the sealed re-rank is the cost).
NEIGHBOUR_REFINE = 10


class People:
    def __init__(
        self,
        catalog: Catalog,
        spec: ModelSpec,
        settings: PeopleSettings,
        nearest: Nearest,
        work_dir: Path | None = None,
    ) -> None:
        """`nearest(vectors, k, collection ids, refine)`: (scores, face ids) of the k
        stored faces of those collections most similar to each vector, best first (the
        search index, re-ranking `refine` candidates per result)."""
        self.catalog = catalog
        self.store = PeopleStore(catalog)
        self.spec = spec
        self.settings = settings
        self.params = params_for(spec, settings)
        self.nearest = nearest
        self.work_dir = work_dir

    def update(self, organisation_id: int) -> dict[str, int]:
        """Cluster the organisation's faces stored since the last step.

        The known faces a step reads are the new faces' neighbours, found in the search
        index, and the other faces of those neighbours' persons: a step costs what its
        new faces do, not what the archive holds."""
        if not self.settings.enabled:
            return {"faces": 0, "assigned": 0, "created": 0, "removed": 0}
        name, version = self.spec.name, self.spec.version
        mark = self.store.clustered_upto(organisation_id, name, version)
        new = self.store.cluster_input_after(organisation_id, name, version, mark)
        if not len(new.ids):
            return {"faces": 0, "assigned": 0, "created": 0, "removed": 0}
        # Faces that a person already placed (or that came with one) are not new work.
        rows = np.flatnonzero(new.person < 0)
        known, neighbours = self._neighbours(organisation_id, mark, new.vectors[rows], len(new.ids))
        assigned = self.store.assignments_of(organisation_id, name, version, known.ids)
        known_person = np.array([assigned.get(int(i), -1) for i in known.ids], np.int64)
        refusals = self.store.refusals(organisation_id)
        position = {int(f): r for r, f in enumerate(new.ids[rows])}
        refused = {(position[f], p) for f, p in refusals if f in position}
        dim = new.vectors.shape[1]
        vectors = known.vectors if len(known.ids) else np.zeros((0, dim), np.float32)
        step = assign(
            Faces(vectors, known.images, known.quality),
            known_person,
            Faces(new.vectors[rows], new.images[rows], new.quality[rows], new.tracks[rows]),
            self.params,
            refused,
            neighbours=neighbours,
        )
        joins = {int(new.ids[rows[r]]): int(p) for r, p in enumerate(step.person) if p >= 0}
        groups: dict[int, list[int]] = {}
        for r, g in enumerate(step.new_group.tolist()):
            if g >= 0:
                groups.setdefault(g, []).append(int(new.ids[rows[r]]))
        for at, g in step.joined_waiting.items():
            groups.setdefault(g, []).append(int(known.ids[at]))
        upto = int(new.ids.max())
        result = self.store.apply_clustering(
            organisation_id, name, version, upto, joins, list(groups.values())
        )
        return {"faces": len(new.ids), **result}

    def _neighbours(
        self, organisation_id: int, mark: int, vectors: np.ndarray, new_faces: int
    ) -> tuple[ClusterInput, tuple[np.ndarray, np.ndarray]]:
        """The known faces (ids up to `mark`) a step needs, and each new face's nearest
        of them as (similarities, rows of those faces), best first, -1 padded."""
        k = 2 * self.params.k
        collections = [c.id for c in self.catalog.collections_of(organisation_id)]
        if len(vectors) and collections:
            # The new faces are in the index already: ask for enough to leave k known.
            scores, ids = self.nearest(vectors, k + new_faces, collections, NEIGHBOUR_REFINE)
        else:
            scores = np.zeros((len(vectors), 0), np.float32)
            ids = np.zeros((len(vectors), 0), np.int64)
        ok = (ids > 0) & (ids <= mark)
        near = np.unique(ids[ok])
        wanted = np.union1d(near, self.store.members_of_persons_of(organisation_id, near))
        name, version = self.spec.name, self.spec.version
        known = self.store.cluster_input_of(organisation_id, name, version, wanted[wanted <= mark])
        row_of = {int(i): r for r, i in enumerate(known.ids)}  # the deleted are not there
        sims = np.full((len(vectors), k), -np.inf, np.float32)
        rows = np.full((len(vectors), k), -1, np.int64)
        for q in range(len(vectors)):
            found = [(s, row_of[int(i)]) for s, i, good in zip(scores[q], ids[q], ok[q],
                     strict=True) if good and int(i) in row_of][:k]  # fmt: skip
            if found:
                sims[q, : len(found)] = [s for s, _ in found]
                rows[q, : len(found)] = [r for _, r in found]
        return known, (sims, rows)

    # full recluster

    def _checkpoint(self, organisation_id: int, faces: ClusterInput) -> Path | None:
        if self.work_dir is None:
            return None
        digest = hashlib.sha256(faces.ids.tobytes())
        digest.update(f"{self.spec.name}:{self.spec.version}:{self.params}".encode())
        return self.work_dir / f"recluster-{organisation_id}-{digest.hexdigest()[:16]}.npz"

    def recluster(self, organisation_id: int, progress: Progress | None = None) -> dict[str, int]:
        """Cluster all of the organisation's faces again; human decisions stay."""
        name, version = self.spec.name, self.spec.version
        report = progress or (lambda stage, done, total: None)
        faces = self.store.cluster_input(organisation_id, name, version)
        n = len(faces.ids)
        report("faces", n, n)
        if not n:
            return {"faces": 0, "assigned": 0, "created": 0, "removed": 0, "resumed_from": 0}
        path = self._checkpoint(organisation_id, faces)
        done, a_parts, b_parts, s_parts = 0, [], [], []
        if path is not None and path.is_file():
            with np.load(path) as saved:
                done = int(saved["done"])
                a_parts, b_parts, s_parts = [saved["a"]], [saved["b"]], [saved["s"]]
        resumed = done
        usable = faces.quality >= self.params.quality_floor
        rows = np.flatnonzero(usable)
        vectors = faces.vectors[rows]
        while done < len(rows):
            stop = min(done + CHUNK, len(rows))
            sims, near = knn(vectors, vectors[done:stop], self.params.k + 1)
            i = np.repeat(np.arange(done, stop), near.shape[1])
            j, s = near.ravel(), sims.ravel()
            keep = (j >= 0) & (i != j) & (s >= self.params.threshold)
            a_parts.append(i[keep])
            b_parts.append(j[keep])
            s_parts.append(s[keep].astype(np.float32))
            done = stop
            if path is not None:
                _save(
                    path,
                    done=np.array(done),
                    a=np.concatenate(a_parts),
                    b=np.concatenate(b_parts),
                    s=np.concatenate(s_parts),
                )
            report("graph", done, len(rows))
        a = np.concatenate(a_parts) if a_parts else np.zeros(0, np.int64)
        b = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int64)
        s = np.concatenate(s_parts) if s_parts else np.zeros(0, np.float32)
        # Human decisions as constraints: a person's pinned faces are one group, and
        # no other person's pinned faces may join it.
        owners = np.where(faces.pinned, faces.person, -1)[rows]
        refusals = self.store.refusals(organisation_id)
        labels = cluster_edges(
            Faces(vectors, faces.images[rows], None, None, owners),
            a,
            b,
            s,
            self.params,
            refused={(int(f), int(p)) for f, p in refusals},
            face_ids=faces.ids[rows],
        )
        report("grouped", len(rows), len(rows))
        joins, groups = _to_persons(faces, rows, labels)
        result = self.store.apply_clustering(
            organisation_id, name, version, int(faces.ids.max()), joins, groups, replace=True
        )
        if path is not None:
            path.unlink(missing_ok=True)
        report("written", n, n)
        return {"faces": n, **result, "resumed_from": resumed}


def _to_persons(
    faces: ClusterInput, rows: np.ndarray, labels: np.ndarray
) -> tuple[dict[int, int], list[list[int]]]:
    """Each cluster becomes the existing person most of its faces had (each person
    at most once, biggest overlaps first), or a new person."""
    clusters: dict[int, list[int]] = {}
    for r, label in zip(rows.tolist(), labels.tolist(), strict=True):
        if label >= 0:
            clusters.setdefault(label, []).append(r)
    candidates = []
    for label, members in clusters.items():
        owners = faces.person[members]
        pinned = faces.pinned[members]
        if pinned.any():
            # A cluster holding a person's pinned faces is that person.
            candidates.append((10**9, label, int(owners[pinned][0])))
            continue
        values, counts = np.unique(owners[owners >= 0], return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            candidates.append((count, label, value))
    candidates.sort(reverse=True)
    taken_person: set[int] = set()
    chosen: dict[int, int] = {}
    for _, label, person in candidates:
        if label in chosen or person in taken_person:
            continue
        chosen[label] = person
        taken_person.add(person)
    joins: dict[int, int] = {}
    groups: list[list[int]] = []
    for label, members in clusters.items():
        ids = [int(faces.ids[r]) for r in members]
        if label in chosen:
            joins.update((f, chosen[label]) for f in ids)
        else:
            groups.append(ids)
    return joins, groups


def _save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
