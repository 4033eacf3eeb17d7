"""The check every catalog-backed index makes in `verify`: does it hold the catalog's faces?"""

from __future__ import annotations

import numpy as np


def membership_problems(
    catalog, live: np.ndarray, model: str, model_version: str
) -> tuple[list[str], np.ndarray]:
    """Problems with the set of searchable ids `live`, and the ids the catalog expects.

    The catalog is the source of truth: every face of the model must be searchable,
    nothing else may be, and above all no deleted face.
    """
    expected = catalog.model_face_ids(model, model_version)
    missing = np.setdiff1d(expected, live)
    extra = np.setdiff1d(live, expected)
    deleted = np.intersect1d(live, catalog.deleted_face_ids())
    problems = []
    if len(missing):
        problems.append(f"{len(missing)} catalog faces are missing, e.g. {missing[:5]}")
    if len(extra):
        problems.append(f"{len(extra)} faces are not in the catalog, e.g. {extra[:5]}")
    if len(deleted):
        problems.append(f"{len(deleted)} deleted faces are searchable, e.g. {deleted[:5]}")
    return problems, expected
