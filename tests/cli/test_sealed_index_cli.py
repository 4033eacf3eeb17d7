"""A tampered vectors file on a real store: `index verify` reports it, search answers a
clear error, `index rebuild` repairs it and search gives the same answers again."""

from __future__ import annotations

import json
import subprocess
import sys

from facesearch.index.sealed import NONCE, GcmBlocks, rows_per_block


def _run(base: list[str], *args: str, code: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done


def test_a_flipped_byte_is_reported_by_index_verify_and_repaired_by_rebuild(
    lfw, tmp_path, cache_dir
):
    data = tmp_path / "data"
    base = [sys.executable, "-m", "facesearch", "--data-dir", str(data), "--cache-dir",
            str(cache_dir), "--workers", "1"]  # fmt: skip
    photos = tmp_path / "photos"
    photos.mkdir()
    for file in sorted(lfw.glob("A*/*.jpg"))[:24]:
        (photos / f"{file.parent.name}__{file.name}").write_bytes(file.read_bytes())
    probe = sorted(lfw.glob("A*/*.jpg"))[0]
    _run(base, "collections", "create", "c", "--source", "LFW", "--legal-basis", "test")
    _run(base, "ingest", str(photos), "--collection", "c")
    search = ["search", str(probe), "--top", "5", "--json", "--purpose", "missing person",
              "--case", "T-1"]  # fmt: skip
    before = json.loads(_run(base, *search).stdout)
    assert json.loads(_run(base, "index", "verify", "--json").stdout)["ok"]

    folder = next((data / "index").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["sealed"] and manifest["vectors_format"] == 2
    vectors = folder / f"vectors-{manifest['generation']}.f32"
    assert manifest["count"] > rows_per_block(128)
    layout = GcmBlocks(b"\0" * 32, 128)
    block = layout._data_start(rows_per_block(128)) + NONCE + 100  # inside block 0
    for offset, what in ((block, "block 0"), (20, "header")):
        original = vectors.read_bytes()
        tampered = bytearray(original)
        tampered[offset] ^= 0x80
        vectors.write_bytes(bytes(tampered))
        report = _run(base, "index", "verify", "--json", code=1)
        problems = json.loads(report.stdout)["problems"]
        assert any("authentication" in p and "index rebuild" in p for p in problems), what
        failed = _run(base, *search, code=2)
        assert "fails authentication" in failed.stderr and len(failed.stderr.splitlines()) <= 3
        vectors.write_bytes(original)

    tampered = bytearray(vectors.read_bytes())
    tampered[block] ^= 0x01
    vectors.write_bytes(bytes(tampered))
    _run(base, "index", "rebuild", "--json")
    assert json.loads(_run(base, "index", "verify", "--json").stdout)["ok"]
    after = json.loads(_run(base, *search).stdout)
    assert [(m["face_id"], m["score"]) for m in after["matches"]] == [
        (m["face_id"], m["score"]) for m in before["matches"]
    ]
