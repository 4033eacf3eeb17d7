"""Calibration: fitting on impostor scores, the shipped files, bands of search results."""

import itertools

import numpy as np
import pytest

from facesearch.evaluation import calibration, precision
from facesearch.models.registry import MODELS


def _fitted():
    # 100,000 impostors spread evenly over [0, 1): the share at or above s is 1 - s.
    impostors = (np.arange(100_000) + 0.5) / 100_000
    genuine = np.array([0.9995, 0.995, 0.5])
    return calibration.fit("m", "1", False, impostors, genuine, "uniform")


def test_band_thresholds_sit_at_their_false_match_rates():
    fitted = _fitted()
    # No same-person score reaches 0.9999, so no score gives a 99%-precise top-1 result:
    # "strong lead" is out of reach rather than at its FMR of 1e-4.
    assert fitted.thresholds["strong lead"] == np.inf
    assert fitted.meta["strong_lead"]["gallery_size"] == 10_000 == fitted.gallery_size
    assert fitted.thresholds["possible lead"] == pytest.approx(0.999, abs=1e-5)
    assert fitted.thresholds["weak"] == pytest.approx(0.99, abs=1e-5)
    assert fitted.band(0.99995) == "possible lead"
    assert fitted.band(0.9995) == "possible lead"
    assert fitted.band(0.995) == "weak"
    assert fitted.band(0.5) == "unlikely"
    assert fitted.meta["true_match_rate_per_band"] == {
        "strong lead": 0.0, "possible lead": pytest.approx(1 / 3, abs=1e-4),
        "weak": pytest.approx(2 / 3, abs=1e-4),
    }  # fmt: skip


def test_estimated_fmr_follows_the_impostor_tail():
    fitted = _fitted()
    for score, fmr in ((0.5, 0.5), (0.9, 0.1), (0.999, 1e-3)):
        assert fitted.estimated_fmr(score) == pytest.approx(fmr, rel=0.05)
    # Never below what 100,000 impostors can resolve.
    assert fitted.estimated_fmr(1.0) == pytest.approx(1e-5)
    assert fitted.estimated_fmr(-1.0) == 1.0
    scores = np.linspace(-1, 1, 50)
    estimates = [fitted.estimated_fmr(s) for s in scores]
    assert all(a >= b for a, b in itertools.pairwise(estimates))


def test_round_trip_through_json(tmp_path):
    fitted = _fitted()
    loaded = calibration.load("m", False, calibration.save(fitted, tmp_path).parent)
    assert loaded.thresholds == pytest.approx(fitted.thresholds, abs=1e-6)
    assert loaded.estimated_fmr(0.95) == pytest.approx(fitted.estimated_fmr(0.95), rel=1e-4)


def test_the_default_recogniser_ships_a_calibration():
    shipped = calibration.load("sface-2021dec", False)
    assert shipped is not None and shipped.version == MODELS["sface-2021dec"].version
    t = shipped.thresholds
    assert t["strong lead"] > t["possible lead"] > t["weak"]
    # Fitted on millions of impostor pairs, enough to resolve 1e-4 and beyond.
    assert shipped.floor <= 1e-5 and shipped.meta["impostor_pairs"] > 1_000_000


def test_strong_lead_needs_a_higher_score_in_a_larger_gallery():
    # Impostors uniform on [0, 1): FMR(t) = 1 - t; every same-person pair scores 1.
    # A top-1 result at t is wrong with probability 1 - t^n among n strangers, about
    # n (1 - t), so 99% precision needs 1 - t <= 0.01 / 0.99 / n.
    impostors = (np.arange(1_000_000) + 0.5) / 1_000_000
    genuine = np.ones(100)
    by_size = {n: precision.precision_threshold(impostors, genuine, n) for n in (10, 100)}
    assert by_size[10] == pytest.approx(1 - 0.01 / 0.99 / 10, abs=1e-4)
    assert by_size[100] == pytest.approx(1 - 0.01 / 0.99 / 100, abs=1e-4)
    assert by_size[100] > by_size[10]
    fitted = calibration.fit("m", "1", False, impostors, genuine, "uniform")
    by_gallery = fitted.meta["strong_lead"]["threshold_by_gallery_size"]
    assert fitted.thresholds["strong lead"] == by_gallery["10000"]
    sizes = sorted(by_gallery, key=int)
    assert all(by_gallery[a] <= by_gallery[b] for a, b in itertools.pairwise(sizes))


def test_strong_lead_is_finite_when_no_same_person_pair_scores_1():
    # Real scores: the best same-person pair is well below 1. Above it no search is
    # observed, which must not make every threshold infinite.
    impostors = (np.arange(1_000_000) + 0.5) / 1_000_000
    genuine = np.full(100, 0.99999)
    t = precision.precision_threshold(impostors, genuine, 10)
    assert t == pytest.approx(1 - 0.01 / 0.99 / 10, abs=1e-4)
