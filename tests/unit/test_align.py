import numpy as np
import pytest

from facesearch.pipeline.align import CROP_SIZE, TEMPLATE, align, apply, similarity_transform


def _rotation(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    theta = np.deg2rad(degrees)
    r = scale * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return np.hstack([r, np.array(shift)[:, None]])


@pytest.mark.parametrize(("degrees", "scale"), [(0, 1.0), (17, 2.5), (-40, 0.4), (175, 3.0)])
def test_recovers_a_known_similarity_transform(degrees, scale):
    forward = _rotation(degrees, scale, (120.0, -35.0))
    landmarks = apply(forward, TEMPLATE)
    matrix = similarity_transform(landmarks)
    assert np.abs(apply(matrix, landmarks) - TEMPLATE).max() < 1e-9


def test_never_mirrors_a_face():
    mirrored = TEMPLATE * [-1, 1]
    matrix = similarity_transform(mirrored)
    # A reflection would have a negative determinant.
    assert np.linalg.det(matrix[:, :2]) > 0


def test_noisy_landmarks_fit_in_the_least_squares_sense():
    rng = np.random.default_rng(0)
    landmarks = apply(_rotation(10, 2.0, (50, 60)), TEMPLATE) + rng.normal(0, 1.0, (5, 2))
    matrix = similarity_transform(landmarks)
    residual = np.linalg.norm(apply(matrix, landmarks) - TEMPLATE, axis=1)
    assert residual.mean() < 1.5
    # Moving the solution in any direction makes the fit worse.
    for delta in np.eye(6).reshape(6, 2, 3) * 1e-3:
        worse = np.linalg.norm(apply(matrix + delta, landmarks) - TEMPLATE, axis=1)
        assert (worse**2).sum() >= (residual**2).sum()


def test_align_produces_the_crop_the_template_describes():
    # Paint dots at landmark positions of a big, rotated "face" and check the
    # warped crop puts them on the template.
    image = np.zeros((600, 800, 3), np.uint8)
    landmarks = apply(_rotation(25, 3.0, (300, 100)), TEMPLATE)
    for x, y in landmarks:
        image[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3] = 255
    crop = align(image, landmarks)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
    for x, y in TEMPLATE:
        assert crop[round(y), round(x)].max() > 100
