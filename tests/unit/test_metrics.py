"""The metric functions against small examples worked out by hand."""

import numpy as np
import pytest

from facesearch.evaluation import metrics as m

# Sorted by score: match, match, non-match, match, non-match, non-match.
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
SAME = np.array([True, True, False, True, False, False])


def test_roc_has_one_point_per_distinct_score():
    curve = m.roc(SCORES, SAME)
    assert curve.fpr == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert curve.tpr == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert curve.thresholds[0] == np.inf and curve.thresholds[1:] == pytest.approx(SCORES)


def test_roc_accepts_tied_scores_together():
    curve = m.roc(np.array([0.5, 0.5, 0.2]), np.array([True, False, False]))
    assert curve.fpr == pytest.approx([0, 0.5, 1]) and curve.tpr == pytest.approx([0, 1, 1])


def test_auc_is_the_share_of_match_non_match_pairs_ranked_right():
    # 0.9 and 0.8 beat all three non-matches, 0.6 beats two: 8 of 9.
    assert m.auc(m.roc(SCORES, SAME)) == pytest.approx(8 / 9)


def test_tar_at_far():
    curve = m.roc(SCORES, SAME)
    assert m.tar_at_far(curve, 0.0) == pytest.approx((2 / 3, 0.8))
    assert m.tar_at_far(curve, 0.34) == pytest.approx((1.0, 0.6))


def test_equal_error_rate():
    # At threshold 0.7 one non-match of three is accepted and one match of three refused.
    assert m.eer(m.roc(SCORES, SAME)) == pytest.approx(1 / 3)
    perfect = m.roc(np.array([0.9, 0.1]), np.array([True, False]))
    assert m.eer(perfect) == pytest.approx(0.0)


def test_best_threshold_maximises_accuracy():
    # 0.55 and 0.75 both get 5 of 6 right; the lower is returned.
    t = m.best_threshold(SCORES, SAME)
    assert t == pytest.approx(0.55)
    assert m.accuracy(SCORES, SAME, t) == pytest.approx(5 / 6)


def test_kfold_accuracy_takes_each_threshold_from_the_other_folds():
    folds = np.array([0, 1, 0, 1, 0, 1])  # fold 0: 0.9 T, 0.7 F, 0.5 F; fold 1: 0.8 T, 0.6 T, 0.4 F
    result = m.kfold_accuracy(SCORES, SAME, folds)
    # Fold 1 alone is separated best at 0.5; on fold 0 that accepts 0.7 and 0.5: 1 of 3.
    # Fold 0 alone is separated best at 0.8; on fold 1 that refuses 0.6: 2 of 3.
    assert result.thresholds == pytest.approx([0.5, 0.8])
    assert result.per_fold == pytest.approx([1 / 3, 2 / 3])
    assert result.mean == pytest.approx(0.5)
    assert result.std == pytest.approx(np.sqrt(2) / 6)
    assert result.standard_error == pytest.approx(1 / 6)


def test_ranks_and_cmc():
    similarity = np.array([[0.9, 0.5, 0.1], [0.2, 0.6, 0.7]])
    rank = m.ranks(similarity, np.array([0, 1]))
    assert rank.tolist() == [1, 2]
    assert m.cmc(rank, 3) == pytest.approx([0.5, 1.0, 1.0])


def test_fpir_threshold_allows_the_given_share_of_false_alarms():
    top = np.array([0.1, 0.9, 0.3, 0.5])
    t = m.fpir_threshold(top, 0.25)
    assert 0.5 < t < 0.5001 and (top >= t).mean() == 0.25
    assert 0.9 < m.fpir_threshold(top, 0.0) < 0.9001
    assert (top >= m.fpir_threshold(top, 0.5)).mean() == 0.5
    assert m.fpir_threshold(top, 1.0) == -np.inf


def test_fnir_counts_mates_missed_at_rank_one_or_below_threshold():
    mate = np.array([0.8, 0.6, 0.95])
    rank = np.array([1, 2, 1])
    assert m.fnir_at_threshold(mate, rank, 0.9) == pytest.approx(2 / 3)
    assert m.fnir_at_threshold(mate, rank, 0.5) == pytest.approx(1 / 3)
    fpir, fnir = m.det_curve(mate, rank, np.array([0.85, 0.7]))
    assert fpir == pytest.approx([0.5, 1.0]) and fnir == pytest.approx([2 / 3, 1 / 3])


def test_false_match_rate_and_its_threshold():
    impostors = np.array([0.1, 0.4, 0.5, 0.9])
    assert m.false_match_rate(impostors, 0.5) == 0.5
    t = m.threshold_at_fmr(impostors, 0.25)
    assert m.false_match_rate(impostors, t) == 0.25 and t < 0.51
