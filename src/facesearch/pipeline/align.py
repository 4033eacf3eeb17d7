"""Five landmarks → a 112x112 crop on the ArcFace template, by a similarity transform.

Pure geometry, testable without any model. OpenCV's FaceRecognizerSF.alignCrop
uses the same template and the same least-squares (Umeyama) estimate.
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 112
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # right eye (image left)
        [73.5318, 51.5014],  # left eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # right mouth corner
        [70.7299, 92.2041],  # left mouth corner
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray = TEMPLATE) -> np.ndarray:
    """The 2x3 rotation + uniform scale + translation mapping `src` onto `dst`
    with least squared error (Umeyama 1991), reflections excluded."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def align(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The size x size crop (112 by default) of the face whose landmarks are given, on the
    ArcFace template scaled to that size."""
    template = TEMPLATE if size == CROP_SIZE else TEMPLATE * (size / CROP_SIZE)
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)
