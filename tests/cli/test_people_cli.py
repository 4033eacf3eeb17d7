"""`facesearch people …` against a real catalog built from real LFW photos."""

import json

import pytest
from conftest import lfw_people
from linkfarm import place
from typer.testing import CliRunner

from facesearch.cli import app

runner = CliRunner()


@pytest.fixture
def cli(tmp_path, cache_dir):
    base = ["--data-dir", str(tmp_path / "data"), "--cache-dir", str(cache_dir), "--workers", "1"]

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(app, [*base, *args])
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    return invoke


def _json(result):
    return json.loads(result.stdout)


@pytest.fixture
def ingested(cli, lfw, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for images in lfw_people(lfw, min_images=5, count=3).values():
        for image in images[:5]:
            place(image, folder / image.name)
    cli("collections", "create", "press", "--source", "LFW", "--legal-basis", "test fixture")
    cli("ingest", str(folder), "--collection", "press", "--json")
    return cli


def test_people_list_show_name_merge_split_undo(ingested):
    cli = ingested
    persons = _json(cli("people", "list", "--json"))
    assert len(persons) == 3 and all(p["faces"] == 5 for p in persons)
    a, b = persons[0]["id"], persons[1]["id"]

    named = _json(cli("people", "name", str(a), "Jane Roe", "--json"))
    assert named["name"] == "Jane Roe"
    shown = _json(cli("people", "show", str(a), "--json"))
    assert len(shown["appearances"]) == 5 and shown["operations"][0]["kind"] == "name"

    merged = _json(cli("people", "merge", str(b), str(a), "--json"))
    assert merged["faces"] == 10
    undone = _json(cli("people", "undo", str(merged["operation"]), "--json"))
    assert undone["kind"] == "merge"
    assert _json(cli("people", "show", str(b), "--json"))["faces"] == 5

    face = shown["appearances"][0]["face_id"]
    split = _json(cli("people", "split", str(a), str(face), "--json"))
    assert split["faces"] == 1 and split["id"] not in (a, b)

    found = _json(cli("people", "search", str(a), "--purpose", "missing person", "--case", "C-1",
                      "--json"))  # fmt: skip
    assert found and found[0]["face_id"] == face  # the face split off is the best lead

    search = _json(cli("search", shown["appearances"][1]["path"], "--purpose", "missing person",
                       "--case", "C-1", "--json"))  # fmt: skip
    best = search["matches"][0]
    assert best["person"]["id"] == a and best["person"]["faces"] == 4

    bad = cli("people", "merge", str(a), str(a), ok=False)
    assert bad.exit_code != 0 and "itself" in str(bad.exception)
    bad = cli("people", "name", str(a), "x" * 101, ok=False)
    assert "at most 100" in str(bad.exception)
    assert _json(cli("people", "show", str(a), "--json"))["name"] == "Jane Roe"

    result = _json(cli("people", "recluster", "--json"))
    assert result["faces"] >= 15  # some photos show a second face
    assert _json(cli("people", "show", str(a), "--json"))["name"] == "Jane Roe"
