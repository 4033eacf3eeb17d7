import io

import numpy as np
import pytest
from badfiles import jpeg_bytes, png_claiming
from PIL import Image

from facesearch.config import DecodeSettings
from facesearch.errors import ImageRejected
from facesearch.pipeline.decode import decode

LIMITS = DecodeSettings()


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _marked_rgb() -> Image.Image:
    """40x20 with a red left half and a blue right half, so orientation shows."""
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = (255, 0, 0)
    array[:, 20:] = (0, 0, 255)
    return Image.fromarray(array)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "JPEG"])
def test_common_formats_decode_to_bgr(fmt):
    options = {"lossless": True} if fmt == "WEBP" else {}
    pixels = decode(_encode(_marked_rgb(), fmt, **options), LIMITS).pixels
    assert pixels.shape == (20, 40, 3) and pixels.dtype == np.uint8
    # BGR: red is in channel 2.
    assert pixels[10, 5, 2] > 200 and pixels[10, 5, 0] < 60
    assert pixels[10, 35, 0] > 200 and pixels[10, 35, 2] < 60


def test_grayscale_pgm_becomes_three_channels():
    gray = Image.fromarray(np.full((112, 92), 77, np.uint8))
    pixels = decode(_encode(gray, "PPM"), LIMITS).pixels
    assert pixels.shape == (112, 92, 3) and (pixels == 77).all()


def test_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pixels = decode(data, LIMITS).pixels
    assert pixels[8, 8, 2] > 200 and pixels[8, 8, 1] < 60


def test_sixteen_bit_images_are_scaled_not_clipped():
    wide = Image.fromarray(np.full((8, 8), 40000, np.uint16))
    pixels = decode(_encode(wide, "PNG"), LIMITS).pixels
    assert pixels.min() > 200


def test_exif_orientation_is_applied_and_date_read():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    exif.get_ifd(0x8769)[0x9003] = "2019:07:20 14:03:59"
    data = _encode(_marked_rgb(), "JPEG", exif=exif, quality=95)
    image = decode(data, LIMITS)
    assert (image.width, image.height) == (20, 40)
    # After the rotation the red half is on top.
    assert image.pixels[5, 10, 2] > 200 and image.pixels[35, 10, 0] > 200
    assert image.taken_at == "2019-07-20T14:03:59"


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "empty file"),
        (b"hello, I am text in a .jpg\n", "not an image"),
        (jpeg_bytes()[:300], "truncated"),
        (png_claiming(30000, 30000), "30000x30000"),
    ],
    ids=["zero-bytes", "text", "truncated-jpeg", "png-bomb"],
)
def test_bad_files_are_refused_with_a_clear_reason(data, phrase):
    with pytest.raises(ImageRejected, match=phrase):
        decode(data, LIMITS)


def test_byte_and_pixel_limits_are_settings():
    data = jpeg_bytes((64, 48))
    with pytest.raises(ImageRejected, match="above the limit"):
        decode(data, DecodeSettings(max_pixels=1000))
    with pytest.raises(ImageRejected, match="bytes, above the limit"):
        decode(data, DecodeSettings(max_bytes=100))
