import json

import pytest

from facesearch.errors import FacesearchError
from facesearch.pipeline.sources import iter_sources, read_manifest


def test_walks_folders_recursively_in_a_stable_order(tmp_path):
    for name in ("b/2.JPG", "a/1.png", "a/deep/3.webp", "notes.txt", "a/.hidden.jpg", "c.pgm"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    names = [item.path.relative_to(tmp_path).as_posix() for item in iter_sources([tmp_path])]
    assert names == ["c.pgm", "a/1.png", "a/deep/3.webp", "b/2.JPG"]


def test_csv_manifest_carries_metadata_and_resolves_relative_paths(tmp_path):
    (tmp_path / "photos").mkdir()
    manifest = tmp_path / "photos" / "list.csv"
    manifest.write_text(
        "path,source_url,captured_at,caption\n"
        "a.jpg,https://example.org/a,2021-05-04T10:00:00,A caption\n"
        "/abs/b.jpg,,,\n"
    )
    items = read_manifest(manifest)
    assert items[0].path == (tmp_path / "photos" / "a.jpg").resolve()
    assert items[0].source_url == "https://example.org/a"
    assert items[0].captured_at == "2021-05-04T10:00:00"
    assert items[0].caption == "A caption"
    assert str(items[1].path) == "/abs/b.jpg"
    assert items[1].source_url is None and items[1].captured_at is None


def test_jsonl_manifest(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"path": "x.jpg", "captured_at": "2020-01-02"})
        + "\n\n"
        + json.dumps({"path": "y.jpg", "caption": "two"})
        + "\n"
    )
    items = list(iter_sources([manifest]))
    assert [i.path.name for i in items] == ["x.jpg", "y.jpg"]
    assert items[0].captured_at == "2020-01-02" and items[1].caption == "two"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "file,caption\na.jpg,x\n", "'path' column"),
        ("m.csv", "path,captured_at\na.jpg,yesterday\n", "not an ISO 8601 date"),
        ("m.csv", "path,colour\na.jpg,red\n", "unknown columns"),
        ("m.jsonl", '{"path": "a.jpg"}\n{broken\n', ":2: invalid JSON"),
        ("m.jsonl", "[1, 2]\n", "JSON object"),
        ("m.jsonl", '{"caption": "no path"}\n', "'path' is required"),
    ],
)
def test_a_bad_manifest_is_refused_with_its_line(tmp_path, name, text, message):
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(FacesearchError, match=message):
        read_manifest(manifest)


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(FacesearchError, match="does not exist"):
        list(iter_sources([tmp_path / "nope"]))
