import io

import numpy as np
import pytest
from badfiles import jpeg_bytes, jpeg_scan_bomb, png_claiming
from PIL import Image

from facesearch.config import DecodeSettings
from facesearch.errors import ImageRejected
from facesearch.pipeline.decode import MAX_JPEG_SCANS, decode, jpeg_scans

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


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_turns_the_pixels_as_pillow_does(orientation):
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(_marked_rgb(), "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode(data, LIMITS).pixels, expected[:, :, ::-1])


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_an_invalid_orientation_keeps_the_pixels_as_stored(value):
    exif = Image.Exif()
    exif[0x0112] = value
    data = _encode(_marked_rgb(), "PNG", exif=exif.tobytes())
    assert decode(data, LIMITS).pixels.shape == (20, 40, 3)


def test_jpeg_scans_are_counted_by_segment():
    progressive = _encode(_marked_rgb(), "JPEG", progressive=True)
    assert jpeg_scans(_encode(_marked_rgb(), "JPEG"), stop=100) == 1
    assert 2 < jpeg_scans(progressive, stop=100) < 20
    # Marker bytes inside an EXIF blob are not scans.
    blob = b"Exif\x00\x00" + b"\xff\xda\x00\x08" * 1000
    assert jpeg_scans(_encode(_marked_rgb(), "JPEG", exif=blob), stop=100) == 1


def test_a_scan_bomb_is_refused_before_decoding():
    with pytest.raises(ImageRejected, match="too many progressive scans"):
        decode(jpeg_scan_bomb(MAX_JPEG_SCANS + 1, size=64), LIMITS)
    decode(jpeg_scan_bomb(MAX_JPEG_SCANS - 20, size=64), LIMITS)


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "TGA", "SGI"])
def test_formats_outside_the_list_are_never_parsed(fmt):
    data = _encode(_marked_rgb(), fmt)
    with pytest.raises(ImageRejected, match="not an image in a supported format"):
        decode(data, LIMITS)


def test_wide_modes_are_scaled_from_their_own_range():
    values = np.linspace(-50_000, 150_000, 20 * 40).reshape(20, 40).astype(np.int32)
    pixels = decode(_encode(Image.fromarray(values), "TIFF"), LIMITS).pixels
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255
    assert (np.diff(pixels[:, :, 0].ravel().astype(int)) >= 0).all()
    floats = Image.fromarray(np.array([[np.nan, np.inf], [0.0, 1.0]], np.float32))
    assert decode(_encode(floats, "TIFF"), LIMITS).pixels.shape == (2, 2, 3)


def test_a_tall_image_converts_strip_by_strip():
    array = np.random.default_rng(3).integers(0, 255, (3000, 700, 3), dtype=np.uint8)
    pixels = decode(_encode(Image.fromarray(array), "PNG"), LIMITS).pixels
    assert np.array_equal(pixels, array[:, :, ::-1])
