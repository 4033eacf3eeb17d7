"""False match rates over all impostor pairs as low-quality faces are left out, by hand."""

from pathlib import Path

import numpy as np
import pytest

from facesearch.evaluation.embeddings import Embeddings
from facesearch.evaluation.verify import quality_effect_all_pairs


def test_rates_over_every_pair_of_two_people_by_quality():
    # A1, A2 are person A; B1 person B; C1 person C (no face found: never counted).
    paths = [Path("A/1.jpg"), Path("A/2.jpg"), Path("B/1.jpg"), Path("C/1.jpg")]
    plain = np.array([[1, 0], [0.6, 0.8], [0.8, 0.6], [1, 0]], np.float32)
    e = Embeddings(
        model="m",
        paths=paths,
        found=np.array([True, True, True, False]),
        quality=np.array([0.9, 0.4, 0.95, 1.0], np.float32),
        det_score=np.ones(4, np.float32),
        plain=plain,
        mirrored=plain,
    )
    # Impostor pairs: A1-B1 scores 0.8 (both good), A2-B1 scores 0.96 (A2 is poor).
    rows = quality_effect_all_pairs(e, False, {"high": 0.9, "low": 0.5}, (0.0, 0.5))
    everything, good = rows
    assert everything["impostor_pairs"] == 2 and everything["images_kept"] == 3
    assert everything["high"] == {"false_matches": 1, "fmr": pytest.approx(0.5)}
    assert everything["low"]["false_matches"] == 2
    assert good["impostor_pairs"] == 1 and good["images_kept"] == 2
    assert good["high"]["false_matches"] == 0 and good["low"]["fmr"] == pytest.approx(1.0)
