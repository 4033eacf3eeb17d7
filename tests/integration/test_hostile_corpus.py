"""The hostile corpus (tests/badfiles.py) through the real pipeline: every file yields faces
or a recorded, clear error; nothing crashes, hangs or takes memory beyond the pixel limit."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from badfiles import (
    CLEAR_ERRORS,
    EITHER,
    ERROR,
    FACES,
    Case,
    hostile_corpus,
    write_corpus,
)

from facesearch.pipeline.decode import decode

FACE = ("Aaron_Eckhart", "Aaron_Eckhart_0001.jpg")


@pytest.fixture(scope="module")
def corpus(lfw: Path, tmp_path_factory) -> tuple[Path, list[Case]]:
    cases = hostile_corpus(lfw.joinpath(*FACE).read_bytes())
    folder = tmp_path_factory.mktemp("hostile")
    write_corpus(folder, cases)
    return folder, cases


def is_clear(reason: str) -> bool:
    return reason.startswith(CLEAR_ERRORS) and "Traceback" not in reason


def check_outcome(case: Case, faces: int | None, reason: str | None) -> None:
    """`faces` is the face count of a decoded file, `reason` the error of a refused one."""
    if reason is not None:
        assert is_clear(reason), (case.name, reason)
        assert case.expect in (ERROR, EITHER), (case.name, reason)
        assert case.phrase in reason, (case.name, reason)
        return
    assert case.expect != ERROR, f"{case.name} should have been refused"
    if case.expect == FACES:
        assert faces, f"no face found in {case.name}"


def test_every_file_yields_faces_or_a_clear_recorded_error(engine, corpus):
    folder, cases = corpus
    engine.create_collection("hostile", "hostile corpus", "test")
    report = engine.ingest([folder], "hostile")
    conn = sqlite3.connect(engine.settings.catalog_path)
    faces = {Path(p).name: n for p, n in conn.execute("SELECT path, face_count FROM images")}
    errors = {Path(p).name: r for p, r in conn.execute("SELECT path, reason FROM ingest_errors")}
    conn.close()
    assert faces.keys().isdisjoint(errors)
    assert faces.keys() | errors.keys() == {c.name for c in cases}
    assert (report.images, report.errors) == (len(faces), len(errors))
    for case in cases:
        check_outcome(case, faces.get(case.name), errors.get(case.name))
    # The corpus really does test both sides.
    assert len(errors) >= 40 and sum(1 for n in faces.values() if n) >= 70


def test_every_exif_orientation_comes_out_upright(analyzer, corpus):
    folder, cases = corpus
    limits = analyzer.settings.decode
    (reference,) = analyzer.faces(decode((folder / "plain.png").read_bytes(), limits).pixels)
    oriented = [c for c in cases if c.orientation]
    assert sorted({c.orientation for c in oriented}) == list(range(1, 9))
    for case in oriented:
        image = decode(case.data, limits)
        assert (image.width, image.height) == (250, 250)
        found = analyzer.faces(image.pixels)
        assert len(found) == 1, case.name
        box = np.array(found[0].detection.box)
        assert np.abs(box - np.array(reference.detection.box)).max() < 6, (case.name, box)
        eyes, nose, mouth = np.split(found[0].detection.landmarks, [2, 3])
        # Upright: eyes above the nose above the mouth, the right eye (in the image) left.
        assert eyes[:, 1].max() < nose[0, 1] < mouth[:, 1].min(), case.name
        assert eyes[0, 0] < eyes[1, 0], case.name
        assert float(found[0].embedding @ reference.embedding) > 0.8, case.name


# Decodes every file of the corpus under an address-space limit of what the interpreter
# already holds plus BYTES_PER_PIXEL for each pixel the limit allows; reports each outcome.
BOUNDED_DECODE = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from facesearch.config import DecodeSettings
    from facesearch.errors import ImageRejected
    from facesearch.pipeline.decode import decode

    folder, max_pixels, per_pixel = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    decode(Path(folder, "plain.jpg").read_bytes(), DecodeSettings())  # warm up
    held = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    limit = held + int(per_pixel * max_pixels)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    for path in sorted(p for p in folder.iterdir()):
        start = time.perf_counter()
        try:
            image = decode(path.read_bytes(), DecodeSettings(max_pixels=max_pixels))
            outcome = f"{image.width}x{image.height}"
            del image
        except ImageRejected as exc:
            outcome = "refused: " + str(exc)
        out[path.name] = [outcome, time.perf_counter() - start]
    print(json.dumps(out))
    """
)
BYTES_PER_PIXEL = 8


def test_decoding_is_bounded_in_memory_and_time(corpus):
    folder, cases = corpus
    max_pixels = 120_000_000
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED_DECODE, str(folder), str(max_pixels), str(BYTES_PER_PIXEL)],
        capture_output=True, text=True, timeout=300,
        env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", **_pythonpath()},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout)
    assert outcomes.keys() == {c.name for c in cases}
    for name, (outcome, seconds) in outcomes.items():
        assert "memory" not in outcome, (name, outcome)
        # A hang guard, not a speed test: the slowest file (100 megapixels) takes about 6 s.
        assert seconds < 60, (name, seconds)
    assert outcomes["bomb_allowed.png"][0] == "10000x10000"


def _pythonpath() -> dict[str, str]:
    import os

    return {"PYTHONPATH": os.environ["PYTHONPATH"]}
