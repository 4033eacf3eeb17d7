"""The identification protocol on a gallery small enough to rank by hand."""

import numpy as np
import pytest

from facesearch.evaluation.identify import identify, split

# Person A has 2 images, B has 3, C has 1 (a distractor); D is an extra distractor.
ROWS = {
    "A1": [1, 0, 0], "A2": [0.9, 0.1, 0],
    "B1": [0, 1, 0], "B2": [0, 0.8, 0.2], "B3": [0.6, 0.4, 0],
    "C1": [0.5, 0.5, 0],
}  # fmt: skip


def _split():
    vectors = np.array(list(ROWS.values()), dtype=np.float64)
    labels = [name[0] for name in ROWS]
    return split(vectors, np.ones(len(ROWS), bool), labels, np.array([[0.0, 0, 1]]))


def test_first_image_enrolled_rest_are_probes_singletons_are_distractors():
    data = _split()
    assert data.people == 2 and data.gallery.tolist() == [ROWS["A1"], ROWS["B1"]]
    assert data.probes.tolist() == [ROWS["A2"], ROWS["B2"], ROWS["B3"]]
    assert data.mate.tolist() == [0, 1, 1]
    assert sorted(map(tuple, data.distractors.tolist())) == [(0, 0, 1), (0.5, 0.5, 0)]


def test_ranks_and_open_set_rates_with_and_without_distractors():
    without, with_all = identify(_split(), [0, 1_000])
    # B3 scores A1 (0.6) above its mate B1 (0.4): rank 2; with C1 (0.5) too: rank 3.
    assert without["rank1"] == pytest.approx(2 / 3) and without["cmc"][:3] == pytest.approx(
        [2 / 3, 1, 1]
    )
    assert with_all["distractors"] == 2 and with_all["gallery_size"] == 4
    assert with_all["cmc"][:3] == pytest.approx([2 / 3, 2 / 3, 1])
    # Best non-mate scores: A2 0.5, B2 0.4, B3 0.6. At FPIR 1e-2 no false alarm is
    # allowed, so the threshold sits just above 0.6: A2 and B2 are found, B3 is missed.
    for result in (without, with_all):
        fnir = result["fnir_at_fpir"]["0.01"]
        assert fnir["fnir"] == pytest.approx(1 / 3) and 0.6 < fnir["threshold"] < 0.6001
