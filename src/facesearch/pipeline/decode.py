"""Bytes → pixels, refusing what is not a sane image before it costs memory."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import DecodeSettings
from ..errors import ImageRejected, ImageTooLarge, UnsupportedImage

FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "PPM", "GIF"}
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_IFD = 0x8769

# Our own pixel limit is checked from the header before decoding; Pillow's
# warning-then-error bomb check would fire on images we have already allowed.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # H x W x 3, uint8, BGR (OpenCV's order)
    taken_at: str | None  # EXIF DateTimeOriginal as ISO 8601, when present

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def decode(data: bytes, limits: DecodeSettings) -> DecodedImage:
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"file is {len(data):,} bytes, above the limit of {limits.max_bytes:,}")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedImage("not an image: the format is not recognised") from None
    except Exception as exc:
        raise ImageRejected(f"corrupt or truncated image header: {exc}") from None
    if image.format not in FORMATS:
        raise UnsupportedImage(f"unsupported image format {image.format}")
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected(f"image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image claims {width}x{height} = {width * height / 1e6:.0f} megapixels, "
            f"above the limit of {limits.max_pixels / 1e6:.0f}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.seek(0)  # first frame of an animation
            image.load()
    except Exception as exc:
        raise ImageRejected(f"corrupt or truncated {image.format}: {exc}") from None
    taken_at = _taken_at(image)
    with contextlib.suppress(Exception):  # malformed EXIF: keep the pixels as stored
        image = ImageOps.exif_transpose(image)
    return DecodedImage(_to_bgr(image), taken_at)


def _to_bgr(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        wide = np.asarray(image, dtype=np.float64)
        top = wide.max() or 1.0
        image = Image.fromarray((wide * (255.0 / top)).astype(np.uint8))
    rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _taken_at(image: Image.Image) -> str | None:
    try:
        value = image.getexif().get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL)
    except Exception:
        return None
    if not isinstance(value, str) or len(value) < 19:
        return None
    date, _, time = value.strip().partition(" ")
    parts = date.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] == "0000":
        return None
    return f"{parts[0]}-{parts[1]}-{parts[2]}T{time[:8]}"
