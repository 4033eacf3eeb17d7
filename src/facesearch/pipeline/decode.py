"""Bytes → pixels, refusing what is not a sane image before it costs memory or time.

Every refusal is an `ImageRejected` whose message says what is wrong with the file.
Memory is bounded by the pixel limit: at most about 7 bytes per pixel at the peak
(Pillow's decoded copy and our output, converted strip by strip).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import DecodeSettings
from ..errors import ImageRejected, ImageTooLarge, UnsupportedImage

# Pillow opens MPO (multi-picture JPEG) through its JPEG parser.
OPENERS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "PPM", "GIF")
FORMATS = {*OPENERS, "MPO"}
EXIF_DATETIME_ORIGINAL = 0x9003
EXIF_IFD = 0x8769
EXIF_ORIENTATION = 0x0112
# libjpeg decodes every scan of a progressive JPEG over the whole image, and a scan can
# be a few bytes long: 1000 repeated scans in a 125 kB file took 20 s for 16 megapixels.
# Encoders write about 10.
MAX_JPEG_SCANS = 100
# Conversion to BGR goes this many pixels at a time, so no second full-size copy is made.
STRIP_PIXELS = 1 << 20
# Modes with more than 8 bits per sample: scaled from their own range to 0-255.
WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# A marker that ends entropy-coded data: 0xFF then neither a stuffed 0x00, a restart
# marker (0xD0-0xD7) nor a fill byte.
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")

# Our own pixel limit is checked from the header before decoding; Pillow's
# warning-then-error bomb check would fire on images we have already allowed.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # H x W x 3, uint8, BGR (OpenCV's order), upright per EXIF
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
    with warnings.catch_warnings():  # Pillow warns about damaged metadata it skips
        warnings.simplefilter("ignore")
        image = _open(data)
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageRejected(f"image has no pixels ({width}x{height})")
        if width * height > limits.max_pixels:
            raise ImageTooLarge(
                f"image claims {width}x{height} = {width * height / 1e6:.0f} megapixels, "
                f"above the limit of {limits.max_pixels / 1e6:.0f}"
            )
        if image.format in ("JPEG", "MPO"):
            scans = jpeg_scans(data, stop=MAX_JPEG_SCANS)
            if scans > MAX_JPEG_SCANS:
                raise ImageRejected(
                    f"too many progressive scans in this JPEG (more than {MAX_JPEG_SCANS}); "
                    "each costs a pass over the whole image"
                )
        _load(image)
        taken_at = _taken_at(image)
        orientation = _orientation(image)
        try:
            pixels = upright(_to_bgr(image), orientation)
        except MemoryError:
            raise ImageRejected(f"not enough memory to decode {width}x{height} pixels") from None
        except Exception as exc:
            raise UnsupportedImage(
                f"unsupported pixels ({image.mode}) in {image.format}: {exc}"
            ) from None
    return DecodedImage(pixels, taken_at)


def _open(data: bytes) -> Image.Image:
    try:
        # Only the supported formats' parsers ever see the bytes.
        image = Image.open(io.BytesIO(data), formats=OPENERS)
    except UnidentifiedImageError:
        raise UnsupportedImage(
            "not an image in a supported format (JPEG, PNG, WebP, TIFF, GIF, BMP, PPM), "
            "or its header is damaged"
        ) from None
    except Exception as exc:
        raise ImageRejected(f"corrupt or truncated image header: {exc}") from None
    if image.format not in FORMATS:
        raise UnsupportedImage(f"unsupported image format {image.format}")
    return image


def _load(image: Image.Image) -> None:
    width, height = image.size
    try:
        image.seek(0)  # first frame of an animation
        image.load()
    except MemoryError:
        raise ImageRejected(f"not enough memory to decode {width}x{height} pixels") from None
    except Exception as exc:
        raise ImageRejected(f"corrupt or truncated {image.format}: {exc}") from None
    if image.size != (width, height):
        raise ImageRejected(f"corrupt {image.format}: its size changed while decoding")


def jpeg_scans(data: bytes, stop: int) -> int:
    """How many scans (SOS segments) the first image of a JPEG has; counting ends past `stop`.

    Walks the segments rather than searching for the marker's bytes, which can occur
    inside EXIF blobs and thumbnails.
    """
    scans, at = 0, 2
    while at + 4 <= len(data) and scans <= stop:
        if data[at] != 0xFF:
            found = _JPEG_MARKER.search(data, at)
            if found is None:
                break
            at = found.start()
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length field
            at += 2
            continue
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        if length < 2:
            break
        at += 2 + length
        if marker == 0xDA:
            scans += 1
            found = _JPEG_MARKER.search(data, at)
            if found is None:
                break
            at = found.start()
    return scans


def _to_bgr(image: Image.Image) -> np.ndarray:
    """The first frame as H x W x 3 BGR bytes; releases `image`'s pixels as it finishes."""
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    span = _wide_range(image) if image.mode in WIDE_MODES else None
    rows = max(1, STRIP_PIXELS // width)
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        out[top : top + strip.height] = _strip_rgb(strip, span)[:, :, ::-1]
    image.close()
    return out


def _wide_range(image: Image.Image) -> tuple[float, float]:
    """The range mapped to 0-255: from zero (or the minimum, if negative) to the maximum,
    so a dark 16-bit photo stays dark rather than being stretched."""
    low, high = (float(v) for v in image.getextrema())  # type: ignore[union-attr]
    if not (np.isfinite(low) and np.isfinite(high)):
        values = np.asarray(image, np.float64)
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return min(low, 0.0), high


def _strip_rgb(strip: Image.Image, span: tuple[float, float] | None) -> np.ndarray:
    if span is None:
        return np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))
    low, high = span
    values = np.nan_to_num(np.asarray(strip, np.float64), nan=low, posinf=high, neginf=low)
    scaled = (values - low) * (255.0 / (high - low or 1.0))
    gray = np.clip(scaled, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _orientation(image: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1 when absent or not one of the eight valid values."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # malformed EXIF: keep the pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """`pixels` as stored, turned the way EXIF `orientation` says to show them."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return pixels if turned is None else np.ascontiguousarray(turned(pixels))


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
