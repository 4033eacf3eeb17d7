"""A short run of the decode → detect fuzzer (bench/fuzz_decode.py): no input may raise
anything but the decoder's clear refusal, hang or run out of memory."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_fuzz_run_finds_no_crash(lfw, cache_dir, tmp_path):
    pytest.importorskip("atheris")
    report_path = tmp_path / "fuzz.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/fuzz_decode.py"), "--seconds", "25",
         "--report", str(report_path), "--artifacts", str(tmp_path / "crashes")],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = json.loads(report_path.read_text())
    assert done.returncode == 0 and report["crashes"] == 0, (
        report.get("crash_files"),
        report.get("log_tail"),
        done.stderr[-2000:],
    )
    # It really fuzzed: the seeds ran and mutations beyond them were executed.
    assert report["inputs_executed"] > report["seeds"] > 100
    assert report["coverage_edges"] > 500
