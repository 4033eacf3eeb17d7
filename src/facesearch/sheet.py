"""A contact sheet of a search: the probe face beside its best matches, as one JPEG."""

from __future__ import annotations

import cv2
import numpy as np

from .types import FaceRecord, Hit

TILE = 96
CAPTION = 30
COLUMNS = 5


def contact_sheet(probe: FaceRecord, hits: list[Hit]) -> bytes:
    rows = max(1, -(-len(hits) // COLUMNS))
    width = (COLUMNS + 1) * TILE + 8
    sheet = np.full((rows * (TILE + CAPTION), width, 3), 255, np.uint8)
    _place(sheet, _tile(probe.thumbnail), 0, 0, "probe", (40, 40, 40))
    for n, hit in enumerate(hits):
        row, col = divmod(n, COLUMNS)
        label = f"#{hit.rank} {hit.score:.2f}"
        _place(sheet, _tile(hit.thumbnail), row, col + 1, label, (20, 90, 20), offset=8)
    return cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _tile(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA)


def _place(sheet, tile, row, col, label, colour, offset=0) -> None:
    top, left = row * (TILE + CAPTION), col * TILE + offset
    sheet[top : top + TILE, left : left + TILE] = tile
    cv2.putText(
        sheet, label, (left + 2, top + TILE + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1,
        cv2.LINE_AA,
    )  # fmt: skip
