"""Readers of labelled data, on the real LFW and wild lists."""

import pytest
from conftest import data_path

from facesearch.errors import FacesearchError
from facesearch.evaluation.demographics import utkface_labels
from facesearch.evaluation.protocols import identities, read_pairs


def test_lfw_pairs_have_ten_folds_of_300_matched_and_300_mismatched():
    pairs = read_pairs(data_path("lfw", "pairs.txt"))
    assert len(pairs) == 6000 and sum(pairs.same) == 3000
    assert sorted(set(pairs.folds)) == list(range(10))
    assert sum(pairs.same[:300]) == 300 and not any(pairs.same[300:600])
    assert pairs.first[0].name == "Abel_Pacheco_0001.jpg"
    assert pairs.second[0].name == "Abel_Pacheco_0004.jpg"
    assert all(p.is_file() for p in pairs.files)


def test_dev_train_list_has_no_folds():
    pairs = read_pairs(data_path("lfw", "pairsDevTrain.txt"))
    assert len(pairs) == 2200 and sum(pairs.same) == 1100 and set(pairs.folds) == {0}


def test_pairs_csv_with_yes_and_no():
    pairs = read_pairs(data_path("wild", "master.csv"))
    assert len(pairs) == 300 and sum(pairs.same) == 38


def test_bad_lists_are_refused_with_the_line(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("1 1\nA\t1\t2\n")
    with pytest.raises(FacesearchError, match="expected 2 pair lines"):
        read_pairs(bad, tmp_path)
    csv = tmp_path / "pairs.csv"
    csv.write_text("file_x,file_y,decision\na.jpg,b.jpg,maybe\n")
    with pytest.raises(FacesearchError, match=r"pairs.csv:2: decision 'maybe'"):
        read_pairs(csv)
    csv.write_text("left,right\na.jpg,b.jpg\n")
    with pytest.raises(FacesearchError, match="file_x, file_y and decision"):
        read_pairs(csv)


def test_identities_are_subfolders():
    people = identities(data_path("att_orl"))
    assert len(people) == 40 and all(len(files) == 10 for files in people.values())


def test_utkface_labels_from_file_names(tmp_path):
    assert utkface_labels(tmp_path / "26_1_2_20170116174525125.jpg.chip.jpg") == {
        "age": 26, "gender": "female", "race": "Asian",
    }  # fmt: skip
    assert utkface_labels(tmp_path / "39_1_20170116174525125.jpg.chip.jpg") is None


def test_reviewed_distractor_duplicates_name_real_distractor_files():
    """The committed review names only files that exist among the distractors (LFW
    one-image people, UTKFace), with a verdict for each; `same` rows are excluded."""
    import csv
    from pathlib import Path

    from facesearch.evaluation.protocols import excluded_files

    reviewed = Path(__file__).resolve().parents[2] / "bench/distractors/lfw-duplicates.csv"
    rows = list(csv.DictReader(reviewed.read_text().splitlines()))
    assert {r["verdict"] for r in rows} == {"same", "different", "unsure"}
    lfw = data_path("lfw", "images_deepfunneled")
    utkface = data_path("utkface")
    for row in rows:
        name = row["file"]
        if name.endswith(".chip.jpg"):
            assert (utkface / name).is_file(), name
        else:
            person = name.rsplit("_", 1)[0]
            # An LFW distractor is a one-image person; the gallery person it resembles has more.
            assert [p.name for p in (lfw / person).iterdir()] == [name]
            assert len(list((lfw / row["person"]).iterdir())) >= 2
    same = excluded_files(reviewed)
    assert len(same) == sum(r["verdict"] == "same" for r in rows) == 166
