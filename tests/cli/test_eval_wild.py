"""`facesearch eval identify --protocol wild` on a small real slice (links, never copies)."""

import json

from conftest import data_path
from typer.testing import CliRunner

from facesearch.cli import app


def test_wild_protocol_reports_rank1_and_strong_lead_precision(tmp_path, cache_dir):
    att, utk = data_path("att_orl"), data_path("utkface")
    gallery = tmp_path / "gallery"
    for person in ("s1", "s2", "s3", "s4", "s5", "s6"):
        (gallery / person).mkdir(parents=True)
        for n in (1, 2, 3, 4):
            (gallery / person / f"{n}.pgm").symlink_to(att / person / f"{n}.pgm")
    distractors = tmp_path / "distractors"
    distractors.mkdir()
    for image in sorted(utk.glob("*.jpg"))[:20]:
        (distractors / image.name).symlink_to(image)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
        "--workers", "1", "eval", "identify", "--protocol", "wild", "--gallery", str(gallery),
        "--distractors", str(distractors), "--enrol", "hard", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "at least 10,000" in result.output  # too few distractors, said plainly
    (row,) = json.loads((out / "identify-wild.json").read_text())["results"]
    assert row["identities"] == 6 and row["probes"] == 18 and row["distractors"] == 20
    # Measured: every probe's mate first; AT&T studio photos are easy.
    assert row["rank1"] >= 0.9 and row["rank10"] == 1.0
    assert row["strong_lead_threshold"] is not None and row["strong_leads"] <= row["probes"]
    assert (out / "identify-wild-cmc.png").is_file() and (out / "identify-wild-det.png").is_file()
