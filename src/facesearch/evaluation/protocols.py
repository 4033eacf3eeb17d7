"""Readers for labelled data: LFW pair lists, generic pair CSVs, folders of identities."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import FacesearchError
from ..pipeline.sources import IMAGE_SUFFIXES

YES = {"yes", "y", "true", "1", "same", "match"}
NO = {"no", "n", "false", "0", "different", "nonmatch", "non-match"}


@dataclass(frozen=True)
class Pairs:
    """Image pairs with ground truth; `folds` numbers each pair's fold (all 0 if none)."""

    first: list[Path]
    second: list[Path]
    same: list[bool]
    folds: list[int]

    def __len__(self) -> int:
        return len(self.same)

    @property
    def files(self) -> list[Path]:
        return sorted(set(self.first) | set(self.second))


def lfw_image(images: Path, name: str, number: str) -> Path:
    return images / name / f"{name}_{int(number):04d}.jpg"


def read_lfw_pairs(path: Path, images: Path) -> Pairs:
    """LFW's pairs.txt or pairsDevTrain.txt: a header of `folds n` (or just `n`), then
    per fold n matched lines `name i j` and n mismatched lines `name1 i name2 j`."""
    lines = [line.split() for line in _text(path).splitlines() if line.strip()]
    if not lines or not all(f.isdigit() for f in lines[0]):
        raise FacesearchError(f"{path}: the first line must be 'folds pairs' or 'pairs'")
    header = [int(f) for f in lines[0]]
    folds, per = (header[0], header[1]) if len(header) == 2 else (1, header[0])
    body = lines[1:]
    if len(body) != folds * per * 2:
        raise FacesearchError(
            f"{path}: expected {folds * per * 2} pair lines for {folds} folds of {per}, "
            f"found {len(body)}"
        )
    first, second, same, fold_of = [], [], [], []
    for n, fields in enumerate(body):
        if len(fields) == 3:
            a, b, match = lfw_image(images, fields[0], fields[1]), lfw_image(
                images, fields[0], fields[2]), True  # fmt: skip
        elif len(fields) == 4:
            a, b, match = lfw_image(images, fields[0], fields[1]), lfw_image(
                images, fields[2], fields[3]), False  # fmt: skip
        else:
            raise FacesearchError(f"{path}:{n + 2}: expected 3 or 4 fields, found {len(fields)}")
        first.append(a)
        second.append(b)
        same.append(match)
        fold_of.append(n // (2 * per))
    _check_exist([*first, *second], path)
    return Pairs(first, second, same, fold_of)


def read_pairs_csv(path: Path, images: Path | None = None) -> Pairs:
    """A CSV with a header `file_x,file_y,decision` (any case; Yes/No); files relative
    to `images`, or to the CSV's folder."""
    root = images or path.parent
    reader = csv.DictReader(_text(path).splitlines())
    fields = {f.lower(): f for f in reader.fieldnames or []}
    if not {"file_x", "file_y", "decision"} <= fields.keys():
        raise FacesearchError(f"{path}: the header must name file_x, file_y and decision")
    first, second, same = [], [], []
    for n, row in enumerate(reader, start=2):
        decision = (row[fields["decision"]] or "").strip().lower()
        if decision not in YES | NO:
            raise FacesearchError(f"{path}:{n}: decision {decision!r} is not Yes or No")
        first.append(root / row[fields["file_x"]].strip())
        second.append(root / row[fields["file_y"]].strip())
        same.append(decision in YES)
    _check_exist([*first, *second], path)
    return Pairs(first, second, same, [0] * len(same))


def read_pairs(path: Path, images: Path | None = None) -> Pairs:
    """LFW-style text or a CSV, by suffix."""
    if path.suffix.lower() == ".csv":
        return read_pairs_csv(path, images)
    return read_lfw_pairs(path, images or path.parent / "images_deepfunneled")


def identities(folder: Path) -> dict[str, list[Path]]:
    """A labelled folder: each subfolder is one identity, its images that person's."""
    if not folder.is_dir():
        raise FacesearchError(f"{folder} is not a folder")
    people: dict[str, list[Path]] = defaultdict(list)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for image in sorted(sub.rglob("*")):
            if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                people[sub.name].append(image)
    return dict(people)


def image_files(folder: Path) -> list[Path]:
    """Every image under `folder`, in a stable order."""
    if not folder.exists():
        raise FacesearchError(f"{folder} does not exist")
    if folder.is_file():
        return [folder]
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def excluded_files(path: Path) -> set[str]:
    """File names to leave out of an evaluation: a CSV with a `file` column (and, if it
    has a `verdict` column, only the rows whose verdict is `same`), or a plain list of
    one file name a line (`#` starts a comment)."""
    text = _text(path)
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if "," in first and "file" in [f.strip().lower() for f in first.split(",")]:
        reader = csv.DictReader(text.splitlines())
        fields = {f.lower(): f for f in reader.fieldnames or []}
        verdict = fields.get("verdict")
        return {
            Path(row[fields["file"]].strip()).name
            for row in reader
            if verdict is None or (row[verdict] or "").strip().lower() == "same"
        }
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return {Path(name).name for name in names if name}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacesearchError(f"cannot read {path}: {exc}") from None


def _check_exist(paths: list[Path], listing: Path) -> None:
    absent = [p for p in dict.fromkeys(paths) if not p.is_file()]
    if absent:
        raise FacesearchError(
            f"{listing}: {len(absent)} listed images do not exist, e.g. {absent[0]}"
        )
