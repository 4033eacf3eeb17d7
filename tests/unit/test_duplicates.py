"""Finding distractors that are a gallery person, on embeddings small enough to check by hand."""

import numpy as np
import pytest

from facesearch.evaluation.duplicates import best_person, leave_one_out, people_means
from facesearch.evaluation.protocols import excluded_files


def _unit(*rows):
    v = np.array(rows, dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# A: three images near x; B: two images near y; C: one image (not a gallery person).
VECTORS = _unit([1, 0, 0], [1, 0.2, 0], [1, -0.2, 0], [0, 1, 0], [0.2, 1, 0], [0, 0, 1])
LABELS = ["A", "A", "A", "B", "B", "C"]
FOUND = np.ones(6, bool)


def test_people_means_keep_people_with_enough_faces():
    people = people_means(VECTORS, FOUND, LABELS, least=2)
    assert people.names == ["A", "B"] and people.counts.tolist() == [3, 2]
    assert people.means[1] == pytest.approx((VECTORS[3] + VECTORS[4]) / 2)
    # A face not detected does not count towards a person.
    found = FOUND.copy()
    found[4] = False
    assert people_means(VECTORS, found, LABELS, least=2).names == ["A"]


def test_best_person_is_the_highest_mean_similarity():
    people = people_means(VECTORS, FOUND, LABELS)
    who, score = best_person(_unit([0.1, 1, 0], [0, 0, 1]), people)
    assert [people.names[k] for k in who] == ["B", "A"]
    query = _unit([0.1, 1, 0])[0]
    assert score[0] == pytest.approx(query @ people.means[1])
    # Orthogonal to everyone but A's tilted images: a low best score.
    assert score[1] == pytest.approx(0.0, abs=1e-12)


def test_leave_one_out_scores_own_person_without_the_query():
    same, other = leave_one_out(VECTORS, FOUND, LABELS, least=3)
    # Only A has three images; each is scored against A's two other images and against B.
    assert len(same) == 3
    first = VECTORS[0]
    assert same[0] == pytest.approx(first @ (VECTORS[1] + VECTORS[2]) / 2)
    assert other[0] == pytest.approx(first @ (VECTORS[3] + VECTORS[4]) / 2)
    assert (same > other).all()


def test_excluded_files_from_a_reviewed_csv_and_a_plain_list(tmp_path):
    reviewed = tmp_path / "reviewed.csv"
    reviewed.write_text(
        "file,person,verdict\na/x.jpg,P,same\ny.jpg,P,different\nz.jpg,Q,unsure\nw.jpg,Q,Same\n"
    )
    assert excluded_files(reviewed) == {"x.jpg", "w.jpg"}
    listed = tmp_path / "list.txt"
    listed.write_text("# duplicates\nx.jpg\n\nfolder/y.jpg  # a note\n")
    assert excluded_files(listed) == {"x.jpg", "y.jpg"}
