"""Clustering's constraints and figures on real SFace embeddings of LFW photos."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.config import PeopleSettings
from facesearch.models.registry import get
from facesearch.people.cluster import Faces, cluster, incremental
from facesearch.people.metrics import scores
from facesearch.people.service import params_for

PARAMS = params_for(get("sface-2021dec"), PeopleSettings())


@pytest.fixture(scope="module")
def lfw_faces(lfw_embeddings):
    vectors, labels = lfw_embeddings
    return Faces(vectors, np.arange(len(vectors)), np.ones(len(vectors), np.float32)), labels


def test_metrics_count_pairs_and_bcubed_with_unassigned_as_singletons():
    truth = np.array(["a", "a", "a", "b", "b", "c"])
    perfect = scores(np.array([0, 0, 0, 1, 1, -1]), truth)
    assert perfect["pairwise_precision"] == perfect["pairwise_recall"] == 1.0
    assert perfect["bcubed_f1"] == 1.0 and perfect["persons"] == 2
    assert perfect["unassigned_share"] == pytest.approx(1 / 6)
    merged = scores(np.array([0, 0, 0, 0, 0, -1]), truth)
    assert merged["pairwise_precision"] == pytest.approx(4 / 10)  # 3 + 1 of 10 pairs
    assert merged["pairwise_recall"] == 1.0


def test_defaults_keep_people_apart_on_lfw_full_and_incremental(lfw_faces):
    faces, truth = lfw_faces
    full = scores(cluster(faces, PARAMS), truth)
    assert full["pairwise_precision"] >= 0.99 and full["bcubed_f1"] >= 0.95, full
    order = np.random.default_rng(0).permutation(len(faces))
    step = scores(incremental(faces, PARAMS, 100, order), truth)
    assert step["pairwise_precision"] >= 0.99 and step["bcubed_f1"] >= 0.95, step


def test_faces_of_one_photo_are_never_one_person(lfw_faces):
    faces, truth = lfw_faces
    person = max(set(truth), key=list(truth).count)
    images = faces.images.copy()
    images[truth == person] = -7  # as if all of them were in one group photo
    labels = cluster(Faces(faces.vectors, images, faces.quality), PARAMS)
    theirs = labels[truth == person]
    assert len(set(theirs[theirs >= 0])) == int((theirs >= 0).sum())


def test_a_track_is_one_person_and_faces_below_the_floor_stay_out(lfw_faces):
    faces, truth = lfw_faces
    a, b = np.flatnonzero(truth == truth[0])[0], np.flatnonzero(truth != truth[0])[0]
    tracks = -np.ones(len(faces), np.int64)
    tracks[[a, b]] = 5  # two different people, one track: the track wins
    quality = faces.quality.copy()
    blurred = np.flatnonzero(truth == truth[-1])
    quality[blurred] = 0.1
    labels = cluster(Faces(faces.vectors, faces.images, quality, tracks), PARAMS)
    assert labels[a] == labels[b] >= 0
    assert (labels[blurred] == -1).all()


def test_two_persons_a_human_kept_apart_are_never_joined(lfw_faces):
    faces, truth = lfw_faces
    person = max(set(truth), key=list(truth).count)
    rows = np.flatnonzero(truth == person)
    owners = -np.ones(len(faces), np.int64)
    owners[rows[: len(rows) // 2]] = 1  # a human split the person in two
    owners[rows[len(rows) // 2 :]] = 2
    labels = cluster(Faces(faces.vectors, faces.images, faces.quality, None, owners), PARAMS)
    assert not set(labels[rows[: len(rows) // 2]]) & set(labels[rows[len(rows) // 2 :]])
