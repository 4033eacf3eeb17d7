"""Coverage-guided fuzzing of decode → detect with atheris (libFuzzer), for a bounded time.

The fuzzer starts from the hostile corpus (tests/badfiles.py) and mutates it, following
coverage of Pillow's format parsers and our decoder (both instrumented). Every input must
either be refused with an `ImageRejected` or decode to pixels the detector runs on; any
other exception, a hang (over --input-timeout seconds) or memory over --rss-mb is a crash,
saved under the artifacts folder for a regression test.

    python bench/fuzz_decode.py --seconds 600          # writes bench/results/fuzz_decode.*
    python bench/fuzz_decode.py --seconds 40 --report /tmp/fuzz.json   # what CI runs

The decoder runs with a 4-megapixel limit here: the same code paths as the default
limit, with far more inputs per second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data"))
FACE = DATA / "lfw" / "images_deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
MAX_SEED_BYTES = 100_000
FUZZ_PIXELS = 4_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600, help="how long to fuzz")
    parser.add_argument("--report", type=Path, default=ROOT / "bench/results/fuzz_decode.json")
    parser.add_argument("--artifacts", type=Path, help="where crashing inputs go (default: tmp)")
    parser.add_argument("--input-timeout", type=int, default=20, help="seconds per input")
    parser.add_argument("--rss-mb", type=int, default=3072, help="memory limit of the fuzzer")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        fuzz(rest)
    else:
        report = run(args.seconds, args.artifacts, args.input_timeout, args.rss_mb)
        write_report(report, args.report)
        print(json.dumps(report, indent=1))
        sys.exit(0 if report["crashes"] == 0 else 1)


def run(seconds: int, artifacts: Path | None, input_timeout: int, rss_mb: int) -> dict:
    """Fuzz in a child process for `seconds`; the counts libFuzzer reports."""
    sys.path.insert(0, str(ROOT / "tests"))
    from badfiles import hostile_corpus

    with tempfile.TemporaryDirectory(prefix="fuzz-decode-") as tmp:
        seeds, work = Path(tmp, "seeds"), Path(tmp, "work")
        seeds.mkdir()
        work.mkdir()
        kept = [c for c in hostile_corpus(FACE.read_bytes()) if len(c.data) <= MAX_SEED_BYTES]
        for case in kept:
            (seeds / case.name).write_bytes(case.data)
        artifacts = artifacts or Path(tmp, "crashes")
        artifacts.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, __file__, "--child", str(work), str(seeds),
            f"-max_total_time={seconds}", f"-timeout={input_timeout}",
            f"-rss_limit_mb={rss_mb}", f"-max_len={MAX_SEED_BYTES}",
            f"-artifact_prefix={artifacts}/", "-print_final_stats=1", "-seed=1",
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
        elapsed = time.monotonic() - started
        log = done.stderr
        crashes = sorted(p.name for p in artifacts.iterdir())
        found = len(list(work.iterdir()))
    stats = {k: int(v) for k, v in re.findall(r"stat::(\w+):\s+(\d+)", log)}
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", log)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "seeds": len(kept),
        "inputs_executed": stats.get("number_of_executed_units", 0),
        "executions_per_second": stats.get("average_exec_per_sec", 0),
        "coverage_edges": int(coverage[-1][0]) if coverage else 0,
        "coverage_features": int(coverage[-1][1]) if coverage else 0,
        "corpus_grown_to": found,
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
        "exit_code": done.returncode,
        "crashes": len(crashes) + (done.returncode != 0 and not crashes),
        "crash_files": crashes,
        "command": f"python bench/fuzz_decode.py --seconds {seconds}",
    }
    if done.returncode != 0:
        report["log_tail"] = log[-4000:]
    return report


def write_report(report: dict, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=1) + "\n")


def fuzz(libfuzzer_args: list[str]) -> None:
    import atheris
    import cv2
    import numpy  # noqa: F401  (not instrumented: too slow, and not ours to fuzz)

    with atheris.instrument_imports(include=["PIL", "facesearch.pipeline.decode"]):
        # Pillow imports its format plugins on first use: import them here to instrument them.
        from PIL import (  # noqa: F401
            BmpImagePlugin,
            GifImagePlugin,
            Image,
            ImageFile,
            JpegImagePlugin,
            MpoImagePlugin,
            PngImagePlugin,
            PpmImagePlugin,
            TiffImagePlugin,
            WebPImagePlugin,
        )

        from facesearch.config import DecodeSettings, Settings
        from facesearch.errors import ImageRejected
        from facesearch.models.cache import ModelCache
        from facesearch.models.registry import get as get_model
        from facesearch.pipeline.decode import decode
        from facesearch.pipeline.detect import Detector

    Image.init()
    cv2.setNumThreads(1)
    settings = Settings()
    detector = Detector(
        ModelCache(settings.models_dir).ensure(get_model(settings.detector)), settings.detect
    )
    limits = DecodeSettings(max_pixels=FUZZ_PIXELS)

    def one_input(data: bytes) -> None:
        try:
            image = decode(data, limits)
        except ImageRejected:
            return
        detector.detect(image.pixels)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
