"""The command line against a real catalog, real models and real photos."""

import json
import subprocess
import sys

import pytest
from linkfarm import place
from typer.testing import CliRunner

from facesearch.cli import app

runner = CliRunner()


# Every search states its purpose and case; tests of that are in tests/governance.
SEARCH_PURPOSE = ("--purpose", "missing person", "--case", "MP-2024-17")


@pytest.fixture
def cli(tmp_path, cache_dir):
    base = ["--data-dir", str(tmp_path / "data"), "--cache-dir", str(cache_dir), "--workers", "1"]

    def invoke(*args: str, ok: bool = True):
        if args and args[0] == "search" and "--purpose" not in args:
            args = (*args, *SEARCH_PURPOSE)
        result = runner.invoke(app, [*base, *args])
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    return invoke


@pytest.fixture
def wild_pick(wild, tmp_path):
    """A folder of a few wild photos (hard links, see linkfarm.py)."""
    folder = tmp_path / "pick"
    folder.mkdir()
    for name in ("couple.jpg", "img1.jpg", "img2.jpg", "img4.jpg", "selfie-many-people.jpg"):
        place(wild / name, folder / name)
    return folder


def _json(result):
    return json.loads(result.stdout)


def test_collections_ingest_search_and_stats(cli, wild, wild_pick):
    cli("collections", "create", "press", "--source", "deepface test photos",
        "--legal-basis", "test fixture", "--retention-days", "30")  # fmt: skip
    listed = _json(cli("collections", "list", "--json"))
    assert listed[0]["name"] == "press" and listed[0]["retention_days"] == 30

    summary = _json(cli("ingest", str(wild_pick), "--collection", "press", "--json"))
    assert summary["images_added"] == 5 and summary["errors"] == 0
    assert summary["faces_added"] == 2 + 1 + 1 + 1 + 6

    found = _json(cli("search", str(wild / "img2.jpg"), "--top", "3", "--json"))
    matches = found["matches"]
    assert [m["rank"] for m in matches] == [1, 2, 3]
    assert matches[0]["path"].endswith("img2.jpg") and matches[0]["score"] > 0.99
    assert matches[0]["score"] >= matches[1]["score"] >= matches[2]["score"]
    for key in ("score", "path", "source_url", "collection", "box", "thumbnail", "captured_at"):
        assert key in matches[0]
    assert matches[0]["collection"] == "press"
    # The same photo is a strong lead; the calibrated FMR falls as the score falls.
    assert matches[0]["band"] == "strong lead" and matches[0]["estimated_fmr"] <= 1e-4
    assert all(m["band"] in ("strong lead", "possible lead", "weak", "unlikely") for m in matches)
    assert matches[0]["estimated_fmr"] <= matches[1]["estimated_fmr"] <= matches[2]["estimated_fmr"]
    assert matches[0]["thumbnail"].startswith("data:image/jpeg;base64,")
    assert set(matches[0]["box"]) == {"x", "y", "w", "h"}
    assert "lead" in found["notice"]

    stats = _json(cli("stats", "--json"))
    assert stats == {"collections": 1, "images": 5, "faces": 11, "errors": 0, "runs": 1}

    again = _json(cli("ingest", str(wild_pick), "--collection", "press", "--json"))
    assert again["images_added"] == 0 and again["duplicates_skipped"] == 5


def test_probe_with_several_faces_uses_the_largest_unless_told(cli, wild, wild_pick):
    cli("collections", "create", "c", "--source", "s", "--legal-basis", "b")
    cli("ingest", str(wild_pick), "--collection", "c")
    selfie = str(wild / "selfie-many-people.jpg")
    default = _json(cli("search", selfie, "--json", "--top", "1"))
    faces = default["probe_faces"]
    assert len(faces) == 6 and default["face"] == 0
    areas = [f["box"]["w"] * f["box"]["h"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    # Each face of the selfie finds itself first.
    for index in (0, 3):
        chosen = _json(cli("search", selfie, "--json", "--top", "1", "--face", str(index)))
        assert chosen["face"] == index
        box = faces[index]["box"]
        hit = chosen["matches"][0]
        assert hit["path"].endswith("selfie-many-people.jpg")
        assert abs(hit["box"]["x"] - box["x"]) <= 2 and abs(hit["box"]["y"] - box["y"]) <= 2
    text = cli("search", selfie, "--top", "2").stdout
    assert "6 faces in the probe" in text and "--face" in text


def test_search_can_be_limited_to_collections(cli, wild, wild_pick, tmp_path):
    cli("collections", "create", "a", "--source", "s", "--legal-basis", "b")
    cli("collections", "create", "b", "--source", "s", "--legal-basis", "b")
    cli("ingest", str(wild_pick / "img2.jpg"), "--collection", "a")
    cli("ingest", str(wild_pick), "--collection", "b")
    probe = str(wild / "img2.jpg")
    only_a = _json(cli("search", probe, "--json", "--collection", "a"))
    assert {m["collection"] for m in only_a["matches"]} == {"a"}
    assert only_a["searched_faces"] == 1
    both = _json(cli("search", probe, "--json", "--collection", "a", "--collection", "b"))
    assert {m["collection"] for m in both["matches"]} == {"a", "b"}
    # The same photo is one image in each collection it was declared in.
    assert [m["score"] > 0.99 for m in both["matches"][:2]] == [True, True]
    sheet = tmp_path / "sheet.jpg"
    cli("search", probe, "--sheet", str(sheet))
    assert sheet.read_bytes()[:2] == b"\xff\xd8"


def test_listings_errors_and_thumbnails(cli, wild_pick, tmp_path):
    cli("collections", "create", "c", "--source", "s", "--legal-basis", "b")
    (wild_pick / "broken.jpg").write_bytes(b"")
    summary = _json(cli("ingest", str(wild_pick), "--collection", "c", "--json"))
    assert summary["errors"] == 1
    errors = _json(cli("errors", "list", "--json"))
    assert errors[0]["path"].endswith("broken.jpg") and "empty" in errors[0]["reason"]
    images = _json(cli("images", "list", "--collection", "c", "--json"))
    assert len(images) == 5 and all(len(i["sha256"]) == 64 for i in images)
    faces = _json(cli("faces", "list", "--image", str(images[0]["id"]), "--json"))
    assert faces and all(f["image_id"] == images[0]["id"] for f in faces)
    thumbnail = tmp_path / "face.jpg"
    cli("faces", "thumbnail", str(faces[0]["id"]), "-o", str(thumbnail))
    assert thumbnail.read_bytes()[:2] == b"\xff\xd8"
    runs = _json(cli("runs", "list", "--json"))
    assert runs[0]["status"] == "finished" and runs[0]["errors"] == 1
    models = {m["name"]: m for m in _json(cli("models", "list", "--json"))}
    assert models["yunet-2023mar"]["licence"] == "MIT" and models["yunet-2023mar"]["installed"]
    assert models["sface-2021dec"]["licence"] == "Apache-2.0"


def test_user_errors_print_one_clear_line(tmp_path, wild, cache_dir):
    def facesearch(*args):
        return subprocess.run(
            [sys.executable, "-m", "facesearch", "--data-dir", str(tmp_path), "--cache-dir",
             str(cache_dir), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    missing = facesearch("ingest", str(wild / "img1.jpg"), "--collection", "nope")
    assert missing.returncode == 2
    assert "no collection named 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    facesearch("collections", "create", "c", "--source", "s", "--legal-basis", "b")
    no_face = tmp_path / "blank.png"
    __import__("PIL.Image").Image.new("RGB", (64, 64), "white").save(no_face)
    result = facesearch("search", str(no_face))
    assert result.returncode == 2 and "a search needs a purpose" in result.stderr
    result = facesearch("search", str(no_face), *SEARCH_PURPOSE)
    assert result.returncode == 2 and "no face was found" in result.stderr
    result = facesearch("search", str(wild / "couple.jpg"), "--face", "5", *SEARCH_PURPOSE)
    assert result.returncode == 2 and "--face must be 0..1" in result.stderr
