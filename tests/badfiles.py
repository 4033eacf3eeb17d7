"""Broken files of the kinds an archive really holds, made on the spot."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image followed by almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )  # fmt: skip

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )  # fmt: skip


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=90
    )
    return buffer.getvalue()


def write_bad_files(folder: Path, real_jpeg: bytes) -> dict[str, str]:
    """Write the bad files; returns file name → a phrase its error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {
        "zero.jpg": (b"", "empty file"),
        "truncated.jpg": (real_jpeg[: len(real_jpeg) // 3], "truncated"),
        "text.jpg": (b"this is not an image, just some words\n" * 20, "not an image"),
        "bomb.png": (png_claiming(30000, 30000), "megapixels"),
    }
    for name, (data, _) in cases.items():
        (folder / name).write_bytes(data)
    return {name: phrase for name, (_, phrase) in cases.items()}
