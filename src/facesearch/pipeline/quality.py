"""How usable a face is for identification, from 0 (useless) to 1 (ideal).

A product of four plain factors, so each one can be read and tuned: the
detector's confidence, the face's size (inter-ocular distance), sharpness of
the aligned crop (variance of the Laplacian) and frontality (how far the nose
sits from the eyes' midline, a proxy for yaw).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..types import Detection

GOOD_EYE_DISTANCE_PX = 40.0
GOOD_SHARPNESS = 150.0


def quality(detection: Detection, crop: np.ndarray) -> float:
    marks = detection.landmarks.astype(np.float64)
    eye_distance = float(np.linalg.norm(marks[1] - marks[0]))
    size = min(1.0, eye_distance / GOOD_EYE_DISTANCE_PX)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    sharpness = min(1.0, float(cv2.Laplacian(gray, cv2.CV_64F).var()) / GOOD_SHARPNESS)
    eye_mid = (marks[0] + marks[1]) / 2
    yaw = abs(float(marks[2][0] - eye_mid[0])) / max(eye_distance, 1.0)
    frontal = max(0.0, 1.0 - 2.0 * yaw)
    return round(float(detection.score * size * sharpness * frontal) ** 0.25, 4)
