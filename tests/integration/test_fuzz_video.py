"""Mutation fuzzing of the video container and decoder path (pipeline/video.py): valid clips
in four containers, damaged at random (bit flips, cuts, dropped and repeated chunks, bytes
overwritten where containers keep their headers and indexes), then probed and sampled to
the end. Every input must decode or be refused with a clear `VideoRejected`, and none may
take longer than its time budget. The plan comes from a seed that is printed."""

from __future__ import annotations

import os
import random
import secrets
import time
from pathlib import Path

import cv2
import pytest
from badfiles import CLEAR_ERRORS, flip_bits
from badvideos import FACES, hostile_videos

from facesearch.config import VideoSettings
from facesearch.errors import VideoRejected
from facesearch.pipeline import video

MUTATIONS_PER_SEED = 100
# A tight budget, so that a file that makes the decoder spin is refused within the test.
SETTINGS = VideoSettings(budget_base_s=5, budget_per_video_s=1)


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(("flip", "cut", "drop", "repeat", "header"))
    if kind == "flip":
        return flip_bits(data, rng.choice((0.0005, 0.002, 0.01)), rng.randrange(2**31))
    if kind == "cut":
        return data[: rng.randrange(1, len(data))]
    at, size = rng.randrange(len(data)), rng.randrange(1, 4096)
    if kind == "drop":
        return data[:at] + data[at + size :]
    if kind == "repeat":
        return data[: at + size] + data[at : at + size] + data[at + size :]
    out = bytearray(data)  # header: where moov, EBML and RIFF headers and indexes live
    for _ in range(rng.randrange(1, 8)):
        spot = rng.randrange(min(len(out), 4096))
        out[spot : spot + 4] = rng.randbytes(4)
    return bytes(out[: len(data)])


def run_one(path: Path) -> tuple[str, int]:
    """('decoded', frames) or ('refused', 0); anything else raised is a failure."""
    info = video.probe(path, SETTINGS)
    frames = 0
    for start, end in video.segments(info, SETTINGS):
        for _ in video.sample(path, SETTINGS, start, end):
            frames += 1
    return "decoded", frames


@pytest.mark.slow
def test_damaged_videos_decode_or_are_refused_clearly_within_their_budget(lfw, tmp_path):
    seed = int(os.environ.get("FACESEARCH_FUZZ_SEED") or secrets.randbelow(2**31))
    print(f"video fuzz seed {seed} (rerun it with FACESEARCH_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    face = cv2.imread(str(lfw / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"))
    seeds = [c for c in hostile_videos(face) if c.expect == FACES]
    assert {Path(c.name).suffix for c in seeds} == {".mp4", ".mkv", ".webm", ".avi"}
    outcomes: dict[str, int] = {"decoded": 0, "refused": 0}
    for case in seeds:
        for n in range(MUTATIONS_PER_SEED):
            path = tmp_path / f"{n}-{case.name}"
            path.write_bytes(mutate(case.data, rng))
            started = time.monotonic()
            try:
                outcome, _ = run_one(path)
            except VideoRejected as exc:
                outcome = "refused"
                assert str(exc).startswith(CLEAR_ERRORS), (path.name, str(exc))
            elapsed = time.monotonic() - started
            # Probing and sampling each have their budget; a 4 s clip is one segment.
            budget = 2 * SETTINGS.budget_base_s + SETTINGS.budget_per_video_s * 60
            assert elapsed < budget, (path.name, elapsed)
            outcomes[outcome] += 1
            path.unlink()
    print(outcomes)
    # Both sides were exercised: damage that decoding survives, and damage it refuses.
    assert outcomes["decoded"] > 0 and outcomes["refused"] > 0
