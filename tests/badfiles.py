"""Broken and hostile files of the kinds an archive or an upload really holds, made on the spot.

`hostile_corpus(face_jpeg)` builds the whole corpus from one real face photo: truncated and
bit-flipped files of every format, pixel bombs by header and by content, polyglots, wrong
extensions, unusual pixel modes, animations and every EXIF orientation. Each `Case` says what
the pipeline must make of it. scripts/hostile_corpus.py writes it to a folder; the fuzzer
(bench/fuzz_decode.py) starts from it.
"""

from __future__ import annotations

import io
import random
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# What a file must come to. FACES: decoded with at least one face found. DECODED: decoded
# (a face is not expected, or may be lost to the damage). ERROR: refused with a clear error.
# EITHER: decoded or refused with a clear error, whichever the damage leads to.
FACES, DECODED, ERROR, EITHER = "faces", "decoded", "error", "either"

# Every refusal of the decoder starts with one of these; anything else is not a clear error.
CLEAR_ERRORS = (
    "empty file",
    "not an image",
    "unsupported",
    "corrupt or truncated",
    "image claims",
    "file is",
    "image has no pixels",
    "too many",
    "not enough memory",
    # Videos (facesearch.pipeline.video)
    "not a video",
    "not a regular file",
    "cannot read file",
    "no video stream",
    "video is",
    "video frames are",
    "video has no pixels",
    "zero-frame",
    "corrupt",
    "truncated",
    "frame rate",
    "the container declares",
    "the stream goes on",
    "the frames go on",
    "timestamps go back",
    "decoding took longer",
    "reading the file took longer",
    "a frame is",
)

EXIF_ORIENTATION = 0x0112
EXIF_IFD = 0x8769
# Pillow's method for each EXIF orientation, applied to the stored pixels to show them
# upright; the inverse (applied to an upright image) is what a camera stores.
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
STORED = {**UPRIGHT, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class Case:
    name: str  # file name, extension included
    data: bytes
    expect: str  # FACES, DECODED, ERROR or EITHER
    phrase: str = ""  # for ERROR: a phrase the error must contain
    orientation: int = 0  # EXIF orientation the file carries, 0 for none


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image followed by almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return _png([(b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 64))])


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


def write_corpus(folder: Path, cases: list[Case]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = folder / case.name
        path.write_bytes(case.data)
        paths.append(path)
    return paths


def hostile_corpus(face_jpeg: bytes) -> list[Case]:
    """Every case, built from one real photo with a face (any format Pillow reads)."""
    face = Image.open(io.BytesIO(face_jpeg)).convert("RGB")
    cases: list[Case] = []
    for make in GENERATORS.values():
        cases += make(face)
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    # Ingest skips content it has seen, so every case must differ from every other.
    assert len({c.data for c in cases}) == len(cases), "case contents must be unique"
    return cases


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


ENCODINGS: dict[str, tuple[str, str, dict]] = {
    "jpeg": ("jpg", "JPEG", {"quality": 90}),
    "png": ("png", "PNG", {}),
    "webp": ("webp", "WEBP", {"quality": 90}),
    "tiff": ("tif", "TIFF", {"compression": "tiff_deflate"}),
    "gif": ("gif", "GIF", {}),
}


def _formats(face: Image.Image) -> list[Case]:
    cases = [
        Case(f"plain.{ext}", encode(face, fmt, **options), FACES)
        for ext, fmt, options in ENCODINGS.values()
    ]
    cases.append(Case("plain.bmp", encode(face, "BMP"), FACES))
    cases.append(Case("plain.ppm", encode(face, "PPM"), FACES))
    cases.append(Case("progressive.jpg", encode(face, "JPEG", progressive=True), FACES))
    cases.append(Case("plain_lossless.webp", encode(face, "WEBP", lossless=True), FACES))
    cases.append(Case("tiff_lzw.tif", encode(face, "TIFF", compression="tiff_lzw"), FACES))
    cases.append(Case("tiff_jpeg.tif", encode(face, "TIFF", compression="jpeg"), FACES))
    return cases


def _damaged(face: Image.Image) -> list[Case]:
    """Truncated and bit-flipped copies of the face in every format."""
    cases = []
    for kind, (ext, fmt, options) in ENCODINGS.items():
        data = encode(face, fmt, **options)
        for fraction in (0.02, 0.3, 0.6, 0.95):
            cut = data[: max(1, int(len(data) * fraction))]
            cases.append(Case(f"truncated_{int(fraction * 100):02d}_{kind}.{ext}", cut, EITHER))
        for seed, (rate, header_only) in enumerate(
            [(1e-4, False), (1e-3, False), (1e-2, False), (0.02, True), (0.05, True)]
        ):
            flipped = flip_bits(data, rate, seed, header_only)
            cases.append(Case(f"flipped_{seed}_{kind}.{ext}", flipped, EITHER))
    # Cut in the middle of the entropy-coded data or of the pixel stream: must say so.
    jpeg = encode(face, "JPEG", quality=90)
    cases.append(Case("truncated_half.jpg", jpeg[: len(jpeg) // 2], ERROR, "truncated"))
    png = encode(face, "PNG")
    cases.append(Case("truncated_half.png", png[: len(png) // 2], ERROR, "truncated"))
    cases.append(Case("header_only.jpg", jpeg[:2], ERROR))
    return cases


def flip_bits(data: bytes, rate: float, seed: int, header_only: bool = False) -> bytes:
    """`data` with about `rate` of its bits flipped (in the first 256 bytes if `header_only`)."""
    rng = random.Random(seed)
    out = bytearray(data)
    span = min(len(out), 256) if header_only else len(out)
    for _ in range(max(1, int(span * 8 * rate))):
        at = rng.randrange(span)
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def _bombs(face: Image.Image) -> list[Case]:
    """Files whose header claims gigapixels (with or without the data to back it)."""
    tiny = Image.new("RGB", (8, 8), (200, 100, 50))
    refused = "image claims"
    return [
        Case("bomb_header.png", png_claiming(30000, 30000), ERROR, refused),
        Case("bomb_header_tall.png", png_claiming(1, 2**31 - 1), ERROR, refused),
        Case("bomb_header.jpg", jpeg_claiming(encode(tiny, "JPEG"), 65500, 65500), ERROR, refused),
        Case("bomb_header.gif", gif_claiming(encode(tiny, "GIF"), 65535, 65535), ERROR, refused),
        Case("bomb_header.tif", tiff_claiming(100_000, 100_000), ERROR, refused),
        Case("bomb_header.webp", webp_claiming(16384, 16384), ERROR, refused),
        Case("bomb_header.bmp", bmp_claiming(encode(tiny, "BMP"), 60000, 60000), ERROR, refused),
        Case("bomb_header.ppm", b"P6\n100000 100000\n255\n" + b"\x00" * 300, ERROR, refused),
        # A real 2.5-gigapixel bilevel PNG: every row is there, compressed about 1000:1.
        Case("bomb_content.png", png_bilevel_zeros(50_000, 50_000), ERROR, refused),
        # Inside the default limit and honest: 100 megapixels from a 13 kB file.
        Case("bomb_allowed.png", png_bilevel_zeros(10_000, 10_000), DECODED),
        # Text chunks that inflate to a gigabyte; Pillow caps them, pixels still decode.
        Case("bomb_ztxt.png", png_with_chunks(face, [_ztxt_bomb(1 << 30)]), EITHER),
        Case(
            "huge_text.png", png_with_chunks(face, [(b"tEXt", b"k\x00" + b"x" * 8_000_000)]), EITHER
        ),
        # 125 kB, 1000 progressive scans over 16 megapixels: 20 s of decoding if let through.
        Case("scan_bomb.jpg", jpeg_scan_bomb(1000), ERROR, "too many"),
    ]


def _odd_shapes(face: Image.Image) -> list[Case]:
    strip = Image.new("RGB", (100_000, 1), (128, 128, 128))
    wide = Image.new("RGB", (100_000, 64), (90, 90, 90))
    wide.paste(face.resize((64, 64)), (50_000, 0))
    return [
        Case("one_pixel.png", encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), DECODED),
        Case("one_pixel.jpg", encode(Image.new("RGB", (1, 1), (9, 9, 9)), "JPEG"), DECODED),
        Case("one_pixel.gif", encode(Image.new("P", (1, 1)), "GIF"), DECODED),
        Case("strip_100000x1.png", encode(strip, "PNG"), DECODED),
        Case("strip_1x100000.png", encode(strip.rotate(90, expand=True), "PNG"), DECODED),
        Case("strip_100000x64.png", encode(wide, "PNG"), DECODED),
        Case("zero.jpg", b"", ERROR, "empty file"),
        Case("zero_width.png", png_claiming(0, 100), ERROR),
        Case("text.jpg", b"this is not an image, just some words\n" * 20, ERROR, "not an image"),
        Case("nul.png", b"\x00" * 4096, ERROR, "not an image"),
    ]


def _polyglots(face: Image.Image) -> list[Case]:
    jpeg = encode(face, "JPEG", quality=90)
    png = encode(face, "PNG")
    zip_tail = _zip_with("payload.html", b"<script>alert(1)</script>")
    return [
        Case("jpeg_plus_zip.jpg", jpeg + zip_tail, FACES),
        Case("png_plus_html.png", png + b"<html><script>alert(1)</script></html>", FACES),
        Case("jpeg_plus_png.jpg", jpeg + png, FACES),
        Case("gif_javascript.gif", b"GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;alert(1);//", EITHER),
        Case(
            "html_as_image.png",
            b"<!DOCTYPE html><html><img src=x onerror=alert(1)></html>",
            ERROR,
            "not an image",
        ),
        Case(
            "svg.png",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            ERROR,
            "not an image",
        ),
        Case(
            "pdf.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", ERROR, "not an image"
        ),
        Case("zip.jpg", zip_tail, ERROR, "not an image"),
        # Wrong extensions: the content decides.
        Case("png_named.jpg", encode(face, "PNG", compress_level=1), FACES),
        Case("jpeg_named.png", encode(face, "JPEG", quality=85), FACES),
        Case("webp_named.gif", encode(face, "WEBP"), FACES),
        Case("tiff_named.jpeg", encode(face, "TIFF"), FACES),
        Case("gif_named.webp", encode(face.resize((240, 240)), "GIF"), FACES),
    ]


def _modes(face: Image.Image) -> list[Case]:
    gray = face.convert("L")
    rgba = face.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(face.size))
    wide16 = np.asarray(gray, np.uint16) * 257
    floats = np.asarray(gray, np.float32) / 255.0
    return [
        Case("gray.jpg", encode(gray, "JPEG"), FACES),
        Case("gray.png", encode(gray, "PNG"), FACES),
        Case("bilevel.png", encode(face.convert("1"), "PNG"), EITHER),
        Case("cmyk.jpg", encode(face.convert("CMYK"), "JPEG"), FACES),
        Case("cmyk.tif", encode(face.convert("CMYK"), "TIFF"), FACES),
        Case("lab.tif", encode(face.convert("LAB"), "TIFF"), FACES),
        Case("ycbcr.tif", encode(face.convert("YCbCr"), "TIFF"), EITHER),
        Case("gray16.png", encode(Image.fromarray(wide16), "PNG"), FACES),
        Case("gray16.tif", encode(Image.fromarray(wide16), "TIFF"), FACES),
        Case("rgb16.png", png_rgb16(face), FACES),
        Case("float32.tif", encode(Image.fromarray(floats), "TIFF"), FACES),
        Case(
            "int32_negative.tif",
            encode(Image.fromarray(np.asarray(gray, np.int32) * 1000 - 100_000), "TIFF"),
            FACES,
        ),
        Case("alpha.png", encode(rgba, "PNG"), FACES),
        Case("alpha.webp", encode(rgba, "WEBP"), FACES),
        Case("gray_alpha.png", encode(gray.convert("LA"), "PNG"), FACES),
        Case("palette_transparent.png", encode(face.convert("P"), "PNG", transparency=0), FACES),
        Case(
            "fully_transparent.png",
            encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "PNG"),
            DECODED,
        ),
    ]


def _animations(face: Image.Image) -> list[Case]:
    blank = Image.new("RGB", face.size, (0, 0, 0))
    frames = [face, blank, face.transpose(Image.Transpose.ROTATE_90)]
    many = [Image.new("P", (16, 16), i % 256) for i in range(2000)]
    return [
        Case(
            "animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:]), FACES
        ),
        Case(
            "animated.webp",
            encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
            FACES,
        ),
        Case(
            "animated.png", encode(frames[0], "PNG", save_all=True, append_images=frames[1:]), FACES
        ),
        Case(
            "multipage.tif",
            encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
            FACES,
        ),
        Case("mpo.jpg", encode(frames[0], "MPO", save_all=True, append_images=frames[1:2]), FACES),
        # The first frame is blank; the face is in the second.
        Case(
            "blank_first_frame.gif",
            encode(blank, "GIF", save_all=True, append_images=[face]),
            DECODED,
        ),
        Case(
            "2000_frames.gif",
            encode(many[0], "GIF", save_all=True, append_images=many[1:]),
            DECODED,
        ),
    ]


def _orientations(face: Image.Image) -> list[Case]:
    """The face stored as a camera held each way would store it, with the EXIF tag saying so."""
    cases = []
    for orientation in range(1, 9):
        stored = face.transpose(STORED[orientation]) if orientation in STORED else face
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = orientation
        for ext, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")):
            data = encode(stored, fmt, exif=exif.tobytes())
            cases.append(Case(f"orientation_{orientation}.{ext}", data, FACES, "", orientation))
    return cases


def _bad_exif(face: Image.Image) -> list[Case]:
    """EXIF that lies, loops, overflows or is not EXIF at all: the pixels still count."""
    cases = []
    for name, blob in _malformed_exif_blobs().items():
        data = encode(face, "JPEG", exif=blob)
        cases.append(Case(f"exif_{name}.jpg", data, FACES))
    # Huge EXIF: a JPEG segment holds at most 64 kB; many segments, and a 16 MB PNG eXIf chunk.
    jpeg = encode(face, "JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", 65535) + b"Exif\x00\x00" + b"\xa5" * 65527
    cases.append(Case("exif_200_segments.jpg", jpeg[:2] + segment * 200 + jpeg[2:], FACES))
    big = _exif_header(b"II") + b"\x5a" * (16 << 20)
    cases.append(Case("exif_16mb.png", png_with_chunks(face, [(b"eXIf", big)]), FACES))
    cases.append(Case("exif_16mb.webp", encode(face, "WEBP", exif=big), FACES))
    return cases


def _malformed_exif_blobs() -> dict[str, bytes]:
    def tiff_ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
        body = struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
        return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", next_ifd)

    short = 3
    return {
        "orientation_0": b"Exif\x00\x00" + tiff_ifd([(EXIF_ORIENTATION, short, 1, b"\x00\x00")]),
        "orientation_9": b"Exif\x00\x00" + tiff_ifd([(EXIF_ORIENTATION, short, 1, b"\x09\x00")]),
        "orientation_65535": b"Exif\x00\x00"
        + tiff_ifd([(EXIF_ORIENTATION, short, 1, b"\xff\xff")]),
        "orientation_as_text": b"Exif\x00\x00" + tiff_ifd([(EXIF_ORIENTATION, 2, 4, b"six\x00")]),
        "orientation_count_huge": b"Exif\x00\x00"
        + tiff_ifd([(EXIF_ORIENTATION, short, 0x7FFFFFFF, struct.pack("<I", 8))]),
        "ifd_loop": b"Exif\x00\x00" + tiff_ifd([(EXIF_IFD, 4, 1, struct.pack("<I", 8))], 8),
        "ifd_past_end": b"Exif\x00\x00" + tiff_ifd([(EXIF_IFD, 4, 1, b"\xff\xff\xff\x7f")]),
        "entries_past_end": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff",
        "bad_byte_order": b"Exif\x00\x00XX*\x00\x08\x00\x00\x00",
        "truncated": b"Exif\x00\x00II*",
        "not_tiff": b"Exif\x00\x00" + b"\x00" * 64,
        "bad_date": b"Exif\x00\x00"
        + tiff_ifd([(EXIF_IFD, 4, 1, struct.pack("<I", 26))])
        + struct.pack("<H", 1) + struct.pack("<HHI", 0x9003, 2, 20) + struct.pack("<I", 44)
        + b"\x00\x00\x00\x00" + b"9999:99:99 99:99:9\xff\x00",
    }  # fmt: skip


def _unsupported(face: Image.Image) -> list[Case]:
    small = face.resize((64, 64))
    return [
        # Formats Pillow could parse but the pipeline does not take: refused unparsed.
        Case("icon.png", encode(small, "ICO"), ERROR, "not an image"),
        Case("photoshop.jpg", _psd_header(), ERROR, "not an image"),
        Case(
            "postscript.jpg",
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
            ERROR,
            "not an image",
        ),
        Case("pcx.png", encode(small, "PCX"), ERROR, "not an image"),
        Case("tga.png", encode(small, "TGA"), ERROR, "not an image"),
    ]


# --- format builders ------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )  # fmt: skip


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(k, b) for k, b in chunks) + _chunk(b"IEND", b"")


def png_bilevel_zeros(width: int, height: int) -> bytes:
    """An honest 1-bit PNG of `width` x `height` black pixels, compressed about 1000:1."""
    row = b"\x00" * (1 + (width + 7) // 8)
    rows_per_block = max(1, (1 << 20) // len(row))
    blocks, rest = divmod(height, rows_per_block)
    return _png([
        (b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)),
        (b"IDAT", _deflate_repeated(row * rows_per_block, blocks, row * rest)),
    ])  # fmt: skip


def _deflate_repeated(block: bytes, times: int, tail: bytes = b"") -> bytes:
    """zlib data of `block` * `times` + `tail`, compressing `block` only once: after a full
    flush the compressor starts afresh, so each repetition compresses to the same bytes."""
    compressor = zlib.compressobj(9)
    head = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = zlib.compressobj(9)
    repeat = (again.compress(block) + again.flush(zlib.Z_FULL_FLUSH))[2:]  # no zlib header
    body = head + repeat * (times - 1) if times else b""
    final = zlib.compressobj(9)
    ending = final.compress(tail) + final.flush(zlib.Z_FINISH)
    body = body + ending[2:-4] if times else ending[:-4]
    checksum = 1
    for _ in range(times):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(tail, checksum)
    return body + struct.pack(">I", checksum)


def png_with_chunks(image: Image.Image, extra: list[tuple[bytes, bytes]]) -> bytes:
    """`image` as a PNG with `extra` chunks inserted right after IHDR."""
    data = encode(image, "PNG")
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + b"".join(_chunk(k, b) for k, b in extra) + data[ihdr_end:]


def _ztxt_bomb(size: int) -> tuple[bytes, bytes]:
    return b"zTXt", b"Comment\x00\x00" + _deflate_repeated(b"\x00" * (1 << 20), size >> 20)


def png_rgb16(image: Image.Image) -> bytes:
    """`image` as a 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    wide = np.asarray(image, np.uint16) * 257
    height, width = wide.shape[:2]
    rows = b"".join(b"\x00" + wide[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return _png([(b"IHDR", header), (b"IDAT", zlib.compress(rows))])


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with its frame header (SOFn) patched to claim `width` x `height`."""
    at = 2
    while at < len(jpeg):
        marker, length = jpeg[at + 1], struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
        at += 2 + length
    raise ValueError("no frame header")


def jpeg_scan_bomb(scans: int, size: int = 4000) -> bytes:
    """A flat progressive JPEG with its shortest scan repeated `scans` times: each copy is a
    few bytes, and libjpeg makes a pass over the whole image for each."""
    data = encode(Image.new("RGB", (size, size), (128, 128, 128)), "JPEG", progressive=True)
    starts = [m.start() for m in re.finditer(rb"\xff\xda", data)]
    spans = list(zip(starts, [*starts[1:], data.rindex(b"\xff\xd9")], strict=True))
    start, end = min(spans[1:], key=lambda span: span[1] - span[0])
    return data[:end] + data[start:end] * scans + data[end:]


def gif_claiming(gif: bytes, width: int, height: int) -> bytes:
    """`gif` with its logical screen and first image descriptor claiming `width` x `height`."""
    size = struct.pack("<HH", width, height)
    out = bytearray(gif[:6] + size + gif[10:])
    flags = out[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while out[at] == 0x21:  # skip extensions
        at += 2
        while out[at]:
            at += out[at] + 1
        at += 1
    out[at + 5 : at + 9] = size
    return bytes(out)


def tiff_claiming(width: int, height: int) -> bytes:
    """A little-endian 8-bit grey TIFF claiming `width` x `height` with one tiny strip."""
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
        (262, 3, 1, 1), (273, 4, 1, 200), (277, 3, 1, 1), (278, 4, 1, height),
        (279, 4, 1, 16),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    head = b"II*\x00" + struct.pack("<I", 8) + ifd
    return head.ljust(200, b"\x00") + b"\x80" * 16


def webp_claiming(width: int, height: int) -> bytes:
    """An animated WebP whose canvas claims `width` x `height`, holding one 1x1 frame."""
    lossless = encode(Image.new("RGB", (1, 1)), "WEBP", lossless=True)
    frame = lossless[12:]  # the VP8L chunk

    def chunk(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) % 2)

    def u24(value: int) -> bytes:
        return value.to_bytes(3, "little")

    canvas = b"\x02\x00\x00\x00" + u24(width - 1) + u24(height - 1)  # flag: animation
    anmf = u24(0) + u24(0) + u24(0) + u24(0) + u24(100) + b"\x00" + frame
    body = b"WEBP" + chunk(b"VP8X", canvas) + chunk(b"ANIM", b"\x00" * 6) + chunk(b"ANMF", anmf)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bmp_claiming(bmp: bytes, width: int, height: int) -> bytes:
    return bmp[:18] + struct.pack("<ii", width, height) + bmp[26:]


def _exif_header(order: bytes) -> bytes:
    return order + (b"*\x00\x08\x00\x00\x00" if order == b"II" else b"\x00*\x00\x00\x00\x08")


def _zip_with(name: str, content: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def _psd_header() -> bytes:
    return b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 64, 64, 8, 3) + b"\x00" * 64


# Each family of cases by name, in the order the corpus lists them.
GENERATORS: dict[str, Callable[[Image.Image], list[Case]]] = {
    "formats": _formats, "damaged": _damaged, "bombs": _bombs, "odd_shapes": _odd_shapes,
    "polyglots": _polyglots, "modes": _modes, "animations": _animations,
    "orientations": _orientations, "bad_exif": _bad_exif, "unsupported": _unsupported,
}  # fmt: skip
