"""Broken and hostile video files, made on the spot with PyAV from one real face photo.

Each is a `Case` of tests/badfiles.py: what the pipeline must make of it. They join the
hostile corpus (badfiles.hostile_corpus), so ingest, the fuzzer and the corpus script
see them beside the broken images.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("SVT_LOG", "1")

FACES, DECODED, ERROR, EITHER = "faces", "decoded", "error", "either"


def _encode(
    path: Path, frames: list[np.ndarray], codec: str = "libx264", fps: int = 10,
    fmt: str | None = None, options: dict | None = None, container_options: dict | None = None,
    rate=None,
) -> bytes:  # fmt: skip
    import av

    height, width = frames[0].shape[:2] if frames else (120, 160)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate or fps, options=options or {})
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for n, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24")
            frame.pts = n
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def face_frames(face_bgr: np.ndarray, count: int, size: tuple[int, int] = (320, 240)) -> list:
    """`count` frames with the face drifting slowly across a grey background."""
    import cv2

    width, height = size
    side = min(width, height) * 3 // 4
    face = cv2.resize(face_bgr, (side, side))
    frames = []
    for n in range(count):
        frame = np.full((height, width, 3), 90, np.uint8)
        x = (width - side) // 2 + (n % 10) - 5
        y = (height - side) // 2
        frame[y : y + side, x : x + side] = face
        frames.append(frame)
    return frames


def _patch_mkv_duration(data: bytes, factor: float) -> bytes:
    """The Matroska file with its declared duration (Segment Info, ID 0x4489) scaled."""
    at = data.find(b"\x44\x89\x88")
    assert at > 0, "no 8-byte Duration element"
    (value,) = struct.unpack(">d", data[at + 3 : at + 11])
    return data[: at + 3] + struct.pack(">d", value * factor) + data[at + 11 :]


def hostile_videos(face_bgr: np.ndarray) -> list:
    from badfiles import Case, flip_bits

    cases: list[Case] = []
    frames = face_frames(face_bgr, 40)  # 4 s at 10 fps
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)

        def make(name: str, **kwargs) -> bytes:
            return _encode(tmp / name, kwargs.pop("frames", frames), **kwargs)

        mp4 = make("plain.mp4")
        faststart = make("fast.mp4", container_options={"movflags": "faststart"})
        mkv = make("plain.mkv")
        cases += [
            Case("video_plain.mp4", mp4, FACES),
            Case("video_plain.mkv", mkv, FACES),
            Case(
                "video_plain.webm",
                make(
                    "plain.webm",
                    codec="libvpx-vp9",
                    options={"deadline": "realtime", "cpu-used": "8"},
                ),
                FACES,
            ),
            Case("video_plain.avi", make("plain.avi", codec="mpeg4"), FACES),
            Case("video_empty.mp4", b"", ERROR, "empty file"),
            # moov written last: cutting the file loses the index of every frame.
            Case("video_truncated.mp4", mp4[: len(mp4) // 2], ERROR, "truncated"),
            # moov first: the header survives and declares 4 s the data no longer holds.
            Case(
                "video_truncated_faststart.mp4",
                faststart[: len(faststart) * 2 // 5],
                ERROR,
                "truncated",
            ),
            Case(
                "video_claims_longer.mkv",
                _patch_mkv_duration(mkv, 10.0),
                ERROR,
                "lies about its length",
            ),
            Case("video_claims_shorter.mkv", _patch_mkv_duration(mkv, 0.2), ERROR, "go on"),
            # Header and track, then the file ends before the first cluster of frames.
            Case("video_zero_frames.mkv", mkv[: mkv.find(b"\x1f\x43\xb6\x75")], ERROR, "truncated"),
            Case("video_audio_only.mp4", _audio_only(tmp / "audio.mp4"), ERROR, "audio-only"),
            Case(
                "video_ffv1.mkv", make("ffv1.mkv", codec="ffv1"), ERROR, "unsupported video codec"
            ),
            Case(
                "video_huge.mp4",
                make(
                    "huge.mp4",
                    frames=[np.zeros((2400, 4000, 3), np.uint8)],
                    options={"preset": "ultrafast"},
                ),
                ERROR,
                "megapixels",
            ),
            # A raw H.264 stream: no container, no duration, no end known in advance.
            Case("video_endless.mkv", make("raw.h264", fmt="h264"), ERROR, "no duration"),
            Case("video_looping.mp4", _looping(tmp, frames), ERROR, "timestamps go back"),
            # Thousands of frames a second: a decoder-spinning workload for the seconds.
            Case(
                "video_spin.mkv",
                make("spin.mkv", frames=frames[:20], rate=5000),
                ERROR,
                "frame rate",
            ),
            Case("video_text.mp4", b"not a video at all\n" * 100, ERROR, "not a video"),
        ]
        for seed in range(4):
            cases.append(Case(f"video_flipped_{seed}.mp4", flip_bits(faststart, 0.002, seed),
                              EITHER))  # fmt: skip
            cases.append(Case(f"video_flipped_{seed}.mkv", flip_bits(mkv, 0.002, seed + 10),
                              EITHER))  # fmt: skip
    return cases


def _audio_only(path: Path) -> bytes:
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for n in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, n * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def _looping(tmp: Path, frames: list[np.ndarray]) -> bytes:
    """The same MPEG-TS clip three times over: its timestamps start again twice."""
    one = _encode(tmp / "loop.ts", frames, fmt="mpegts")
    return one * 3
