"""The in-the-wild protocol on embeddings small enough to rank by hand."""

from pathlib import Path

import numpy as np
import pytest

from facesearch.evaluation import wild
from facesearch.evaluation.embeddings import Embeddings


def _embeddings(vectors, quality, found=None) -> Embeddings:
    v = np.array(vectors, np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    n = len(v)
    return Embeddings(
        model="m", paths=[Path(f"{i}.jpg") for i in range(n)],
        found=np.ones(n, bool) if found is None else np.array(found),
        quality=np.array(quality, np.float32), det_score=np.ones(n, np.float32),
        plain=v, mirrored=v,
    )  # fmt: skip


# A has 5 photos, B 2, C 1 (too few to be searched for).
LABELS = ["A", "A", "A", "A", "A", "B", "B", "C"]
QUALITY = [0.6, 0.9, 0.2, 0.5, 0.1, 0.8, 0.3, 0.9]


def test_first_enrols_the_first_photo_and_caps_the_probes():
    p = wild.plan(LABELS, np.ones(8, bool), np.array(QUALITY), "first", max_probes=3)
    assert p.gallery.tolist() == [0, 5]
    assert p.probes.tolist() == [1, 2, 3, 6] and p.mate.tolist() == [0, 0, 0, 1]


def test_hard_enrols_the_best_photo_and_probes_with_the_worst():
    p = wild.plan(LABELS, np.ones(8, bool), np.array(QUALITY), "hard", max_probes=3)
    assert p.gallery.tolist() == [1, 5]
    assert p.probes.tolist() == [4, 2, 3, 6]


def test_photos_without_a_face_take_no_part():
    found = np.array([False, True, True, True, True, True, False, True])
    p = wild.plan(LABELS, found, np.array(QUALITY), "first", max_probes=0)
    assert p.gallery.tolist() == [1] and p.probes.tolist() == [2, 3, 4]


def test_rank_and_strong_lead_precision_with_a_distractor_in_front():
    # A's probe is near A's photo; B's probe is nearer a distractor than its mate.
    labelled = {"m": _embeddings([[1, 0, 0], [0.95, 0.05, 0], [0, 1, 0], [0, 0.6, 0.8]],
                                 [0.9, 0.9, 0.9, 0.9])}  # fmt: skip
    distractors = {"m": _embeddings([[0, 0.5, 0.9], [0.2, 0.2, -1]], [0.9, 0.9])}
    outcome = wild.run(labelled, ["A", "A", "B", "B"], distractors, wild.Lever(("m",)), "first")
    assert outcome.row["identities"] == 2 and outcome.row["probes"] == 2
    assert outcome.row["rank1"] == 0.5 and outcome.row["rank10"] == 1.0
    assert outcome.top1_correct.tolist() == [True, False]
    precision, count = wild.strong_lead_precision(outcome, 0.9)
    assert count == 2 and precision == 0.5
    precision, count = wild.strong_lead_precision(outcome, 0.995)
    assert count == 1 and precision == 1.0


def test_a_refused_enrolment_counts_its_probes_as_misses():
    labelled = {"m": _embeddings([[1, 0, 0], [0.95, 0.05, 0], [0, 1, 0], [0, 0.9, 0.1]],
                                 [0.9, 0.9, 0.3, 0.9])}  # fmt: skip
    distractors = {"m": _embeddings([[0, 0, 1]], [0.9])}
    lever = wild.Lever(("m",), min_quality=0.5)
    outcome = wild.run(labelled, ["A", "A", "B", "B"], distractors, lever, "first")
    assert outcome.row["probes"] == 2 and outcome.row["identities"] == 1
    assert outcome.row["rank1"] == pytest.approx(0.5)
    assert outcome.top1_correct.tolist() == [True, False]
    # The unenrolled person's best result is a stranger with a low score: not a strong lead.
    assert outcome.top1_score[1] == pytest.approx(0.1 / np.hypot(0.9, 0.1), abs=1e-5)
    assert wild.strong_lead_precision(outcome, 0.5) == (1.0, 1)
